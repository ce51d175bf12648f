"""A clean clone of this checkout, for tests that install it as a user would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
