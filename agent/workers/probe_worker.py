"""The probe worker: the one process per mount that touches the filesystem for the agent.

`agent.workers.probe` starts it once per mount as `python -I -B -S -c ...` and writes one line
to its stdin per probe; it answers each with one JSON report line and exits at EOF.
There is one per monitored mount, so it imports only what the interpreter has built
in or already loads: `site`, `typing` and `json` (through `re` and `enum`) would each
add a megabyte or more to every worker.
"""

from __future__ import annotations

import errno
import itertools
import os
import sys
import time
from _json import encode_basestring_ascii as _json_string

# Runtime stays free of `typing`; mypy treats this name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    _T = TypeVar("_T")

PROBE_DIR = ".hangwatch"
_PAYLOAD_SIZE = 4096
_LIST_LIMIT = 64


class _Steps:
    """Times each step and remembers which one was running when an error hit."""

    def __init__(self) -> None:
        self.done: list[tuple[str, float]] = []
        self.current = ""

    def run(self, name: str, action: Callable[[], _T]) -> _T:
        self.current = name
        start = time.perf_counter()
        value = action()
        self.done.append((name, time.perf_counter() - start))
        return value


def _write_probe(mount: str, name: str, steps: _Steps) -> None:
    directory = os.path.join(mount, PROBE_DIR)
    path = os.path.join(directory, name)
    payload = f"hangwatch {name} {time.time():.6f}\n".encode().ljust(_PAYLOAD_SIZE, b".")
    steps.run("mkdir", lambda: os.makedirs(directory, exist_ok=True))
    fd = steps.run("create", lambda: os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    try:
        steps.run("write", lambda: os.write(fd, payload))
        steps.run("fsync", lambda: os.fsync(fd))
    finally:
        os.close(fd)
    steps.run("read", lambda: _check_readback(path, payload))
    steps.run("remove", lambda: os.unlink(path))


def _check_readback(path: str, payload: bytes) -> None:
    with open(path, "rb") as f:
        if f.read() != payload:
            raise OSError(errno.EIO, "read back differs from what was written")


def _read_probe(mount: str, steps: _Steps) -> None:
    entries = steps.run("list", lambda: _list_head(mount))
    files = [e.path for e in entries if e.is_file(follow_symlinks=False)]
    if files:
        steps.run("read", lambda: _read_head(files[0]))


def _list_head(directory: str) -> list[os.DirEntry[str]]:
    # A mount root can be huge; the first entries are enough to make the fs answer.
    with os.scandir(directory) as it:
        return list(itertools.islice(it, _LIST_LIMIT))


def _read_head(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read(_PAYLOAD_SIZE)


def _report_line(mode: str, steps: _Steps, error: str) -> str:
    # Written by hand to spare the json module; repr() of a finite float is valid JSON.
    timings = ", ".join(f"[{_json_string(step)}, {seconds!r}]" for step, seconds in steps.done)
    fields = [f'"mode": {_json_string(mode)}', f'"steps": [{timings}]']
    if error:
        fields += [
            f'"failed_step": {_json_string(steps.current)}',
            f'"error": {_json_string(error)}',
        ]
    return "{" + ", ".join(fields) + "}\n"


def probe(mount: str, name: str) -> str:
    """Probes the mount once; a failing step is part of the report, not an exception."""
    steps = _Steps()
    mode = error = ""
    try:
        st = steps.run("statvfs", lambda: os.statvfs(mount))
        if st.f_flag & os.ST_RDONLY:
            mode = "read"
            _read_probe(mount, steps)
        else:
            mode = "write"
            _write_probe(mount, name, steps)
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, "?")
        error = f"{code}: {exc.strerror or exc}"
    return _report_line(mode, steps, error)


def main(argv: list[str]) -> None:
    """Answers every request line on stdin with one report line, until EOF."""
    mount, name = argv
    while sys.stdin.buffer.readline():
        sys.stdout.write(probe(mount, name))
        sys.stdout.flush()
