"""Follows the controller's Commands stream for as long as the agent runs.

gRPC does not retry a stream once response headers have arrived, so reconnecting
is this loop's job: any end of the stream is followed by a new one, paced by the
shared backoff (agent/link/backoff.py). The backoff starts afresh after a stream that
stayed up longer than the longest wait, so the first reconnect after a controller
restart comes at once rather than at the capped delay. The controller sends
every unanswered command again on each new stream; ids already queued or running
here are skipped, and ids already handled are answered from the record.

Commands run one at a time per group, in arrival order (a demote and a promote of
one group must not overlap), while groups proceed independently. Each result is
reported until the controller acknowledges it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from agent.config import AgentConfig
from agent.failover.commands import CommandHandler
from agent.link.backoff import retrying
from agent.link.channel import COMMANDS, ControllerLink
from hangwatch.messages import enum_label
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

# Answers to a result report that sending it again cannot change.
_REJECTED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


class CommandStream:
    def __init__(self, config: AgentConfig, link: ControllerLink, handler: CommandHandler) -> None:
        self._host_id = config.host_id
        self._reconnect = config.reconnect
        self._link = link
        self._handler = handler
        self._queues: dict[str, asyncio.Queue[pb.Command]] = {}
        self._workers: list[asyncio.Task[None]] = []
        # Ids queued, running or being reported: a copy sent again is skipped.
        self._pending: set[str] = set()

    async def run(self) -> None:
        await self._handler.start()
        try:
            while True:
                async for attempt in retrying(self._reconnect, "command stream"):
                    with attempt:
                        await self._follow()
        finally:
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)

    async def _follow(self) -> None:
        """One stream, to its end; raises (for the backoff) unless it stayed up long."""
        opened = time.monotonic()
        call = self._link.commands(agent_pb.CommandsRequest(host_id=self._host_id))
        try:
            async for command in call:
                self._dispatch(command)
        except grpc.aio.AioRpcError as exc:
            self._link.calls.count(COMMANDS, exc.code())
            if time.monotonic() - opened < self._reconnect.max_backoff_seconds:
                raise
            log.warning("command stream broke: %s %s; reconnecting", exc.code().name, exc.details())
            return
        finally:
            call.cancel()
        self._link.calls.count(COMMANDS, grpc.StatusCode.OK)
        log.info("the controller ended the command stream; reconnecting")
        # A controller ending streams at once must not make this a busy loop.
        await asyncio.sleep(self._reconnect.initial_backoff_seconds)

    def _dispatch(self, command: pb.Command) -> None:
        if not command.id:
            log.error("ignoring a command without an id: %s", command)
            return
        if command.id in self._pending:
            log.debug("command %s is already in hand", command.id)
            return
        self._pending.add(command.id)
        queue = self._queues.get(command.group)
        if queue is None:
            queue = self._queues[command.group] = asyncio.Queue()
            self._workers.append(
                asyncio.create_task(self._work(queue), name=f"commands-{command.group}")
            )
        queue.put_nowait(command)

    async def _work(self, queue: asyncio.Queue[pb.Command]) -> None:
        while True:
            command = await queue.get()
            try:
                await self._report(await self._handler.handle(command))
            except Exception:
                # A bug must not stall the group: the command comes again on the next stream.
                log.exception("command %s failed in the agent", command.id)
            finally:
                self._pending.discard(command.id)

    async def _report(self, result: pb.CommandResult) -> None:
        request = agent_pb.ReportCommandResultRequest(result=result)
        async for attempt in retrying(self._reconnect, f"report of command {result.command_id}"):
            with attempt:
                try:
                    await self._link.report_command_result(request)
                except grpc.aio.AioRpcError as exc:
                    if exc.code() not in _REJECTED:
                        raise
                    log.error(
                        "the controller refused the result of command %s: %s %s",
                        result.command_id,
                        exc.code().name,
                        exc.details(),
                    )
                    return
        log.info(
            "command %s: reported %s",
            result.command_id,
            enum_label(pb.CommandStatus, result.status),
        )
