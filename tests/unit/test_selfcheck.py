"""The agent's own health: a stalled source is reported once, and again when it recovers;
a stuck spool once."""

from __future__ import annotations

import time
from pathlib import Path

from agent.selfcheck import STALL_MIN_SECONDS, SelfCheck
from agent.signals import Kind, Severity, Signal
from agent.sources.base import Source
from agent.workers.spool import Spool


class Quiet(Source):
    name = "quiet"


def check(selfcheck: SelfCheck) -> list[Signal]:
    seen: list[Signal] = []
    selfcheck.check(seen.append)
    return seen


def setup(tmp_path: Path) -> tuple[Source, Spool, SelfCheck]:
    source = Quiet(interval=1.0)
    spool = Spool(tmp_path / "spool.db", 100)
    return source, spool, SelfCheck([source], spool, spool_stuck_after=5.0, state_dir="/var/x")


def test_a_source_that_stops_ticking_stalls_once_then_recovers_once(tmp_path: Path) -> None:
    source, _, selfcheck = setup(tmp_path)
    assert check(selfcheck) == []
    source.error = "permission denied"
    source.last_tick = time.monotonic() - STALL_MIN_SECONDS - 1
    [stalled] = check(selfcheck)
    assert (stalled.kind, stalled.severity) == (Kind.SOURCE_STALLED, Severity.ERROR)
    assert stalled.attributes == {"stalled_source": "quiet"}
    assert "has not run for 11s: permission denied" in stalled.summary
    assert selfcheck.stalled == {"quiet"}
    assert check(selfcheck) == []
    source.tick()
    [recovered] = check(selfcheck)
    assert (recovered.kind, recovered.severity) == (Kind.SOURCE_RECOVERED, Severity.INFO)
    assert selfcheck.stalled == set()


def test_stall_limit_is_five_intervals_but_never_under_the_minimum(tmp_path: Path) -> None:
    source, _, selfcheck = setup(tmp_path)
    source.interval = 4.0
    source.last_tick = time.monotonic() - 19.0
    assert check(selfcheck) == []
    source.last_tick = time.monotonic() - 21.0
    assert [s.kind for s in check(selfcheck)] == [Kind.SOURCE_STALLED]


def test_a_failed_spool_is_reported_once(tmp_path: Path) -> None:
    _, spool, selfcheck = setup(tmp_path)
    spool.failed = "spool worker exited"
    [stuck] = check(selfcheck)
    assert stuck.kind == Kind.SPOOL_STUCK
    assert "event spool in /var/x is stuck (spool worker exited)" in stuck.summary
    assert check(selfcheck) == []


def test_tick_ages_are_exported_per_source(tmp_path: Path) -> None:
    source, _, selfcheck = setup(tmp_path)
    source.last_tick = time.monotonic() - 3.0
    [family] = selfcheck.collect()
    assert family.name == "hangwatch_source_last_tick_age_seconds"
    [sample] = family.samples
    assert sample.labels == {"source": "quiet"}
    assert 3.0 <= sample.value < 4.0
