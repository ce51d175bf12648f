"""Running an operator's executable (hook, fence agent, package query) with a deadline.

The child gets its own session, cwd `/` and only the environment it is given, so
a timeout can kill everything it started (SIGKILL to the process group). The
caller never waits on it past the timeout and two short graces:

- its combined stdout and stderr come through a pipe of our own into a bounded
  tail; a child it left running may hold that pipe open after it exits, so output
  is drained for DRAIN_GRACE after the exit and then the pipe is closed;
- a child stuck in D state (on the very filesystem that froze, say) cannot die
  before the thaw, so KILL_GRACE after its SIGKILL it is left behind and the
  result says so.

Nothing the child does makes the runner raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# How much of the combined stdout and stderr a result carries (its end).
OUTPUT_TAIL_BYTES = 4096
# How long a child killed at its timeout may take to go before it is left behind.
KILL_GRACE = 2.0
# How long output is still read after the child exited (from a child it left running).
DRAIN_GRACE = 0.5


@dataclass(frozen=True)
class ExecResult:
    """How one run ended.

    `exit_code` speaks like a shell: the exit status, minus the signal that killed
    it, 127 (not found) or 126 (not runnable) when it could not be started.
    `note` is the runner's own word, set when the child did not exit by itself:
    why it could not start, or how the timeout went.
    """

    exit_code: int
    output: bytes  # the end of the combined stdout and stderr, at most OUTPUT_TAIL_BYTES
    duration: float
    timed_out: bool = False
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def output_tail(self) -> str:
        return tail_text(self.output)

    def describe(self) -> str:
        """One line for logs and audit: the runner's note, or the exit and the last line."""
        if self.note:
            return self.note
        last = self.output_tail.strip().splitlines()[-1:] or [""]
        return f"exit {self.exit_code}" + (f": {last[0][:200]}" if last[0] else "")


def tail_text(output: bytes, last_line: str = "") -> str:
    """The end of `output` and then `last_line` on a line of its own, at most
    OUTPUT_TAIL_BYTES in all, cut at a character boundary."""
    line = f"{last_line}\n".encode() if last_line else b""
    # One byte is kept back for the newline that puts the line on a line of its own.
    budget = OUTPUT_TAIL_BYTES - len(line) - (1 if line else 0)
    keep = output[max(0, len(output) - budget) :]
    if line and keep and not keep.endswith(b"\n"):
        keep += b"\n"
    # A cut through a multi-byte character leaves continuation bytes at the front.
    while keep and keep[0] & 0xC0 == 0x80:
        keep = keep[1:]
    return (keep + line).decode("utf-8", errors="replace")


async def run_executable(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str],
    stdin: bytes | None = None,
    kill_grace: float = KILL_GRACE,
    what: str = "",
) -> ExecResult:
    """Runs `argv` to completion or to its timeout; stdin is /dev/null unless given.

    `what` names it in the note ("hook /etc/hangwatch/promote"); argv[0] by default.
    Cancelling the caller kills the child's process group too.
    """
    started = time.monotonic()
    what = what or argv[0]
    loop = asyncio.get_running_loop()
    out_read, out_write = os.pipe()
    child_stdin, feed = subprocess.DEVNULL, -1
    if stdin is not None:
        child_stdin, feed = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=child_stdin,
            stdout=out_write,
            stderr=out_write,
            cwd="/",
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        os.close(out_read)
        if stdin is not None:
            os.close(feed)
        return ExecResult(
            127 if isinstance(exc, FileNotFoundError) else 126,
            b"",
            time.monotonic() - started,
            note=f"cannot run {what}: {exc.strerror or exc}",
        )
    finally:
        os.close(out_write)
        if stdin is not None:
            os.close(child_stdin)
    feeder: asyncio.WriteTransport | None = None
    if stdin is not None:
        feeder, _ = await loop.connect_write_pipe(
            asyncio.BaseProtocol, os.fdopen(feed, "wb", buffering=0)
        )
        feeder.write(stdin)
        feeder.close()  # once written: the child then reads end of file
    output = bytearray()
    reader = asyncio.StreamReader()
    drain, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(out_read, "rb", buffering=0)
    )

    async def collect() -> None:
        while chunk := await reader.read(65536):
            output.extend(chunk)
            del output[:-OUTPUT_TAIL_BYTES]

    collector = asyncio.create_task(collect())
    timed_out, note = False, ""
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            timed_out, note = True, await _kill(proc, timeout, kill_grace)
        await asyncio.wait({collector}, timeout=DRAIN_GRACE)
    finally:
        collector.cancel()
        drain.close()
        if feeder is not None and feeder.get_write_buffer_size():
            feeder.abort()  # the child never read it all
        if proc.returncode is None:
            # Cancelled (the caller stops) or left behind: it gets SIGKILL either way.
            _killpg(proc.pid)
    code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return ExecResult(code, bytes(output), time.monotonic() - started, timed_out, note)


def run_executable_blocking(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str]
) -> ExecResult:
    """`run_executable` for synchronous code, on an event loop of its own in a worker
    thread (so it works whether or not the calling thread runs a loop)."""
    with ThreadPoolExecutor(1, thread_name_prefix="executable") as pool:
        return pool.submit(asyncio.run, run_executable(argv, timeout=timeout, env=env)).result()


async def _kill(proc: asyncio.subprocess.Process, timeout: float, grace: float) -> str:
    """SIGKILLs the child's process group and says whether it went."""
    _killpg(proc.pid)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        return (
            f"killed at the {timeout:g}s timeout but still there {grace:g}s after SIGKILL "
            f"(stuck in D state?): left behind as pid {proc.pid}"
        )
    return f"killed at the {timeout:g}s timeout"


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
