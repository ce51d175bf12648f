"""The per-mount health machine on tables of signals: slow is not hung (invariant 2)."""

from __future__ import annotations

import pytest

from agent.health import HealthEngine, HealthSettings, State
from agent.signals import Kind, Severity, Signal

M = "/srv/mail"
OTHER = "/srv/other"
T0 = 1_000.0


def sig(kind: str, at: float, mount: str | None = M, **attrs: object) -> Signal:
    return Signal(
        source="test",
        kind=kind,
        severity=Severity.WARNING,
        summary=kind.lower(),
        at=at,
        mount=mount,
        attributes={k: str(v) for k, v in attrs.items()},
    )


def stuck(at: float, since: float) -> Signal:
    return sig(Kind.PROBE_STUCK, at, stuck_since=since)


def device(at: float, idle_for: float, mount: str = M) -> Signal:
    return sig(Kind.DEVICE_PROGRESS, at, mount, since_completion_s=idle_for)


def run(
    steps: list[tuple[float, Signal | None]], mounts: dict[str, bool] | None = None
) -> tuple[HealthEngine, list[tuple[float, str, str]]]:
    """Feeds (time, signal) steps, evaluating after each; returns (mount, kind) transitions."""
    engine = HealthEngine(mounts or {M: True, OTHER: True}, HealthSettings(), now=T0)
    seen = []
    for at, signal in steps:
        if signal is not None:
            engine.observe(signal)
        for t in engine.evaluate(at):
            seen.append((at, t.mount, t.kind))
    return engine, seen


def kinds(seen: list[tuple[float, str, str]], mount: str = M) -> list[str]:
    return [k for _, m, k in seen if m == mount]


def test_freeze_is_suspected_then_confirmed_then_cleared():
    steps = [
        (T0 + 1, device(T0 + 1, 0.0)),
        (T0 + 3, stuck(T0 + 3, since=T0 + 1)),  # hard deadline passed: stuck
        (T0 + 3.5, device(T0 + 3.5, idle_for=2.5)),
        (T0 + 4.5, device(T0 + 4.5, idle_for=3.5)),  # 3.5 s without completions
        (T0 + 5.0, stuck(T0 + 5.0, since=T0 + 1)),  # stuck 4 s: confirm
        (T0 + 9.0, sig(Kind.PROBE_OK, T0 + 9.0)),  # thawed: the stuck probe completed
        (T0 + 11.0, sig(Kind.PROBE_OK, T0 + 11.0)),
    ]
    engine, seen = run(steps)
    assert kinds(seen) == [
        Kind.LOCKUP_SUSPECTED,
        Kind.LOCKUP_CONFIRMED,
        Kind.LOCKUP_RECOVERING,
        Kind.LOCKUP_CLEARED,
    ]
    assert [at for at, m, k in seen if k == Kind.LOCKUP_CONFIRMED] == [T0 + 5.0]
    assert kinds(seen, OTHER) == []
    assert engine.state(M) is State.OK


def test_stuck_probe_on_a_busy_device_is_never_confirmed():
    steps: list[tuple[float, Signal | None]] = []
    for i in range(60):
        t = T0 + 3 + i
        steps.append((t, device(t, idle_for=0.2)))  # completions keep coming
        steps.append((t + 0.5, stuck(t + 0.5, since=T0 + 1)))
    engine, seen = run(steps)
    assert Kind.LOCKUP_CONFIRMED not in kinds(seen)
    assert engine.state(M) is State.SUSPECT


@pytest.mark.parametrize("kind", [Kind.SOFT_LOCKUP, Kind.RCU_STALL])
def test_host_wide_stall_signs_only_suspect_and_clear_by_themselves(kind):
    steps = [
        (T0 + 1, device(T0 + 1, 0.0)),
        (T0 + 1, device(T0 + 1, 0.0, OTHER)),
        (T0 + 2, sig(kind, T0 + 2, mount=None)),
        (T0 + 20, None),
    ]
    engine, seen = run(steps)
    for mount in (M, OTHER):
        assert kinds(seen, mount) == [Kind.LOCKUP_SUSPECTED, Kind.LOCKUP_CLEARED]
    assert engine.state(M) is State.OK


def test_hung_task_in_fs_code_confirms_only_without_device_progress():
    hung = sig(Kind.HUNG_TASK, T0 + 2, filesystem="ext4")
    _, busy = run([(T0 + 1, device(T0 + 1, 0.0)), (T0 + 2, hung), (T0 + 6, device(T0 + 6, 0.1))])
    assert kinds(busy) == [Kind.LOCKUP_SUSPECTED]
    _, idle = run([(T0 + 1, device(T0 + 1, 0.0)), (T0 + 2, hung), (T0 + 6, device(T0 + 6, 5.0))])
    assert kinds(idle) == [Kind.LOCKUP_SUSPECTED, Kind.LOCKUP_CONFIRMED]


