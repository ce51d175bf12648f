"""Upgrade plans end to end: real agents "rebooted" onto a new kernel (restarted with a
new kernel override and boot id), real switchovers with hook executables, a
controller killed mid-plan."""

from __future__ import annotations

import time

from clusterkit import FAST_CONTROLLER, Admin
from failoverkit import check_safety, ctl_json, hook_runs, wait_healthy
from upgradekit import NEW, OLD, controller, group, mount_of, start_host

from hangwatch.v1 import admin_service_pb2 as admin_pb
from lab.localcluster import LocalCluster, wait_for

IN_PROGRESS = {"DRAINING", "UPGRADING", "VERIFYING"}


def plan_json(cluster: LocalCluster, name: str = "roll") -> dict:
    return ctl_json(cluster, "upgrade", "status", name)


def host_states(plan: dict) -> dict[str, str]:
    return {h["host_id"]: h["state"].removeprefix("UPGRADE_HOST_STATE_") for h in plan["hosts"]}


def primaries(admin: Admin) -> dict[str, str]:
    groups = admin.stub.ListGroups(admin_pb.ListGroupsRequest(), timeout=5).groups
    return {g.name: g.primary for g in groups}


def start_cluster(cluster: LocalCluster, tmp, groups: dict[str, list[str]]) -> Admin:
    cluster.controller_config = controller(
        FAST_CONTROLLER,
        [group(name, members, tmp) for name, members in groups.items()],
        max_parallel_hosts=2,
    )
    cluster.start_controller()
    hosts = [h for members in groups.values() for h in members]
    for host in hosts:
        start_host(cluster, tmp, host, OLD, f"boot-1-{host}")
    admin = Admin(cluster.address)
    wait_healthy(admin, {h: str(mount_of(tmp, h)) for h in hosts})
    return admin


def test_full_plan_over_two_groups_with_a_controller_restart(cluster, tmp_path):
    groups = {"g1": ["h1", "h2"], "g2": ["h3", "h4"]}
    admin = start_cluster(cluster, tmp_path, groups)
    try:
        out = cluster.ctl(
            "upgrade",
            "plan",
            "roll",
            "--target-kernel",
            NEW,
            "--group",
            "g1",
            "--group",
            "g2",
            "--soak",
            "1.5",
        )
        assert out.returncode == 0, out.stderr
        upgraded: list[str] = []
        restarted = False
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, f"plan not done: {plan_json(cluster)}"
            plan = plan_json(cluster)
            states = host_states(plan)
            for name, members in groups.items():
                busy = [m for m in members if states[m] in IN_PROGRESS]
                assert len(busy) <= 1, f"two members of {name} at once: {states}"
            if plan["state"] == "UPGRADE_PLAN_STATE_DONE":
                break
            for h in plan["hosts"]:
                host = h["host_id"]
                if host in upgraded or states[host] != "DRAINING":
                    continue
                if not h["detail"].startswith("drained"):
                    continue
                # The host serves nothing now: the "reboot" onto the new kernel.
                assert host not in primaries(admin).values()
                if host == "h1":
                    marked = cluster.ctl(
                        "--as",
                        "dave",
                        "upgrade",
                        "mark",
                        "roll",
                        host,
                        "--state",
                        "UPGRADING",
                        "--reason",
                        "apt full-upgrade; reboot",
                    )
                    assert marked.returncode == 0, marked.stderr
                upgraded.append(host)
                start_host(cluster, tmp_path, host, NEW, f"boot-2-{host}")
            if not restarted and states["h2"] == states["h4"] == "DONE":
                # Killed mid-plan: the primaries are still to go.
                [c for c in cluster.procs if c.name == "controller"][-1].kill()
                cluster.start_controller()
                restarted = True
            time.sleep(0.2)
        assert restarted
        # Standbys first, then each primary after its group switched over to them.
        assert upgraded[:2] in (["h2", "h4"], ["h4", "h2"])
        assert sorted(upgraded[2:]) == ["h1", "h3"]
        assert plan["percent_done"] == 100.0
        assert set(host_states(plan).values()) == {"DONE"}
        assert all(h["kernel_release"] == NEW for h in plan["hosts"])
        assert primaries(admin) == {"g1": "h2", "g2": "h4"}
        runs = hook_runs(tmp_path / "hooks.log")
        assert sorted((r.group, r.host, r.action) for r in runs) == [
            ("g1", "h1", "demote"),
            ("g1", "h2", "promote"),
            ("g2", "h3", "demote"),
            ("g2", "h4", "promote"),
        ]
        check_safety(runs)
        failovers = admin.stub.ListFailovers(admin_pb.ListFailoversRequest(), timeout=5).failovers
        assert {f.trigger for f in failovers} == {admin_pb.FAILOVER_TRIGGER_UPGRADE}
        audit = ctl_json(cluster, "audit")["entries"]
        assert any(e["action"] == "upgrade mark" and e["actor"] == "dave" for e in audit)
        assert any("h1 VERIFYING -> DONE" in e["detail"] for e in audit)
        table = cluster.ctl("upgrade", "status", "roll").stdout
        assert "100%" in table and "soak clean" in table
    finally:
        admin.close()


def test_host_back_on_the_old_kernel_fails_and_pauses_the_plan(cluster, tmp_path):
    admin = start_cluster(cluster, tmp_path, {"g1": ["h1", "h2"]})
    try:
        out = cluster.ctl(
            "upgrade", "plan", "roll", "--target-kernel", NEW, "--hosts", "h1,h2", "--soak", "1"
        )
        assert out.returncode == 0, out.stderr

        def drained() -> bool:
            h2 = next(h for h in plan_json(cluster)["hosts"] if h["host_id"] == "h2")
            return h2["detail"].startswith("drained")

        wait_for(drained, 30, "the standby h2 to be drained")
        assert host_states(plan_json(cluster))["h1"] == "PENDING"
        # The reboot happened, but the old kernel came back (a bad default in the boot loader).
        start_host(cluster, tmp_path, "h2", OLD, "boot-2-h2")
        wait_for(lambda: plan_json(cluster)["state"] == "UPGRADE_PLAN_STATE_PAUSED", 30, "a pause")
        plan = plan_json(cluster)
        h2 = next(h for h in plan["hosts"] if h["host_id"] == "h2")
        assert h2["state"] == "UPGRADE_HOST_STATE_FAILED"
        assert f"came back on {OLD}" in h2["detail"]
        assert host_states(plan)["h1"] == "PENDING"
        assert primaries(admin) == {"g1": "h1"}
        out = cluster.ctl("upgrade", "abort", "roll", "--reason", "boot loader broken")
        assert out.returncode == 0, out.stderr
        assert plan_json(cluster)["state"] == "UPGRADE_PLAN_STATE_ABORTED"
        again = cluster.ctl("upgrade", "resume", "roll", "--reason", "oops")
        assert again.returncode == 1 and "ABORTED" in again.stderr
        audit = ctl_json(cluster, "audit")["entries"]
        assert any(f"-> FAILED: came back on {OLD}" in e["detail"] for e in audit)
        assert any(e["action"] == "upgrade abort" for e in audit)
    finally:
        admin.close()
