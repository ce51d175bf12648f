"""The agent's line in `systemctl status`: mount health, stalled sources, the controller."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from agent.health import HealthEngine, State
from agent.link.channel import ControllerLink
from agent.link.session import Session
from hangwatch import tls


def status_line(
    health: HealthEngine, stalled: Collection[str], session: Session, link: ControllerLink
) -> str:
    counts = Counter(state for state, _, _ in health.snapshot().values())
    mounts = ", ".join(f"{counts[s]} {s.name}" for s in State if counts[s]) or "none"
    stuck = f"; stalled: {', '.join(sorted(stalled))}" if stalled else ""
    controller = "connected" if session.connected.is_set() else "not connected"
    if link.refused:
        controller = f"{tls.REFUSED} ({link.refusals} times): {link.refused}"
    return f"mounts: {mounts}{stuck}; controller {controller}"
