"""Upgrade plans to and from JSON, for the store (the record is one column)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from controller.upgrades.planner import HState, Plan, PlanHost, PState


def dumps(plan: Plan) -> str:
    data = dataclasses.asdict(plan)
    data["state"] = plan.state.value
    for host in data["hosts"]:
        host["state"] = host["state"].value
    return json.dumps(data, sort_keys=True)


def loads(text: str) -> Plan:
    data: dict[str, Any] = json.loads(text)
    data["state"] = PState(data["state"])
    data["hosts"] = tuple(
        PlanHost(
            **{
                **h,
                "state": HState(h["state"]),
                "mounts_fs": tuple((m, v) for m, v in h["mounts_fs"]),
            }
        )
        for h in data["hosts"]
    )
    return Plan(**data)
