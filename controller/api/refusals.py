"""Refusals reach the audit log at most once per window for each caller and reason.

A refused call is worth keeping (someone tried what they may not), but a caller that
repeats one (an agent heartbeating for other hosts' ids) must not write a row per
call: thousands of rows a second would bury everything else in the log. The first
refusal of a window is written as it comes; later ones in the same window are only
counted, and when the window ends one summary entry says how many there were and
what the last one was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.api.identity import Caller
from hangwatch.errors import HangwatchError, PermissionDenied

WINDOW_SECONDS = 10.0
# Windows kept at once; beyond that, new callers share one window per reason (without
# TLS a caller names itself, and could otherwise grow the table at will).
MAX_WINDOWS = 10_000
OTHERS = Caller("(other callers)", "none")

# (caller, action, target, refusal) -> appended to the audit log (`AuditLog.refused`).
Audit = Callable[[Caller, str, str, HangwatchError], Awaitable[None]]


@dataclass
class _Window:
    opened: float
    who: Caller
    action: str = ""
    target: str = ""
    last: HangwatchError | None = None
    # Refusals after the first one, which was written when the window opened.
    more: int = 0


def reason(refusal: HangwatchError) -> str:
    """What a refusal is about, for grouping: the field or rule its message names
    ("host_id", "role"), not the values that differ from call to call."""
    return str(refusal).split(":", 1)[0][:80]


class RefusalLog:
    def __init__(self, audit: Audit, window: float = WINDOW_SECONDS) -> None:
        self._audit = audit
        self.window = window
        self._windows: dict[tuple[str, str, str], _Window] = {}
        self._closing: set[asyncio.Task[None]] = set()

    async def refused(self, who: Caller, action: str, target: str, refusal: HangwatchError) -> None:
        """Writes `refusal` if it opens a window for its caller and reason; else counts it."""
        key = (who.name, who.role, reason(refusal))
        if key not in self._windows and len(self._windows) >= MAX_WINDOWS:
            who, key = OTHERS, (OTHERS.name, OTHERS.role, key[2])
        window = self._windows.get(key)
        if window is not None:
            window.more += 1
            window.action, window.target, window.last = action, target, refusal
            return
        self._windows[key] = _Window(time.monotonic(), who)
        task = asyncio.get_running_loop().create_task(self._close_later(key))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        await self._audit(who, action, target, refusal)

    async def _close_later(self, key: tuple[str, str, str]) -> None:
        await asyncio.sleep(self.window)
        await self._close(key)

    async def _close(self, key: tuple[str, str, str]) -> None:
        window = self._windows.pop(key, None)
        if window is None or not window.more or window.last is None:
            return
        seconds = time.monotonic() - window.opened
        summary = PermissionDenied(
            f"{window.more} more like it in {seconds:.0f}s, not written one by one; "
            f"the last: {window.last}"
        )
        await self._audit(window.who, window.action, window.target, summary)
