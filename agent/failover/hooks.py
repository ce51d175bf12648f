"""Failover hooks: the executables that demote, promote or check a group's service here.

A hook runs as a child process in a session of its own (so a timeout kills
everything it started), with stdin from /dev/null, cwd `/` and only PATH plus the
HANGWATCH_* variables in its environment: the agent's own (NOTIFY_SOCKET, say)
are none of its business. The agent awaits it on the event loop and never blocks:
output is read from a pipe into a bounded tail, and at the timeout the whole
process group gets SIGKILL. A hook stuck in D state, on the very filesystem that
froze, cannot die before the thaw, so after a short grace it is left behind and
the result says so.

Hooks must not live on a monitored filesystem: starting one reads its file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass

from hangwatch.messages import enum_label
from hangwatch.v1 import types_pb2 as pb

# How much of a hook's combined stdout and stderr the result carries (its end).
OUTPUT_TAIL_BYTES = 4096
# How long a hook killed at its timeout may take to go before it is left behind.
KILL_GRACE = 2.0
# Output may still arrive after the hook exits, from a child it left running with
# the pipe open; it gets this long, then the pipe is closed.
DRAIN_GRACE = 0.5


@dataclass(frozen=True)
class HookRun:
    status: pb.CommandStatus.ValueType
    exit_code: int
    output_tail: str
    duration: float


def action_name(action: pb.Action.ValueType) -> str:
    """ "demote", "promote", "check": the [hooks] key and HANGWATCH_ACTION."""
    return enum_label(pb.Action, action).lower()


def hook_environment(command: pb.Command, host_id: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HANGWATCH_GROUP": command.group,
        "HANGWATCH_EPOCH": str(command.epoch),
        "HANGWATCH_ROLE": command.role,
        "HANGWATCH_ACTION": action_name(command.action),
        "HANGWATCH_REASON": command.reason,
        "HANGWATCH_COMMAND_ID": command.id,
        "HANGWATCH_FAILOVER_ID": command.failover_id,
        "HANGWATCH_HOST_ID": host_id,
    }


def output_tail(output: bytes, note: str = "") -> str:
    """The end of the output, at most OUTPUT_TAIL_BYTES with the agent's note included."""
    line = f"hangwatch-agent: {note}\n".encode() if note else b""
    # One byte is kept back for the newline that puts the note on a line of its own.
    budget = OUTPUT_TAIL_BYTES - len(line) - (1 if line else 0)
    keep = output[max(0, len(output) - budget) :]
    if line and keep and not keep.endswith(b"\n"):
        keep += b"\n"
    # A cut through a multi-byte character leaves continuation bytes at the front.
    while keep and keep[0] & 0xC0 == 0x80:
        keep = keep[1:]
    return (keep + line).decode("utf-8", errors="replace")


async def run_hook(
    path: str, env: Mapping[str, str], timeout: float, *, kill_grace: float = KILL_GRACE
) -> HookRun:
    """Runs the hook at `path` to completion or to its timeout; never raises for the hook."""
    started = time.monotonic()
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            path,
            stdin=subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            cwd="/",
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        os.close(read_fd)
        # The shell's codes: 127 not found, 126 found but not runnable.
        return HookRun(
            pb.COMMAND_STATUS_FAILED,
            127 if isinstance(exc, FileNotFoundError) else 126,
            output_tail(b"", f"cannot run hook {path}: {exc.strerror}"),
            time.monotonic() - started,
        )
    finally:
        os.close(write_fd)
    output = bytearray()
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )

    async def collect() -> None:
        while chunk := await reader.read(65536):
            output.extend(chunk)
            del output[:-OUTPUT_TAIL_BYTES]

    collector = asyncio.create_task(collect())
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            status, note = pb.COMMAND_STATUS_TIMED_OUT, await _kill(proc, timeout, kill_grace)
        else:
            status = (
                pb.COMMAND_STATUS_SUCCEEDED if proc.returncode == 0 else pb.COMMAND_STATUS_FAILED
            )
            note = ""
        await asyncio.wait({collector}, timeout=DRAIN_GRACE)
    finally:
        collector.cancel()
        transport.close()
        if proc.returncode is None:
            # Cancelled (the agent stops) or left behind: it gets SIGKILL either way.
            _killpg(proc.pid)
    code = proc.returncode if proc.returncode is not None else -signal.SIGKILL
    return HookRun(status, code, output_tail(bytes(output), note), time.monotonic() - started)


async def _kill(proc: asyncio.subprocess.Process, timeout: float, grace: float) -> str:
    """SIGKILLs the hook's process group and says whether it went."""
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
