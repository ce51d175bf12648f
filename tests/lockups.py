"""Real kernel lockups for tests: hung tasks, stuck writers, slow and stuck devices, /dev/kmsg.

Loop filesystems, freezing and thawing come from `lab.scratchfs`, the same code
the demo runs; slow and stuck devices from `lab.slowdisk`. Each context manager
undoes what it did even when the body raises. Every filesystem lives under a
temporary directory named with this process's pid, so
the session safety net (`sweep_leftovers`, used by conftest.py) finds what a failed
cleanup left behind without touching the loop devices of other test sessions that
may be running on the same machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from lab import scratchfs, slowdisk
from lab.scratchfs import frozen as frozen  # re-exported for the procfs tests

_T = TypeVar("_T")

PREFIX = f"hangwatch-lockup-{os.getpid()}-"
SYSCTL = Path("/proc/sys/kernel")
# Hung-task settings are machine-wide: serialise their users across test sessions.
HUNG_TASK_LOCK = Path("/run/lock/hangwatch-hung-task.lock")


class LockupError(RuntimeError):
    """A lockup fixture could not set up or undo its kernel state."""


def wait_until(
    probe: Callable[[], _T | None], timeout: float, what: str, interval: float = 0.02
) -> _T:
    """Polls `probe` until it returns something other than None, or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {what}")
        time.sleep(interval)


@contextlib.asynccontextmanager
async def loop_gaps() -> AsyncIterator[list[float]]:
    """The gaps between 20 ms ticks of the running event loop while the block runs:
    a loop that waited on a frozen disk shows the wait as one long gap."""
    gaps = [0.0]

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()

    ticker = asyncio.create_task(tick())
    try:
        yield gaps
    finally:
        ticker.cancel()


class LoopFs(scratchfs.ScratchFs):
    """A scratch filesystem, also under the names test_procfs_real.py uses."""

    @property
    def device(self) -> Path:
        return Path(self.loop_device)

    @property
    def name(self) -> str:
        return self.kernel_name


@contextlib.contextmanager
def loop_fs(
    fstype: str = "ext4", size_mb: int | None = None, options: str = ""
) -> Iterator[LoopFs]:
    """A fresh `fstype` filesystem on a loop device, in a directory of its own."""
    with (
        scratchfs.scratch_dir(PREFIX) as workdir,
        scratchfs.loop_fs(workdir, "mnt", fstype, size_mb, options) as fs,
    ):
        yield LoopFs(**asdict(fs))


@contextlib.contextmanager
def slow_loop_fs(fstype: str = "ext4", size_mb: int | None = None) -> Iterator[slowdisk.SlowFs]:
    """A fresh `fstype` filesystem on a loop device whose requests can be slowed or held
    (`.disk`); cleanup releases them before it unmounts."""
    with (
        scratchfs.scratch_dir(PREFIX) as workdir,
        slowdisk.slow_loop_fs(workdir, "mnt", fstype, size_mb) as slow,
    ):
        yield slow


def sweep_leftovers() -> list[str]:
    """Cleans up what this process's fixtures left behind and says what that was:
    slow disks first (their filesystems cannot unmount while requests are held)."""
    prefix = os.path.join(os.path.realpath(tempfile.gettempdir()), PREFIX)
    return slowdisk.sweep(prefix) + scratchfs.sweep(prefix)


def task_state(pid: int) -> tuple[str, str]:
    """(state letter, wchan) of a task; ("", "") once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return "", ""
    return stat.rpartition(") ")[2][:1], wchan


@dataclass(frozen=True)
class StuckWriter:
    pid: int
    path: Path
    wchan: str


@contextlib.contextmanager
def stuck_writer(mount: str | Path, timeout: float = 5.0) -> Iterator[StuckWriter]:
    """A shell writing to a file on the frozen `mount`, once it sits in D state.

    It works in the mount (its cwd), as a service on it would: that is how the
    agent can tell which mount a kernel report about it concerns.
    """
    path = Path(mount) / "stuck-writer"
    # comm "sh", as in the field notes; the redirection's open() is what blocks.
    proc = subprocess.Popen(["sh", "-c", 'echo hangwatch > "$1"', "sh", path.name], cwd=mount)
    try:

        def in_d_state() -> str | None:
            if proc.poll() is not None:
                raise LockupError(f"writer exited {proc.returncode}: is {mount} frozen?")
            state, wchan = task_state(proc.pid)
            # wchan is "0" while the task, already marked D, is still on its way to sleep.
            return wchan if state == "D" and wchan != "0" else None

        wchan = wait_until(in_d_state, timeout, f"writer {proc.pid} to block in D state")
        yield StuckWriter(pid=proc.pid, path=path, wchan=wchan)
    finally:
        # SIGKILL stays pending while the task is in D state; the thaw lets it land.
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        scratchfs.thaw(mount)
        proc.wait(timeout=10)


def _read_sysctl(name: str) -> str:
    return (SYSCTL / name).read_text().strip()


def _write_sysctl(name: str, value: str) -> None:
    (SYSCTL / name).write_text(f"{value}\n")


@contextlib.contextmanager
def _exclusive(lock: Path, timeout: float = 120.0) -> Iterator[None]:
    with lock.open("w") as f:

        def try_lock() -> bool | None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            return True

        wait_until(try_lock, timeout, f"lock {lock}", interval=0.1)
        yield  # closing the file releases the lock


@contextlib.contextmanager
def hung_task_reports(timeout_secs: int = 2) -> Iterator[None]:
    """Makes the kernel report tasks blocked over `timeout_secs`, without a report limit."""
    if _read_sysctl("hung_task_panic") != "0":
        raise LockupError("kernel.hung_task_panic is set: a hung task would panic the machine")
    with _exclusive(HUNG_TASK_LOCK):
        names = ("hung_task_timeout_secs", "hung_task_warnings")
        saved = {name: _read_sysctl(name) for name in names}
        try:
            # -1: unlimited; the default 10 would silence the kernel for good once spent.
            _write_sysctl("hung_task_warnings", "-1")
            _write_sysctl("hung_task_timeout_secs", str(timeout_secs))
            yield
        finally:
            for name, value in saved.items():
                _write_sysctl(name, value)


class KmsgTail:
    """Kernel log records written after it was opened, read without blocking."""

    def __init__(self) -> None:
        self._fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self._fd, 0, os.SEEK_END)

    def close(self) -> None:
        os.close(self._fd)

    def _records(self) -> Iterator[str]:
        while True:
            try:
                record = os.read(self._fd, 16384)
            except BlockingIOError:
                return
            except BrokenPipeError:
                continue  # records overwritten before we read them; go on with the next
            # "prio,seq,usec,flags;text\n KEY=VALUE..."
            yield record.decode(errors="replace").partition(";")[2].partition("\n")[0]

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The first new message matching `pattern`; TimeoutError after `timeout`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for message in self._records():
                if regex.search(message):
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no kernel message matching {pattern!r} in {timeout}s")
            select.select([self._fd], [], [], remaining)


@contextlib.contextmanager
def kmsg_tail() -> Iterator[KmsgTail]:
    tail = KmsgTail()
    try:
        yield tail
    finally:
        tail.close()
