"""Small-file access shared by the readers."""

from __future__ import annotations

import os


def read_text(path: str) -> str:
    """Reads a whole virtual file, decoding names the way `os.readlink` does.

    Kernel files carry path names as raw bytes; `os.fsdecode` keeps them comparable
    with the `str` paths that `os.readlink` returns.
    """
    with open(path, "rb") as f:
        return os.fsdecode(f.read())


def read_attr(path: str) -> str | None:
    """Reads a one-line attribute, `None` when it is absent or the task has gone."""
    try:
        return read_text(path).strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
