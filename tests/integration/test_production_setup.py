"""The documented production setup, from a clean clone to agent and controller talking
mutual TLS, with no step by hand: scripts/lab-install (the tested version of
docs/operations.md) into a scratch root, from the virtual environment at /opt/hangwatch
on. systemd itself cannot run here, so the script starts the units' ExecStart= lines."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from checkout import clean_clone

from lab.localcluster import free_port

ROOT = Path(__file__).resolve().parents[2]
HOST = "storage1"


def test_production_setup_from_a_clean_clone(tmp_path):
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    clone = clean_clone(tmp_path / "clone")
    scratch = tmp_path / "root"
    scratch.mkdir()
    prefix = scratch / "opt" / "hangwatch"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NOTIFY_SOCKET")}
    # The venv is made with the first python3 on PATH: this one.
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    port = free_port()
    try:
        setup = subprocess.run(
            [str(clone / "scripts" / "lab-install"), str(scratch), HOST, str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=900,
            env=env,
        )
        logs = {p.name: p.read_text() for p in (scratch / "var" / "log").glob("*.log")}
        assert setup.returncode == 0, (setup.stdout, setup.stderr, logs)
        assert "storage1" in setup.stdout
        assert re.search(r"^hangwatch-controller \d+\.\d+", setup.stdout, re.M), setup.stdout
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
        # Configs may hold secrets: not world-readable. Secrets have their own directory.
        for name in ("agent.toml", "controller.toml"):
            assert stat.S_IMODE((scratch / "etc/hangwatch" / name).stat().st_mode) == 0o640
        assert stat.S_IMODE((scratch / "etc/hangwatch/secrets").stat().st_mode) == 0o700
        for unit in ("hangwatch-controller", "hangwatch-agent"):
            installed = (scratch / "etc/systemd/system" / f"{unit}.service").read_text()
            # Each unit's local documentation is where the install put it.
            for doc in re.findall(r"^Documentation=file:/(\S+)$", installed, re.M):
                assert (scratch / doc).is_file(), doc
            # Both were started from the console scripts in the venv at /opt/hangwatch.
            pid = int((scratch / "run" / f"{unit}.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert any(str(prefix / "bin").encode() in part for part in cmdline), cmdline
    finally:
        for pid_file in sorted((scratch / "run").glob("*.pid")):
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
