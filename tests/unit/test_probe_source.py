"""The probe source's pure parts: the latency histogram it exports and the signals results
stand for."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agent.signals import Kind, Severity
from agent.sources.probe_source import LATENCY_BUCKETS, latency_histogram, probe_signals
from agent.workers.probe_report import Outcome, ProbeResult

NAME = "hangwatch_probe_duration_seconds"


def test_histogram_is_cumulative_with_le_bounds_and_overflow_per_mount() -> None:
    histogram = latency_histogram()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(histogram)
    for seconds in (0.0, 0.001, 0.05, 0.5, 1.0, 7.0):
        histogram.labels("/srv/mail").observe(seconds)
    histogram.labels("/srv/web").observe(0.2)

    def bucket(le: str) -> float | None:
        return registry.get_sample_value(f"{NAME}_bucket", {"mount": "/srv/mail", "le": le})

    # A value equal to a bound belongs to that bucket (le semantics).
    assert [bucket(le) for le in ("0.001", "0.05", "0.5", "1.0", "30.0", "+Inf")] == [
        2,
        3,
        4,
        5,
        6,
        6,
    ]
    assert registry.get_sample_value(f"{NAME}_count", {"mount": "/srv/mail"}) == 6
    assert registry.get_sample_value(f"{NAME}_sum", {"mount": "/srv/mail"}) == pytest.approx(8.551)
    assert registry.get_sample_value(f"{NAME}_count", {"mount": "/srv/web"}) == 1


def test_default_buckets_span_a_millisecond_to_thirty_seconds() -> None:
    histogram = latency_histogram()
    histogram.labels("/srv/mail")
    [family] = histogram.collect()
    assert (family.name, family.type) == (NAME, "histogram")
    bounds = [s.labels["le"] for s in family.samples if s.name == f"{NAME}_bucket"]
    assert bounds == [repr(b) for b in LATENCY_BUCKETS] + ["+Inf"]
    assert (LATENCY_BUCKETS[0], LATENCY_BUCKETS[-1]) == (0.001, 30.0)
    # A mount shows before its first probe, with nothing observed.
    assert {s.labels["mount"] for s in family.samples} == {"/srv/mail"}
    assert all(s.value == 0 for s in family.samples if s.name.endswith(("_bucket", "_count")))


def test_signal_kinds_and_severities_follow_outcome() -> None:
    expected = {
        Outcome.OK: (Kind.PROBE_OK, Severity.INFO),
        Outcome.SLOW: (Kind.PROBE_SLOW, Severity.WARNING),
        Outcome.STUCK: (Kind.PROBE_STUCK, Severity.ERROR),
        Outcome.FAILED: (Kind.PROBE_FAILED, Severity.ERROR),
    }
    for outcome, (kind, severity) in expected.items():
        [signal] = probe_signals(ProbeResult("/srv/mail", outcome, 1000.0, 0.1), at=2000.0)
        assert (signal.kind, signal.severity, signal.mount) == (kind, severity, "/srv/mail")
        assert signal.permanent is (outcome is Outcome.STUCK)
        assert signal.at == 2000.0


def test_ok_signal_carries_step_timings() -> None:
    result = ProbeResult(
        "/srv/mail", Outcome.OK, 1000.0, 0.003, mode="write", steps=(("fsync", 0.002),)
    )
    [signal] = probe_signals(result, at=2000.0)
    assert signal.attributes["step_fsync_seconds"] == "0.002000"
    assert signal.attributes["mode"] == "write"
    assert signal.source == "probe"
    assert "3.0ms" in signal.summary


def test_stuck_signal_names_the_blocked_task() -> None:
    result = ProbeResult(
        "/srv/mail",
        Outcome.STUCK,
        1000.0,
        12.5,
        stuck_pid=4242,
        stuck_comm="python3",
        stuck_state="D",
        stuck_wchan="percpu_rwsem_wait",
        stuck_stack=("percpu_rwsem_wait", "mnt_want_write"),
    )
    [signal] = probe_signals(result, at=2000.0)
    assert signal.attributes["stuck_pid"] == "4242"
    assert signal.attributes["stuck_wchan"] == "percpu_rwsem_wait"
    assert signal.attributes["stuck_since"] == "1000.000"
    [task] = signal.stuck_tasks
    assert (task.pid, task.comm, task.blocked_seconds) == (4242, "python3", 12.5)
    assert task.stack == ("percpu_rwsem_wait", "mnt_want_write")
    assert "stuck for 12.5s" in signal.summary


def test_recovered_probe_is_slow_and_says_how_long_it_was_stuck() -> None:
    result = ProbeResult("/srv/mail", Outcome.SLOW, 1000.0, 40.0, stuck_pid=4242)
    assert result.recovered
    [signal] = probe_signals(result, at=2000.0)
    assert signal.kind == Kind.PROBE_SLOW
    assert signal.attributes["stuck_pid"] == "4242"
    assert not signal.stuck_tasks
    assert "after being stuck for 40.0s" in signal.summary
    assert result.stuck_since == 1000.0
    assert ProbeResult("/srv/mail", Outcome.OK, 1000.0, 0.1).stuck_since is None


def test_failed_signal_carries_errno_and_step() -> None:
    result = ProbeResult(
        "/srv/mail", Outcome.FAILED, 1000.0, 0.0, failed_step="fsync", error="EIO: I/O error"
    )
    [signal] = probe_signals(result, at=2000.0)
    assert signal.attributes["error"] == "EIO: I/O error"
    assert signal.attributes["failed_step"] == "fsync"
