"""`pip install .` from a clean clone into a fresh venv gives working programs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from checkout import clean_clone

import hangwatch

ROOT = Path(__file__).resolve().parents[2]
METADATA = """
import importlib.metadata as m, json, pathlib, hangwatch.v1 as v
d = m.metadata("hangwatch")
print(json.dumps([
    d["Version"],
    d["License-Expression"],
    d.get_all("Classifier"),
    sorted(p.name for p in pathlib.Path(v.__file__).parent.glob("*.proto")),
    [f.name for f in m.files("hangwatch") if f.name.startswith("LICENSE")],
]))
"""


def test_pip_install_into_fresh_venv_from_clean_clone(tmp_path):
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
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(program: str, *args: str) -> subprocess.CompletedProcess[str]:
        """A program of the venv, run away from the source tree."""
        return subprocess.run(
            [str(venv / "bin" / program), *args],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    for program in ("hangwatchctl", "hangwatch-agent", "hangwatch-controller"):
        result = run(program, "--help")
        assert result.returncode == 0, result.stderr
        assert "Usage:" in result.stdout
        version = run(program, "--version")
        assert version.stdout == f"{program} {hangwatch.__version__}\n", version.stderr
    # The generated stubs and package data came along.
    check = run(
        "python",
        "-c",
        "import hangwatch.v1.admin_service_pb2, controller.store.sqlite.connection as s;"
        " print(len(s.migrations()))",
    )
    assert check.returncode == 0, check.stderr
    assert int(check.stdout) >= 1
    # The metadata, and the .proto files beside the code generated from them.
    shown = run("python", "-c", METADATA)
    assert shown.returncode == 0, shown.stderr
    version, license_expression, classifiers, protos, license_files = json.loads(shown.stdout)
    assert version == hangwatch.__version__
    assert license_expression == "Apache-2.0"
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert protos == sorted(p.name for p in (ROOT / "protos" / "hangwatch" / "v1").glob("*.proto"))
    assert license_files == ["LICENSE"]
    # The lab (demo cluster, scratch filesystems, lab CA) stays in the source tree.
    lab = run("python", "-c", "import lab")
    assert lab.returncode != 0 and "No module named 'lab'" in lab.stderr