def test_hung_task_outside_fs_code_is_only_suspect():
    _, seen = run(
        [
            (T0 + 1, device(T0 + 1, 10.0)),
            (T0 + 2, sig(Kind.HUNG_TASK, T0 + 2)),
            (T0 + 6, device(T0 + 6, 15.0)),
        ]
    )
    assert kinds(seen) == [Kind.LOCKUP_SUSPECTED]


def test_shutdown_confirms_at_once_and_needs_a_remount_to_recover():
    steps = [
        (T0 + 1, sig(Kind.XFS_SHUTDOWN, T0 + 1)),
        (T0 + 2, sig(Kind.PROBE_OK, T0 + 2)),  # reads may still work: not recovered
        (T0 + 3, sig(Kind.MOUNT_RESTORED, T0 + 3)),
        (T0 + 4, sig(Kind.PROBE_OK, T0 + 4)),
        (T0 + 6, sig(Kind.PROBE_OK, T0 + 6)),
    ]
    _, seen = run(steps)
    assert kinds(seen) == [
        Kind.LOCKUP_SUSPECTED,
        Kind.LOCKUP_CONFIRMED,
        Kind.LOCKUP_RECOVERING,
        Kind.LOCKUP_CLEARED,
    ]
    assert [at for at, m, k in seen if k == Kind.LOCKUP_RECOVERING] == [T0 + 4]


def test_without_device_stats_a_stuck_probe_is_never_confirmed():
    steps = [(T0 + 3, stuck(T0 + 3, since=T0)), (T0 + 30, stuck(T0 + 30, since=T0))]
    _, seen = run(steps)
    assert kinds(seen) == [Kind.LOCKUP_SUSPECTED]


def test_network_filesystem_confirms_on_stuck_probe_and_server_not_responding():
    steps = [
        (T0 + 3, stuck(T0 + 3, since=T0)),
        (T0 + 4, sig(Kind.NFS_NOT_RESPONDING, T0 + 4)),
        (T0 + 5, stuck(T0 + 5, since=T0)),
    ]
    _, seen = run(steps, mounts={M: False})
    assert kinds(seen) == [Kind.LOCKUP_SUSPECTED, Kind.LOCKUP_CONFIRMED]


def test_relock_during_recovery_confirms_again():
    steps = [
        (T0 + 1, device(T0 + 1, 5.0)),
        (T0 + 5, stuck(T0 + 5, since=T0)),
        (T0 + 6, sig(Kind.PROBE_OK, T0 + 6)),
        (T0 + 12, device(T0 + 12, 5.0)),
        (T0 + 12, stuck(T0 + 12, since=T0 + 7)),
    ]
    _, seen = run(steps)
    assert kinds(seen) == [
        Kind.LOCKUP_SUSPECTED,
        Kind.LOCKUP_CONFIRMED,
        Kind.LOCKUP_RECOVERING,
        Kind.LOCKUP_CONFIRMED,
    ]


def test_transition_carries_evidence():
    steps = [(T0 + 1, device(T0 + 1, 5.0)), (T0 + 5, stuck(T0 + 5, since=T0))]
    engine = HealthEngine({M: True}, HealthSettings(), now=T0)
    for _, s in steps:
        engine.observe(s)
    transitions = engine.evaluate(T0 + 5)
    confirmed = transitions[-1]
    assert confirmed.kind == Kind.LOCKUP_CONFIRMED
    assert confirmed.severity is Severity.CRITICAL
    assert any(s.kind == Kind.PROBE_STUCK for s in confirmed.evidence)
    assert "probe stuck for 5.0s while the device completed no I/O" in confirmed.summary


def test_io_pressure_alone_moves_no_mount():
    _, seen = run(
        [
            (T0 + 1, device(T0 + 1, 0.0)),
            (T0 + 2, sig(Kind.IO_PRESSURE, T0 + 2, None)),
            (T0 + 3, sig(Kind.IO_PRESSURE, T0 + 3, M)),
        ]
    )
    assert seen == []


def test_d_state_tasks_on_the_mount_are_suspect():
    _, seen = run([(T0 + 1, device(T0 + 1, 0.0)), (T0 + 2, sig(Kind.TASKS_D_STATE, T0 + 2))])
    assert kinds(seen) == [Kind.LOCKUP_SUSPECTED]
    assert kinds(seen, OTHER) == []
