"""The state file worker: one read or one atomic replace of a small file, then exit.

Runs as a child of the agent (see agent/workers/statefile.py) so that a frozen state dir
stalls this process, never the agent. Standard library only: the child stays small.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path


def read(path: Path) -> None:
    """Writes the file's bytes to stdout; nothing when there is no file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    sys.stdout.buffer.write(data)


def replace(path: Path) -> None:
    """Replaces the file with stdin: a crash leaves the old file or the new, never a mix."""
    data = sys.stdin.buffer.read()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def main(argv: Sequence[str]) -> None:
    op, path = argv[0], Path(argv[1])
    try:
        {"read": read, "replace": replace}[op](path)
    except Exception as exc:
        sys.stderr.write(f"cannot {op} {path}: {exc}\n")
        sys.exit(1)
