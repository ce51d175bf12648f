"""Failover hooks: the executables that demote, promote or check a group's service here.

A hook runs through the shared executable runner (its own session, cwd `/`, a
bounded output tail, SIGKILL of its process group at the timeout, left behind
when stuck in D state) with stdin from /dev/null and only PATH plus the
HANGWATCH_* variables in its environment: the agent's own (NOTIFY_SOCKET, say)
are none of its business. Its result becomes a CommandStatus, and what the runner
has to say about it ends the output tail as a line of the agent's own.

Hooks must not live on a monitored filesystem: starting one reads its file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hangwatch.executables import KILL_GRACE, ExecResult, run_executable, tail_text
from hangwatch.messages import enum_label
from hangwatch.v1 import types_pb2 as pb


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
    """The end of the output with the agent's note as its last line, within the bound."""
    return tail_text(output, f"hangwatch-agent: {note}" if note else "")


def _status(result: ExecResult) -> pb.CommandStatus.ValueType:
    if result.timed_out:
        return pb.COMMAND_STATUS_TIMED_OUT
    return pb.COMMAND_STATUS_SUCCEEDED if result.ok else pb.COMMAND_STATUS_FAILED


async def run_hook(
    path: str, env: Mapping[str, str], timeout: float, *, kill_grace: float = KILL_GRACE
) -> HookRun:
    """Runs the hook at `path` to completion or to its timeout; never raises for the hook."""
    result = await run_executable(
        [path], timeout=timeout, env=env, kill_grace=kill_grace, what=f"hook {path}"
    )
    return HookRun(
        _status(result),
        result.exit_code,
        output_tail(result.output, result.note),
        result.duration,
    )
