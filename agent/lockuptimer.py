"""How long the agent takes to confirm a lockup: from a mount's first sign of trouble
(the moment it left OK) to LOCKUP_CONFIRMED.

The health engine passes every mount through SUSPECT on its way to LOCKED, at the
first signal that counts against it, so that transition marks the start. Only first
confirmations are timed: a relapse from RECOVERING belongs to a lockup already timed.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Histogram
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from agent.health import State, Transition

# The defaults confirm a stuck probe in 4-10 s; a hung-task report takes the kernel's
# hung_task_timeout_secs (120 s by default) to appear.
DETECTION_BUCKETS = (1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0)


class LockupTimer(Collector):
    def __init__(self) -> None:
        self._left_ok: dict[str, float] = {}
        self.histogram = Histogram(
            "hangwatch_lockup_detection_seconds",
            "From a mount's first sign of trouble (it left OK) to LOCKUP_CONFIRMED",
            buckets=DETECTION_BUCKETS,
            registry=None,
        )

    def observe(self, t: Transition) -> float | None:
        """Takes every transition in order; returns the time a confirmation took."""
        if t.before is State.OK:
            self._left_ok[t.mount] = t.at
        elif t.after is State.OK:
            self._left_ok.pop(t.mount, None)
        if t.after is State.LOCKED and t.before in (State.OK, State.SUSPECT):
            took = max(0.0, t.at - self._left_ok.get(t.mount, t.at))
            self.histogram.observe(took)
            return took
        return None

    def collect(self) -> Iterable[Metric]:
        return self.histogram.collect()
