"""Running an operator's executable (hook, fence agent) with a deadline, never hanging.

The child gets its own session so a timeout kills everything it started; a child
stuck in D state may not die at once, so after a short grace it is left behind
and the result says so, rather than the caller waiting on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OUTPUT_TAIL = 4096
KILL_GRACE = 2.0


@dataclass(frozen=True)
class ExecResult:
    exit_code: int | None  # None: did not finish (timed out or could not start)
    output_tail: str
    duration: float
    timed_out: bool = False
    error: str = ""  # could not start it at all

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.timed_out:
            return f"timed out after {self.duration:.1f}s"
        last = self.output_tail.strip().splitlines()[-1:] or [""]
        return f"exit {self.exit_code}" + (f": {last[0][:200]}" if last[0] else "")


async def run_executable(
    argv: Sequence[str], *, timeout: float, stdin: bytes = b"", env: Mapping[str, str] | None = None
) -> ExecResult:
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd="/",
            start_new_session=True,
            env=dict(env) if env is not None else None,
        )
    except OSError as exc:
        return ExecResult(
            None,
            "",
            time.monotonic() - started,
            error=f"cannot run {argv[0]}: {exc.strerror or exc}",
        )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), KILL_GRACE)
        return ExecResult(None, "", time.monotonic() - started, timed_out=True)
    tail = out[-OUTPUT_TAIL:].decode("utf-8", "replace")
    return ExecResult(proc.returncode, tail, time.monotonic() - started)
