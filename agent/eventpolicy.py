"""Which signals become events (pure).

Health transitions always do. Kernel-log detections do (their rules carry rate
limits). Other notable signals are edge-triggered: the first of a kind for a mount
is sent, and the same condition is sent again only after `repeat_after` seconds, so
a stuck probe checked every two seconds is one event a minute, not thirty.
Routine signals (a probe that completed, a device that did I/O) never are.
"""

from __future__ import annotations

from agent.signals import Kind, Severity, Signal

ROUTINE = frozenset({Kind.PROBE_OK, Kind.DEVICE_PROGRESS, Kind.DEVICE_IDLE})


class EventPolicy:
    def __init__(self, repeat_after: float) -> None:
        self.repeat_after = repeat_after
        self._last: dict[tuple[str | None, str], float] = {}

    def admit(self, signal: Signal) -> bool:
        if signal.kind in ROUTINE:
            return False
        if signal.source == "kmsg":
            return True
        if signal.severity < Severity.WARNING and not signal.kind.endswith(
            ("_RESTORED", "_RECOVERED")
        ):
            return False
        key = (signal.mount, signal.kind)
        last = self._last.get(key)
        if last is not None and signal.at - last < self.repeat_after:
            return False
        self._last[key] = signal.at
        return True
