"""Failover records to and from JSON, for the store (the record is one column)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from controller.failover.machine import Failover, Step
from controller.failover.model import Candidate, FState, Trigger


def dumps(f: Failover) -> str:
    data = dataclasses.asdict(f)
    data["state"] = f.state.value
    data["trigger"] = f.trigger.value
    for step in data["steps"]:
        step["state"] = step["state"].value
    return json.dumps(data, sort_keys=True)


def loads(text: str) -> Failover:
    data: dict[str, Any] = json.loads(text)
    data["state"] = FState(data["state"])
    data["trigger"] = Trigger(data["trigger"])
    data["steps"] = tuple(Step(**{**s, "state": FState(s["state"])}) for s in data["steps"])
    data["candidates"] = tuple(
        Candidate(**{**c, "reasons": tuple(c["reasons"])}) for c in data["candidates"]
    )
    return Failover(**data)
