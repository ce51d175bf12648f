"""The upgrade planner on its own: state in, next plan and switchovers out."""

from __future__ import annotations

import dataclasses

import pytest

from controller.failover.model import ClusterState, FailoverState, GroupView, HostView, Trigger
from controller.upgrades.planner import (
    HostFacts,
    Plan,
    PlanHost,
    PlanHostState,
    PlanState,
    StartSwitchover,
    Switch,
    World,
    mark,
    parse_fs_spec,
    set_state,
    step,
)
from hangwatch.errors import UpgradeRefused

OLD, NEW = "6.1.0-13-amd64", "6.1.0-15-amd64"
GROUPS = (
    GroupView("g1", ("a", "b"), ("/srv",), "manual", "a", 0),
    GroupView("g2", ("c", "d"), ("/srv",), "manual", "c", 0),
)


def plan(*hosts: PlanHost, state: PlanState = PlanState.RUNNING, target_fs: str = "") -> Plan:
    return Plan("p", NEW, target_fs, state, 60.0, 0.0, "alice", hosts)


def world(
    now: float = 100.0,
    kernels: dict[str, str] | None = None,
    boots: dict[str, str] | None = None,
    primaries: dict[str, str] | None = None,
    health: dict[str, str] | None = None,
    switches: tuple[Switch, ...] = (),
    max_parallel: int = 2,
    features: dict[str, str] | None = None,
) -> World:
    kernels = {h: OLD for h in "abcd"} | (kernels or {})
    boots = {h: "boot1" for h in "abcd"} | (boots or {})
    health = health or {}
    groups = tuple(
        dataclasses.replace(g, primary=(primaries or {}).get(g.name, g.primary)) for g in GROUPS
    )
    views = {
        h: HostView(h, "HEALTHY", 0.1, {"/srv": health.get(h, "OK")}, kernel=kernels[h])
        for h in "abcd"
    }
    facts = {
        h: HostFacts(h, boots[h], kernels[h], boots[h], {"/srv": ("xfs", features or {})})
        for h in "abcd"
    }
    cluster = ClusterState(now=now, groups=groups, hosts=views)
    return World(cluster, facts, switches, max_parallel=max_parallel)


def states(p: Plan) -> dict[str, str]:
    return {h.host_id: h.state.value for h in p.hosts}


def fresh() -> Plan:
    return plan(*(PlanHost(h) for h in "abcd"))


def test_standbys_first_never_two_members_of_a_group():
    p, actions = step(fresh(), world(max_parallel=4))
    # b and d are standbys: they go first, one per group, and need no switchover.
    assert states(p) == {"a": "PENDING", "b": "DRAINING", "c": "PENDING", "d": "DRAINING"}
    assert actions == []
    assert "drained" in p.hosts[1].detail
    assert "group member busy" in p.hosts[0].detail


def test_capacity_limits_hosts_in_progress():
    p, _ = step(fresh(), world(max_parallel=1))
    assert [h.host_id for h in p.hosts if h.state.in_progress] == ["b"]
    assert p.hosts[2].detail == "waiting for a free slot"


def upgraded_standbys() -> Plan:
    done = PlanHost("b", PlanHostState.DONE), PlanHost("d", PlanHostState.DONE)
    return plan(PlanHost("a"), done[0], PlanHost("c"), done[1])


def test_primary_drains_to_an_up_to_date_standby():
    p, actions = step(upgraded_standbys(), world(kernels={"b": NEW, "d": NEW}))
    assert states(p)["a"] == "DRAINING" and states(p)["c"] == "DRAINING"
    assert actions == [
        StartSwitchover("g1", "a", "b", actions[0].reason),
        StartSwitchover("g2", "c", "d", actions[1].reason),
    ]
    assert p.hosts[0].start_boot_id == "boot1"


def test_no_drain_to_a_standby_on_the_old_kernel():
    p, actions = step(plan(PlanHost("a"), PlanHost("b", PlanHostState.SKIPPED)), world())
    assert actions == []
    assert "b: not on the target yet" in p.hosts[0].detail


