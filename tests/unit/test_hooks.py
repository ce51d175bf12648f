"""Hooks are real executables written here: exit codes, timeouts, environment, output tail."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest
from lockups import task_state, wait_until

from agent.config import HookSettings
from agent.failover.commands import CommandHandler
from agent.failover.hooks import HookRun, hook_environment, output_tail, run_hook
from hangwatch import executables, pbtime
from hangwatch.executables import OUTPUT_TAIL_BYTES
from hangwatch.v1 import types_pb2 as pb

pytestmark = pytest.mark.timeout(60)

COMMAND = pb.Command(
    id="f7-promote",
    group="mail",
    epoch=12,
    action=pb.ACTION_PROMOTE,
    reason="mail1: /srv/mail locked",
    failover_id="f7",
    role="primary",
)


def script(tmp_path: Path, body: str, name: str = "hook") -> Path:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def run(path: Path | str, timeout: float = 10.0, **kwargs: float) -> HookRun:
    env = hook_environment(COMMAND, "mail2")
    return asyncio.run(run_hook(str(path), env, timeout, **kwargs))


def test_success_with_the_command_in_the_environment(tmp_path: Path) -> None:
    out = tmp_path / "env"
    hook = script(tmp_path, f'env > {out}; pwd >> {out}; cat >> {out}; echo "promoted $1"')
    result = run(hook)
    assert (result.status, result.exit_code) == (pb.COMMAND_STATUS_SUCCEEDED, 0)
    assert result.output_tail == "promoted \n"
    assert 0 < result.duration < 5
    *env_lines, cwd = out.read_text().splitlines()
    env = dict(line.split("=", 1) for line in env_lines)
    assert cwd == "/"  # and stdin was empty: nothing after pwd's line
    assert {k: v for k, v in env.items() if k.startswith("HANGWATCH_")} == {
        "HANGWATCH_GROUP": "mail",
        "HANGWATCH_EPOCH": "12",
        "HANGWATCH_ROLE": "primary",
        "HANGWATCH_ACTION": "promote",
        "HANGWATCH_REASON": "mail1: /srv/mail locked",
        "HANGWATCH_COMMAND_ID": "f7-promote",
        "HANGWATCH_FAILOVER_ID": "f7",
        "HANGWATCH_HOST_ID": "mail2",
    }
    assert "NOTIFY_SOCKET" not in env and "HOME" not in env


def test_nonzero_exit_fails_with_stdout_and_stderr(tmp_path: Path) -> None:
    result = run(script(tmp_path, "echo starting; echo 'no VIP' >&2; exit 3"))
    assert (result.status, result.exit_code) == (pb.COMMAND_STATUS_FAILED, 3)
    assert result.output_tail == "starting\nno VIP\n"


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    hook = script(tmp_path, f"sleep 300 & echo $! > {pids}; echo waiting; sleep 300")
    started = time.monotonic()
    result = run(hook, timeout=1.0, kill_grace=2.0)
    assert time.monotonic() - started < 1.0 + 2.0 + 1.0
    assert result.status == pb.COMMAND_STATUS_TIMED_OUT
    assert result.exit_code == -9
    assert result.output_tail == "waiting\nhangwatch-agent: killed at the 1s timeout\n"
    background = int(pids.read_text())
    # Its SIGKILL is sent; a loaded machine may take a moment to finish it off.
    wait_until(lambda: task_state(background)[0] in ("", "Z") or None, 2.0, "the child to die")


def test_an_unkillable_hook_is_left_behind_after_the_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a hook in D state would, this one survives its SIGKILL (which is never sent).
    tests/integration/test_command_stream.py has the real thing, as root."""
    monkeypatch.setattr(executables, "_killpg", lambda pgid: None)
    hook = script(tmp_path, "sleep 300")
    started = time.monotonic()
    try:
        result = run(hook, timeout=0.5, kill_grace=0.5)
    finally:
        # Only the hook and its sleep: other children (a test etcd cluster) stay.
        for child in psutil.Process().children(recursive=True):
            if child.cmdline() in (["/bin/sh", str(hook)], ["sleep", "300"]):
                child.kill()
    assert time.monotonic() - started < 0.5 + 0.5 + executables.DRAIN_GRACE + 1.0
    assert result.status == pb.COMMAND_STATUS_TIMED_OUT
    assert "still there 0.5s after SIGKILL (stuck in D state?): left behind as pid" in (
        result.output_tail
    )


