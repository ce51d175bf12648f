"""The [testing] hooks: none unless asked; a synthetic burst is numbered and complete."""

from __future__ import annotations

import asyncio

from agent import config, testing
from agent.events import EventFactory
from hangwatch.v1 import types_pb2 as pb


def test_default_settings_ask_for_no_hook() -> None:
    assert testing.hooks(config.TestingSettings(), lambda _: None, EventFactory("m1"), 0.0) == {}


def test_synthetic_burst_publishes_each_event_once_in_order() -> None:
    published: list[pb.Event] = []
    settings = config.TestingSettings(synthetic_events=250, synthetic_rate_per_second=10_000.0)
    hooks = testing.hooks(settings, published.append, EventFactory("m1"), 0.0)
    assert list(hooks) == ["synthetic"]
    asyncio.run(hooks["synthetic"])
    assert [e.evidence.attributes["n"] for e in published] == [str(n) for n in range(1, 251)]
    assert {e.kind for e in published} == {"SYNTHETIC_TEST"}
    assert [e.host_seq for e in published] == sorted({e.host_seq for e in published})