def test_drain_waits_for_the_switchover_then_for_the_upgrade():
    start, _ = step(upgraded_standbys(), world(kernels={"b": NEW, "d": NEW}))
    running = Switch("F1", "g1", FailoverState.FENCING, Trigger.UPGRADE, "a", 101.0)
    p, actions = step(start, world(101.0, kernels={"b": NEW, "d": NEW}, switches=(running,)))
    assert p.hosts[0].detail == "waiting for failover F1 of g1"
    assert [a.group for a in actions] == ["g2"]
    done = dataclasses.replace(running, state=FailoverState.COMPLETED)
    p, _ = step(
        p, world(102.0, kernels={"b": NEW, "d": NEW}, primaries={"g1": "b"}, switches=(done,))
    )
    assert p.hosts[0].state is PlanHostState.DRAINING
    assert "drained" in p.hosts[0].detail


def test_failed_switchover_fails_the_host_and_pauses():
    start, _ = step(upgraded_standbys(), world(kernels={"b": NEW, "d": NEW}))
    failed = Switch("F1", "g1", FailoverState.FAILED, Trigger.UPGRADE, "a", 101.0)
    p, _ = step(start, world(102.0, kernels={"b": NEW, "d": NEW}, switches=(failed,)))
    assert p.hosts[0].state is PlanHostState.FAILED
    assert p.state is PlanState.PAUSED


def drained(**changes: object) -> Plan:
    a = PlanHost("a", PlanHostState.DRAINING, started_at=1.0, start_boot_id="boot1")
    return plan(dataclasses.replace(a, **changes), PlanHost("b", PlanHostState.DONE))


def test_reboot_onto_the_target_then_clean_soak_is_done():
    back = {"kernels": {"a": NEW, "b": NEW}, "boots": {"a": "boot2"}, "primaries": {"g1": "b"}}
    p, _ = step(drained(), world(200.0, **back))
    assert p.hosts[0].state is PlanHostState.VERIFYING and p.hosts[0].soak_since == 200.0
    p2, _ = step(p, world(230.0, **back))
    assert p2.hosts[0].state is PlanHostState.VERIFYING and p2 == p  # nothing new: nothing to store
    p3, _ = step(p, world(261.0, **back))
    assert p3.hosts[0].state is PlanHostState.DONE
    assert p3.state is PlanState.DONE and p3.percent_done == 100.0


@pytest.mark.parametrize(
    ("facts", "state", "plan_state", "detail"),
    [
        ({"boots": {"a": "boot2"}}, PlanHostState.FAILED, PlanState.PAUSED, f"came back on {OLD}"),
        ({"kernels": {"a": NEW}}, PlanHostState.DRAINING, PlanState.RUNNING, "drained"),
        (
            {"boots": {"a": "boot2"}, "kernels": {"a": NEW}, "health": {"a": "LOCKED"}},
            PlanHostState.FAILED,
            PlanState.PAUSED,
            "locked up in the soak: /srv",
        ),
        (
            {"boots": {"a": "boot2"}, "kernels": {"a": NEW}, "health": {"a": "SUSPECT"}},
            PlanHostState.VERIFYING,
            PlanState.RUNNING,
            "soak on hold: /srv SUSPECT",
        ),
    ],
)
def test_verification_outcomes(facts, state, plan_state, detail):
    p, _ = step(drained(), world(200.0, primaries={"g1": "b"}, **facts))
    assert p.hosts[0].state is state
    assert p.state is plan_state
    assert detail in p.hosts[0].detail


def test_soak_restarts_after_trouble():
    ok = {"kernels": {"a": NEW}, "boots": {"a": "boot2"}, "primaries": {"g1": "b"}}
    p, _ = step(drained(), world(200.0, **ok))
    p, _ = step(p, world(230.0, health={"a": "SUSPECT"}, **ok))
    assert p.hosts[0].soak_since is None
    p, _ = step(p, world(240.0, **ok))
    p, _ = step(p, world(290.0, **ok))
    assert p.hosts[0].state is PlanHostState.VERIFYING  # 50 s since the restart, not 60
    p, _ = step(p, world(300.0, **ok))
    assert p.hosts[0].state is PlanHostState.DONE


def test_filesystem_target_is_tracked_per_mount():
    ok = {"kernels": {"a": NEW}, "boots": {"a": "boot2"}, "primaries": {"g1": "b"}}
    bad, _ = step(
        dataclasses.replace(drained(), target_fs="xfs:v5"),
        world(200.0, features={"version": "4"}, **ok),
    )
    assert bad.hosts[0].state is PlanHostState.FAILED
    assert bad.hosts[0].mounts_fs == (("/srv", "not yet (xfs)"),)
    good, _ = step(
        dataclasses.replace(drained(), target_fs="xfs:v5"),
        world(200.0, features={"version": "5"}, **ok),
    )
    assert good.hosts[0].state is PlanHostState.VERIFYING
    assert good.hosts[0].mounts_fs == (("/srv", "xfs:v5"),)


