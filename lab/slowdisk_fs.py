"""The slow disk's FUSE server: a directory passed through, its data path slowed or held.

`lab.slowdisk` runs it as a process of its own:

    python -m lab.slowdisk_fs BACKING_DIR MOUNTPOINT CONTROL_SOCKET

and steers it over CONTROL_SOCKET, a Unix stream socket taking one command line and
answering one JSON line (the gate's state, or `{"error": ...}` changing nothing):

    delay SECONDS   every read, write and fsync takes SECONDS more (0: full speed)
    hold            reads, writes and fsyncs wait, in flight, until released
    release         let them go
    status          change nothing

The state counts requests `in_flight` (from arrival to answer), `held` (of those,
waiting at the closed gate) and `completed`.

Metadata (lookups, attributes, create, unlink) passes freely: only the data path,
the one a loop device uses, is slowed or held. Requests are slowed side by side, not
one after another, so a device request that the kernel splits into several FUSE
requests still completes in about one delay.

Two libfuse habits shape this module: its main loop changes the working directory to
/ (every path here is absolute), and mfusepy registers every attribute of the
operations object named like a libfuse operation (so the state lives in `Gate`, and
`PassThrough` holds nothing else under a public name).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mfusepy

COMMANDS = ("delay", "hold", "release", "status")


class Gate:
    """Where every data request passes: delayed, or held until released. Thread-safe:
    libfuse serves requests on several threads at once."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._delay = 0.0
        self._holding = False
        self._in_flight = 0
        self._held = 0
        self._completed = 0

    @contextlib.contextmanager
    def passage(self) -> Iterator[None]:
        """Counts the request in flight from its arrival until it is answered."""
        with self._cond:
            self._in_flight += 1
            self._held += 1
            self._cond.wait_for(lambda: not self._holding)
            self._held -= 1
            delay = self._delay
        try:
            if delay:
                time.sleep(delay)
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._completed += 1

    def command(self, line: str) -> dict[str, Any]:
        """Carries out one control line; a bad one changes nothing and says why."""
        words = line.split()
        verb, args = (words[0], words[1:]) if words else ("", [])
        if verb not in COMMANDS:
            return {"error": f"unknown command {line.strip()!r}: expected one of {COMMANDS}"}
        if len(args) != (1 if verb == "delay" else 0):
            return {"error": f"wrong arguments in {line.strip()!r}"}
        with self._cond:
            if verb == "delay":
                try:
                    delay = float(args[0])
                except ValueError:
                    delay = -1.0
                if not 0 <= delay <= 60:
                    return {"error": f"delay {args[0]!r}: expected seconds from 0 to 60"}
                self._delay = delay
            elif verb in ("hold", "release"):
                self._holding = verb == "hold"
                self._cond.notify_all()
            return {
                "delay": self._delay,
                "holding": self._holding,
                "in_flight": self._in_flight,
                "held": self._held,
                "completed": self._completed,
            }


_STAT = ("st_mode", "st_ino", "st_nlink", "st_uid", "st_gid", "st_size", "st_blocks")
_STATVFS = ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree")


class PassThrough:
    """The libfuse operations, on the files of `backing`; reads, writes and fsyncs pass
    the gate. Files are opened without O_DIRECT on the backing side: the loop device's
    direct I/O ends at this server, and the buffers FUSE hands over need no alignment."""

    use_ns = True

    def __init__(self, backing: Path, gate: Gate) -> None:
        self._backing = str(backing.resolve())
        self._gate = gate

    def _path(self, path: str) -> str:
        return os.path.join(self._backing, path.lstrip("/"))

    def getattr(self, path: str, fh: int | None = None) -> dict[str, int]:
        st = os.fstat(fh) if fh is not None else os.lstat(self._path(path))
        return {
            **{name: getattr(st, name) for name in _STAT},
            "st_atime": st.st_atime_ns,
            "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns,
        }

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *os.listdir(self._path(path))]

    def statfs(self, path: str) -> dict[str, int]:
        st = os.statvfs(self._backing)
        return {name: getattr(st, name) for name in _STATVFS}

    def create(self, path: str, mode: int, flags: int) -> int:
        return os.open(self._path(path), (flags | os.O_CREAT) & ~os.O_DIRECT, mode)

    def open(self, path: str, flags: int) -> int:
        return os.open(self._path(path), flags & ~os.O_DIRECT)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        os.truncate(fh if fh is not None else self._path(path), length)

    def unlink(self, path: str) -> None:
        os.unlink(self._path(path))

    def release(self, path: str, fh: int) -> None:
        os.close(fh)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        with self._gate.passage():
            return os.pread(fh, size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        with self._gate.passage():
            return os.pwrite(fh, data, offset)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        """Answered once through the gate, without syncing the backing file: the image
        is scratch, and a host fsync would add the latency of the host's disk (shared
        with everything else on the machine) to the delay the caller chose."""
        with self._gate.passage():
            pass


class _ControlHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        gate: Gate = self.server.gate  # type: ignore[attr-defined]
        line = self.rfile.readline(1024).decode(errors="replace")
        self.wfile.write(json.dumps(gate.command(line)).encode() + b"\n")


class ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, gate: Gate) -> None:
        self.gate = gate
        super().__init__(str(path), _ControlHandler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backing", type=Path, help="directory whose files are served")
    parser.add_argument("mountpoint", type=Path, help="where to mount them")
    parser.add_argument("control", type=Path, help="Unix socket to create for commands")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="slowdisk: %(levelname)s %(message)s")
    gate = Gate()
    with ControlServer(args.control.resolve(), gate) as control:
        threading.Thread(target=control.serve_forever, name="control", daemon=True).start()
        try:
            mfusepy.FUSE(
                PassThrough(args.backing, gate),
                str(args.mountpoint.resolve()),
                foreground=True,
                fsname="hangwatch-slowdisk",
                # Unlink at once, even while open: the loop device may hold the image
                # a moment past its detach, and hiding it instead needs rename.
                hard_remove=True,
            )
        finally:
            control.shutdown()
            args.control.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
