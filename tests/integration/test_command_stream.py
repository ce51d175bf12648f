"""The agent's command path against a stand-in controller on loopback, and a frozen disk.

The stand-in implements only Commands and ReportCommandResult, with real gRPC; the
end-to-end failover against the real controller lives with the controller's tests.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from lockups import LoopFs, loop_gaps

from agent.config import AgentConfig, ControllerSettings, HookSettings, ReconnectSettings
from agent.failover.commands import CommandHandler
from agent.failover.hooks import hook_environment, run_hook
from agent.link.channel import ControllerLink
from agent.link.command_stream import CommandStream
from hangwatch import pbtime
from hangwatch.executables import DRAIN_GRACE, KILL_GRACE
from hangwatch.grpcopts import server_options
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import free_port
from lab.scratchfs import frozen

pytestmark = pytest.mark.timeout(60)

HOST = "mail2"


def script(tmp_path: Path, body: str, name: str = "hook") -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def demote(cid: str, epoch: int = 4, group: str = "mail", reason: str = "") -> pb.Command:
    return pb.Command(
        id=cid, group=group, epoch=epoch, action=pb.ACTION_DEMOTE, role="standby", reason=reason
    )


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class StandIn(agent_grpc.AgentServiceServicer):
    """Each new Commands stream runs the next of `streams` (the last one for ever)."""

    def __init__(
        self,
        streams: list[
            Callable[[StandIn, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[pb.Command]]
        ],
    ) -> None:
        self.streams = streams
        self.opened = 0
        self.reports: list[pb.CommandResult] = []
        self.refuse_reports = 0

    async def Commands(
        self, request: agent_pb.CommandsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.Command]:
        assert request.host_id == HOST
        stream = self.streams[min(self.opened, len(self.streams) - 1)]
        self.opened += 1
        async for command in stream(self, context):
            yield command

    async def ReportCommandResult(
        self,
        request: agent_pb.ReportCommandResultRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> agent_pb.ReportCommandResultResponse:
        if self.refuse_reports:
            self.refuse_reports -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "controller busy")
        self.reports.append(request.result)
        return agent_pb.ReportCommandResultResponse()


async def with_agent(
    tmp_path: Path, stand_in: StandIn, hooks: HookSettings, body: Callable[[], Awaitable[None]]
) -> None:
    """Runs the agent's command stream against `stand_in` while `body` runs."""
    port = free_port()
    server = grpc.aio.server(options=server_options())
    agent_grpc.add_AgentServiceServicer_to_server(stand_in, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    config = AgentConfig(
        host_id=HOST,
        state_dir=str(tmp_path / "state"),
        controller=ControllerSettings(address=f"127.0.0.1:{port}", insecure=True),
        reconnect=ReconnectSettings(initial_backoff_seconds=0.05, max_backoff_seconds=0.2),
        hooks=hooks,
    )
    link = ControllerLink(config)
    task = asyncio.create_task(
        CommandStream(config, link, CommandHandler(HOST, hooks, Path(config.state_dir))).run()
    )
    try:
        await body()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await link.close()
        await server.stop(None)


def test_a_command_sent_again_across_reconnects_runs_its_hook_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    hooks = HookSettings(
        demote=script(tmp_path, f"sleep 0.5; echo $HANGWATCH_COMMAND_ID >> {runs}")
    )
    command = demote("f1-demote")

    async def send_then_break(
        s: StandIn, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.Command]:
        yield command  # the hook is still running when the command comes again
        await context.abort(grpc.StatusCode.UNAVAILABLE, "controller restarting")

    async def send_after_the_report_then_break(
        s: StandIn, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.Command]:
        yield command
        await until(lambda: bool(s.reports), 10, "the first report")
        await context.abort(grpc.StatusCode.UNAVAILABLE, "controller restarting")

    async def send_and_stay(
        s: StandIn, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.Command]:
        yield command  # a controller that lost the report: the agent answers from its record
        await asyncio.Event().wait()

    stand_in = StandIn([send_then_break, send_after_the_report_then_break, send_and_stay])
    stand_in.refuse_reports = 2

    async def body() -> None:
        await until(lambda: len(stand_in.reports) >= 2, 15, "two reports")

    asyncio.run(with_agent(tmp_path, stand_in, hooks, body))
    assert stand_in.opened == 3
    assert runs.read_text() == "f1-demote\n"
    first, again = stand_in.reports[:2]
    assert first.status == pb.COMMAND_STATUS_SUCCEEDED
    assert (first.command_id, first.host_id, first.epoch) == ("f1-demote", HOST, 4)
    assert again == first


def test_commands_run_one_at_a_time_per_group_in_arrival_order(tmp_path: Path) -> None:
    log = tmp_path / "log"
    hooks = HookSettings(
        demote=script(
            tmp_path,
            f'echo "start $HANGWATCH_COMMAND_ID" >> {log}; sleep "$HANGWATCH_REASON"; '
            f'echo "end $HANGWATCH_COMMAND_ID" >> {log}',
        )
    )

    async def three(
        s: StandIn, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.Command]:
        yield demote("a1", reason="0.6")
        yield demote("a2", reason="0")
        yield demote("b1", group="web", reason="0.1")
        await asyncio.Event().wait()

    stand_in = StandIn([three])

    async def body() -> None:
        await until(lambda: len(stand_in.reports) == 3, 15, "three reports")

    asyncio.run(with_agent(tmp_path, stand_in, hooks, body))
    lines = log.read_text().splitlines()
    assert lines.index("end b1") < lines.index("end a1") < lines.index("start a2")
    assert [r.command_id for r in stand_in.reports] == ["b1", "a1", "a2"]


@pytest.mark.root
def test_a_frozen_state_dir_fails_the_command_without_running_the_hook(
    loop_mount: LoopFs, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    hooks = HookSettings(demote=script(tmp_path, f"echo $HANGWATCH_COMMAND_ID >> {runs}"))

    async def go() -> tuple[pb.CommandResult, pb.CommandResult, pb.CommandResult, float]:
        handler = CommandHandler(HOST, hooks, Path(loop_mount.mount) / "state", state_timeout=1.0)
        await handler.start()
        with frozen(loop_mount.mount):
            async with loop_gaps() as gaps:  # the event loop keeps turning
                started = time.monotonic()
                timed_out = await handler.handle(demote("f1-demote"))
                assert time.monotonic() - started < 1.0 + 1.0
                still_stuck = await handler.handle(demote("f2-demote", epoch=5))
        # On thaw the stuck writer takes its SIGKILL; then the state dir works again.
        await asyncio.sleep(0.5)
        return timed_out, still_stuck, await handler.handle(demote("f3-demote", epoch=6)), max(gaps)

    timed_out, still_stuck, thawed, gap = asyncio.run(go())
    assert gap < 0.25
    state_dir = Path(loop_mount.mount) / "state"
    assert timed_out.status == pb.COMMAND_STATUS_FAILED
    assert timed_out.output_tail == (
        "hangwatch-agent: not run: cannot record epoch: "
        f"state dir {state_dir} not writable within 1s\n"
    )
    assert still_stuck.status == pb.COMMAND_STATUS_FAILED
    assert "is still stuck on it" in still_stuck.output_tail
    assert thawed.status == pb.COMMAND_STATUS_SUCCEEDED
    assert runs.read_text() == "f3-demote\n"


@pytest.mark.root
def test_a_hook_stuck_in_d_state_is_left_behind(loop_mount: LoopFs, tmp_path: Path) -> None:
    hook = script(tmp_path, f"echo demoting; echo x > {loop_mount.mount}/stuck")
    env = hook_environment(demote("f1-demote"), HOST)
    with frozen(loop_mount.mount):
        started = time.monotonic()
        result = asyncio.run(run_hook(hook, env, 0.5, kill_grace=0.5))
        elapsed = time.monotonic() - started
        left = [p for p in psutil.Process().children(recursive=True) if p.status() == "disk-sleep"]
    assert elapsed < 0.5 + 0.5 + DRAIN_GRACE + 0.5
    assert result.status == pb.COMMAND_STATUS_TIMED_OUT
    assert result.output_tail.startswith(
        "demoting\nhangwatch-agent: killed at the 0.5s timeout but"
    )
    assert "(stuck in D state?): left behind as pid" in result.output_tail
    assert len(left) == 1
    psutil.wait_procs(left, timeout=10)  # thawed: the pending SIGKILL lands


@pytest.mark.root
def test_a_hook_stuck_on_a_frozen_mount_ends_at_its_deadline_and_later_commands_run(
    loop_mount: LoopFs, tmp_path: Path
) -> None:
    """A real demote hook that writes to the frozen mount blocks in D state: it is
    killed at its command's deadline, reported TIMED_OUT and left behind, and the next
    command of the same group runs while the mount is still frozen. Fails on the old
    code, which ignored the deadline and gave the hook the configured 60 s."""
    log = tmp_path / "log"
    hooks = HookSettings(
        demote=script(tmp_path, f"echo x > {loop_mount.mount}/demoting; echo demoted >> {log}"),
        promote=script(tmp_path, f"echo promoted >> {log}", name="promote"),
        timeout_seconds=60.0,
        deadline_margin_seconds=0.5,
    )
    sent: list[float] = []

    async def two(
        s: StandIn, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.Command]:
        now = time.time()
        sent.append(time.monotonic())
        stuck = demote("f1-demote")
        stuck.deadline.CopyFrom(pbtime.timestamp(now + 2.5))
        later = pb.Command(
            id="f2-promote", group="mail", epoch=4, action=pb.ACTION_PROMOTE, role="primary"
        )
        later.deadline.CopyFrom(pbtime.timestamp(now + 30))
        yield stuck
        yield later
        await asyncio.Event().wait()

    stand_in = StandIn([two])
    left: list[psutil.Process] = []

    async def body() -> None:
        await until(lambda: len(stand_in.reports) == 2, 20, "both reports")
        left.extend(
            p for p in psutil.Process().children(recursive=True) if p.status() == "disk-sleep"
        )

    with frozen(loop_mount.mount):
        asyncio.run(with_agent(tmp_path, stand_in, hooks, body))
        done = time.monotonic()
        assert log.read_text() == "promoted\n"
    psutil.wait_procs(left, timeout=10)  # thawed: the pending SIGKILL lands
    stuck, later = stand_in.reports
    assert stuck.status == pb.COMMAND_STATUS_TIMED_OUT
    killed_at = re.search(r"killed at the ([\d.]+)s timeout", stuck.output_tail)
    assert killed_at and float(killed_at[1]) <= 2.5 - 0.5  # by the deadline, less the margin
    assert "left behind as pid" in stuck.output_tail
    assert later.status == pb.COMMAND_STATUS_SUCCEEDED
    assert done - sent[0] < 2.5 + KILL_GRACE + DRAIN_GRACE + 2.0
    assert len(left) == 1