@pytest.mark.parametrize(
    ("spec", "features", "reached"),
    [
        ("xfs:v5", {"version": "5"}, True),
        ("ext4:errors_count=0", {"errors_count": "0"}, True),
        ("ext4:errors_count=0", {"errors_count": "3"}, False),
        ("ext4:fast_commit", {"driver_features": "encryption,fast_commit"}, True),
        ("ext4:journal_checksum", {"journal_checksum": "yes"}, True),
        ("ext4:journal_checksum", {}, False),
    ],
)
def test_fs_specs(spec, features, reached):
    assert parse_fs_spec(spec).reached(features) is reached


def test_bad_fs_spec():
    with pytest.raises(ValueError, match="TYPE:vN"):
        parse_fs_spec("v5")


def test_already_upgraded_hosts_are_done_without_a_slot():
    p, _ = step(fresh(), world(kernels={h: NEW for h in "abcd"}, max_parallel=1))
    assert set(states(p).values()) == {"DONE"}
    assert p.state is PlanState.DONE


def test_paused_plan_starts_nothing_but_keeps_watching():
    paused = dataclasses.replace(drained(), state=PlanState.PAUSED)
    p, actions = step(paused, world(200.0, kernels={"a": NEW}, boots={"a": "boot2"}))
    assert p.hosts[0].state is PlanHostState.VERIFYING and actions == []
    p, actions = step(dataclasses.replace(fresh(), state=PlanState.PAUSED), world())
    assert set(states(p).values()) == {"PENDING"} and actions == []


def test_aborted_plan_does_nothing():
    aborted = dataclasses.replace(fresh(), state=PlanState.ABORTED)
    assert step(aborted, world()) == (aborted, [])


def test_marks():
    facts = world().hosts["a"]
    p = drained()
    with pytest.raises(UpgradeRefused, match="still primary of g1"):
        mark(p, "a", PlanHostState.UPGRADING, "bob", "rebooting", 5.0, facts, ("g1",))
    up = mark(p, "a", PlanHostState.UPGRADING, "bob", "rebooting", 5.0, facts, ())
    assert up.hosts[0].state is PlanHostState.UPGRADING and up.hosts[0].start_boot_id == "boot1"
    assert "marked UPGRADING by bob: rebooting" in up.hosts[0].detail
    with pytest.raises(UpgradeRefused, match="itself"):
        mark(p, "a", PlanHostState.VERIFYING, "bob", "x", 5.0, facts, ())
    with pytest.raises(UpgradeRefused, match="not in plan"):
        mark(p, "zz", PlanHostState.DONE, "bob", "x", 5.0, None, ())
    with pytest.raises(UpgradeRefused, match="only FAILED or SKIPPED"):
        mark(p, "a", PlanHostState.PENDING, "bob", "x", 5.0, facts, ())
    failed = mark(p, "a", PlanHostState.FAILED, "bob", "x", 5.0, facts, ())
    retry = mark(failed, "a", PlanHostState.PENDING, "bob", "again", 6.0, facts, ())
    assert retry.hosts[0] == PlanHost("a", detail=retry.hosts[0].detail, updated_at=6.0)


def test_plan_state_changes():
    p = fresh()
    paused = set_state(p, PlanState.PAUSED, "bob", "night")
    assert paused.state is PlanState.PAUSED
    with pytest.raises(UpgradeRefused, match="cannot become PAUSED"):
        set_state(paused, PlanState.PAUSED, "bob", "again")
    assert set_state(paused, PlanState.RUNNING, "bob", "morning").state is PlanState.RUNNING
    aborted = set_state(paused, PlanState.ABORTED, "bob", "wrong kernel")
    with pytest.raises(UpgradeRefused):
        set_state(aborted, PlanState.RUNNING, "bob", "oops")
    with pytest.raises(UpgradeRefused, match="RUNNING, PAUSED or ABORTED"):
        set_state(p, PlanState.DONE, "bob", "x")
