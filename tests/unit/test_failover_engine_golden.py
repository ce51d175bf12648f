"""Golden files for the failover engine: cluster state in, plan out (as Pacemaker does).

Each tests/golden/failover/NAME.state.json has a NAME.plan.json beside it. To
accept a deliberate change of behaviour, run with HANGWATCH_UPDATE_GOLDEN=1 and
review the diff of the plan files like code.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from pathlib import Path
from typing import Any

import pytest

from controller.failover.engine import decide
from controller.failover.model import (
    ClusterState,
    FailoverState,
    FailoverView,
    GroupView,
    HostView,
    Policy,
    Trigger,
)

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "failover"
CASES = sorted(p.name.removesuffix(".state.json") for p in GOLDEN.glob("*.state.json"))


def load_state(data: dict[str, Any]) -> ClusterState:
    return ClusterState(
        now=data["now"],
        groups=tuple(
            GroupView(**{**g, "members": tuple(g["members"]), "mounts": tuple(g["mounts"])})
            for g in data["groups"]
        ),
        hosts={
            h["host_id"]: HostView(**{**h, "advisories": tuple(h.get("advisories", ()))})
            for h in data["hosts"]
        },
        failovers=tuple(
            FailoverView(
                **{
                    **f,
                    "state": FailoverState(f["state"]),
                    "trigger": Trigger(f["trigger"]) if f.get("trigger") else None,
                }
            )
            for f in data.get("failovers", ())
        ),
        automation=data.get("automation", True),
        cluster_maintenance=data.get("cluster_maintenance", False),
        policy=Policy(**data.get("policy", {})),
        settling_until=data.get("settling_until", 0.0),
    )


def plan_json(state: ClusterState) -> list[dict[str, Any]]:
    def plain(value: Any) -> Any:
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return [{"decision": type(d).__name__, **plain(dataclasses.asdict(d))} for d in decide(state)]


@pytest.mark.parametrize("case", CASES)
def test_golden_plan(case: str) -> None:
    state = load_state(json.loads((GOLDEN / f"{case}.state.json").read_text()))
    plan = plan_json(state)
    plan_path = GOLDEN / f"{case}.plan.json"
    if os.environ.get("HANGWATCH_UPDATE_GOLDEN") == "1":
        plan_path.write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n")
    assert plan == json.loads(plan_path.read_text()), f"plan for {case} changed"


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 10