def test_missing_and_unrunnable_hooks_fail_with_the_reason(tmp_path: Path) -> None:
    missing = run(tmp_path / "absent")
    assert (missing.status, missing.exit_code) == (pb.COMMAND_STATUS_FAILED, 127)
    assert f"cannot run hook {tmp_path / 'absent'}: No such file or directory" in (
        missing.output_tail
    )
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    denied = run(plain)
    assert (denied.status, denied.exit_code) == (pb.COMMAND_STATUS_FAILED, 126)
    assert "Permission denied" in denied.output_tail


def test_output_tail_keeps_the_last_4_kib(tmp_path: Path) -> None:
    hook = script(tmp_path, "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done")
    result = run(hook)
    assert result.status == pb.COMMAND_STATUS_SUCCEEDED
    assert len(result.output_tail.encode()) <= OUTPUT_TAIL_BYTES
    assert len(result.output_tail.encode()) > OUTPUT_TAIL_BYTES - 12
    assert result.output_tail.endswith("line-1998\nline-1999\n")


def test_output_tail_makes_room_for_the_note_and_cuts_whole_characters() -> None:
    tail = output_tail("é".encode() * 4000, "killed at the 1s timeout")
    assert len(tail.encode()) <= OUTPUT_TAIL_BYTES
    assert tail.endswith("éé\nhangwatch-agent: killed at the 1s timeout\n")
    assert "\ufffd" not in tail
    assert output_tail(b"", "no hook") == "hangwatch-agent: no hook\n"


def test_handler_answers_no_hook_when_none_is_configured(tmp_path: Path) -> None:
    handler = CommandHandler("mail2", HookSettings(demote="/bin/false"), tmp_path)
    result = asyncio.run(handler.handle(COMMAND))
    assert result.status == pb.COMMAND_STATUS_NO_HOOK
    assert result.output_tail == "hangwatch-agent: no promote hook configured ([hooks] promote)\n"


def test_handler_runs_a_command_once_across_restarts(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    settings = HookSettings(promote=str(script(tmp_path, f"echo $HANGWATCH_EPOCH >> {runs}")))
    state = tmp_path / "state"

    async def fresh_agent(command: pb.Command) -> pb.CommandResult:
        handler = CommandHandler("mail2", settings, state)
        await handler.start()
        return await handler.handle(command)

    first = asyncio.run(fresh_agent(COMMAND))
    assert first.status == pb.COMMAND_STATUS_SUCCEEDED
    assert pbtime.seconds(first.duration) > 0
    assert asyncio.run(fresh_agent(COMMAND)) == first
    stale = pb.Command(id="f6-promote", group="mail", epoch=11, action=pb.ACTION_PROMOTE)
    refused = asyncio.run(fresh_agent(stale))
    assert (refused.status, refused.known_epoch) == (pb.COMMAND_STATUS_STALE_EPOCH, 12)
    assert runs.read_text() == "12\n"
    assert sorted(p.name for p in state.iterdir()) == ["commands.json"]


def test_an_unreadable_epoch_record_refuses_every_command_and_is_never_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged commands.json holds the epochs this host promised to honour: the agent
    refuses every command, says why in the result and in its log, reports no epochs, and
    leaves the file as it is. Fails on the old code, which started empty, ran the hook
    and wrote a fresh record over the damaged one."""
    runs = tmp_path / "runs"
    settings = HookSettings(promote=str(script(tmp_path, f"echo ran >> {runs}")))
    state = tmp_path / "state"
    state.mkdir()
    damaged = b'{"format": 1, "epochs": {"mail": 13}, "results": [' + b"\x00" * 8
    (state / "commands.json").write_bytes(damaged)

    async def main() -> pb.CommandResult:
        handler = CommandHandler("mail2", settings, state)
        await handler.start()
        assert handler.known_epochs() == {}
        return await handler.handle(COMMAND)

    result = asyncio.run(main())
    assert result.status == pb.COMMAND_STATUS_FAILED
    assert "not run: the saved epochs cannot be read" in result.output_tail
    assert f"{state / 'commands.json'} is damaged" in result.output_tail
    assert "repair it, or remove it" in result.output_tail
    assert not runs.exists()
    assert (state / "commands.json").read_bytes() == damaged
    logged = [r.getMessage() for r in caplog.records]
    assert any("command state NOT LOADED" in m for m in logged)
    assert any(f"command {COMMAND.id} not run" in m for m in logged)
