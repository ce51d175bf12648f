"""The documented production setup, from a clean clone to agent and controller talking
mutual TLS, with no step by hand: `pip install .` into a fresh venv, then
scripts/lab-install (the tested version of docs/operations.md) into a scratch root.
systemd itself cannot run here, so the script starts the units' ExecStart= lines."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab.localcluster import free_port

ROOT = Path(__file__).resolve().parents[2]
HOST = "storage1"


def clean_clone(destination: Path) -> Path:
    """A git clone, plus the uncommitted changes of this tree (so the tree is tested as
    it will be committed), without anything ignored (builds, caches, venvs)."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(destination)], check=True, timeout=120)
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout.split(b"\0")
    for name in filter(None, (n.decode() for n in listed)):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def test_production_setup_from_a_clean_clone(tmp_path):
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    clone = clean_clone(tmp_path / "clone")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(clone)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]

    scratch = tmp_path / "root"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NOTIFY_SOCKET")}
    port = free_port()
    try:
        setup = subprocess.run(
            [
                str(clone / "scripts" / "lab-install"),
                str(scratch),
                str(venv / "bin"),
                HOST,
                str(port),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        logs = {p.name: p.read_text() for p in (scratch / "var" / "log").glob("*.log")}
        assert setup.returncode == 0, (setup.stdout, setup.stderr, logs)
        assert "storage1" in setup.stdout
        controller_log = logs["hangwatch-controller.log"]
        assert f"listening on 127.0.0.1:{port} (mutual TLS)" in controller_log
        assert "host storage1 registered" in controller_log
        # The installed files are where the documentation says.
        for path in (
            "etc/systemd/system/hangwatch-agent.service",
            "etc/systemd/system/hangwatch-controller.service",
            "usr/lib/tmpfiles.d/hangwatch.conf",
            "usr/lib/sysusers.d/hangwatch.conf",
            "etc/hangwatch/agent.toml",
            "etc/hangwatch/controller.toml",
            "etc/hangwatch/pki/ca.key",
        ):
            assert (scratch / path).is_file(), path
        # Both were started from the venv's console scripts.
        for unit in ("hangwatch-controller", "hangwatch-agent"):
            pid = int((scratch / "run" / f"{unit}.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert any(str(venv / "bin").encode() in part for part in cmdline), cmdline
    finally:
        for pid_file in sorted((scratch / "run").glob("*.pid")):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
