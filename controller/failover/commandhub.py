"""Delivers commands to agents on their Commands streams.

Commands are stored before they are sent; a stream that opens first receives
every command of its host that has no result yet, then new ones as they are
queued. So a command survives a controller crash, an agent restart and a broken
stream; the agent recognises a command it already ran by its id.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from hangwatch.v1 import types_pb2 as pb


class CommandHub:
    def __init__(self, pending: Callable[[str], Awaitable[list[pb.Command]]]) -> None:
        """`pending(host)` gives the host's stored commands that have no result yet."""
        self._pending = pending
        self._queues: dict[str, set[asyncio.Queue[pb.Command]]] = collections.defaultdict(set)

    def connected(self) -> set[str]:
        return {h for h, queues in self._queues.items() if queues}

    def push(self, host: str, commands: Sequence[pb.Command]) -> None:
        for queue in self._queues.get(host, ()):
            for command in commands:
                queue.put_nowait(command)

    async def stream(self, host: str) -> AsyncIterator[pb.Command]:
        queue: asyncio.Queue[pb.Command] = asyncio.Queue()
        self._queues[host].add(queue)
        sent: set[str] = set()
        try:
            for command in await self._pending(host):
                sent.add(command.id)
                yield command
            while True:
                command = await queue.get()
                if command.id not in sent:
                    sent.add(command.id)
                    yield command
        finally:
            self._queues[host].discard(queue)
