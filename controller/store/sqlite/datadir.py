"""One controller per data directory: an exclusive lock held for the process's life.

SQLite's own locking lets two processes share one database file; two controllers on
one store would both run failovers, webhooks and upgrade plans from it. A flock on
`controller.lock` in the data directory keeps the second one out. The kernel drops
the lock when the holder exits, however it exits, so a crash never leaves it stale;
the file keeps the holder's pid only to name it in the refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from hangwatch.errors import StartupError

LOCK_NAME = "controller.lock"


class DataDirLock:
    def __init__(self, data_dir: Path) -> None:
        """Creates the directory if need be and takes its lock, or raises StartupError."""
        self.path = data_dir / LOCK_NAME
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StartupError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StartupError(
                f"data directory {data_dir} is in use by another controller (pid {holder}; "
                f"it holds {self.path}): stop that one first, or give this one its own "
                "--data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
