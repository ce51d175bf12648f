"""`pip install .` from a clean clone into a fresh venv gives working programs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_pip_install_into_fresh_venv_from_clean_clone(tmp_path):
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(clone)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for program in ("hangwatchctl", "hangwatch-agent", "hangwatch-controller"):
        result = subprocess.run(
            [str(venv / "bin" / program), "--help"],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout
    # The generated stubs and package data came along.
    check = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import hangwatch.v1.admin_service_pb2, controller.store.sqlite.connection as s;"
            " print(len(s.migrations()))",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert check.returncode == 0, check.stderr
    assert int(check.stdout) >= 1
    # The lab (demo cluster, scratch filesystems, lab CA) stays in the source tree.
    lab = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import lab"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert lab.returncode != 0 and "No module named 'lab'" in lab.stderr
