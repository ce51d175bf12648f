"""Failover end to end: real freezes, real agents running real hook executables,
real fence agents, the controller killed at every state."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from clusterkit import FAST_CONTROLLER, Admin
from failoverkit import (
    agent_config,
    check_safety,
    controller_config,
    ctl_json,
    failovers,
    fence_runs,
    fenced,
    group,
    hook_runs,
    state_name,
    wait_failover,
    wait_healthy,
)
from lockups import loop_fs
from rootreq import require_root

from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for
from lab.scratchfs import frozen


@contextlib.contextmanager
def two_hosts(
    cluster: LocalCluster,
    tmp: Path,
    *,
    mode: str = "manual",
    fence_code: int | None = None,
    demote_sleep: float = 0.0,
    promote_sleep: float = 0.0,
    demote_blocks: bool = False,
    members: tuple[str, ...] = ("h1", "h2"),
    **failover: object,
) -> Iterator[tuple[Admin, list]]:
    """h1 (primary) and h2 (standby), or `members`, each on its own loop ext4 mount;
    with `demote_blocks` each demote hook writes to its host's mount first."""
    require_root()
    with contextlib.ExitStack() as stack:
        fss = [stack.enter_context(loop_fs("ext4")) for _ in members]
        cluster.controller_config = controller_config(
            FAST_CONTROLLER,
            [str(fs.mount) for fs in fss],
            mode=mode,
            members=members,
            fence_code=fence_code,
            workdir=tmp,
            **failover,
        )
        cluster.start_controller()
        for host, fs in zip(members, fss, strict=True):
            cluster.start_agent(
                host,
                [fs.mount],
                agent_config(
                    tmp,
                    host,
                    demote_sleep=demote_sleep,
                    promote_sleep=promote_sleep,
                    demote_writes_to=fs.mount if demote_blocks else None,
                ),
            )
        admin = Admin(cluster.address)
        wait_healthy(admin, {h: str(fs.mount) for h, fs in zip(members, fss, strict=True)})
        try:
            yield admin, fss
        finally:
            admin.close()


def agent(cluster: LocalCluster, host: str):
    return [p for p in cluster.procs if p.name == f"agent-{host}"][-1]


def test_freeze_proposal_approval_demote_promote(cluster, tmp_path):
    log = tmp_path / "hooks.log"
    with two_hosts(cluster, tmp_path) as (admin, (m1, _)), frozen(m1.mount):
        proposed = wait_failover(admin, {"PROPOSED"}, what="a proposal after the freeze")
        assert proposed.from_host == "h1" and proposed.to_host == "h2"
        out = cluster.ctl("--as", "alice", "failover", "approve", proposed.id)
        assert out.returncode == 0, out.stderr
        done = wait_failover(admin, {"COMPLETED"})
        runs = hook_runs(log)
        assert [(r.host, r.action, r.epoch) for r in runs] == [
            ("h1", "demote", 1),
            ("h2", "promote", 1),
        ]
        assert runs[0].at <= runs[1].at
        g = group(admin)
        assert (g.primary, g.epoch) == ("h2", 1)
        assert done.approved_by == "alice"
        hosts = ctl_json(cluster, "hosts")["hosts"]
        roles = {h["host_id"]: h["roles"] for h in hosts}
        assert roles == {"h1": ["mail=standby"], "h2": ["mail=primary"]}
        assert {h["host_id"]: h["needs_clear"] for h in hosts} == {"h1": True, "h2": False}
        shown = cluster.ctl("failover", "show", done.id)
        assert "-> chosen" in shown.stdout and "COMPLETED" in shown.stdout
        audit = ctl_json(cluster, "audit")["entries"]
        assert any(e["actor"] == "alice" and e["action"] == "approve" for e in audit)
        incidents = wait_for(
            lambda: [
                i for i in ctl_json(cluster, "incident", "list")["incidents"] if not i["open"]
            ],
            15,
            "the incident to close",
        )
        page = cluster.ctl("incident", "show", incidents[0]["id"], "-o", "markdown")
        assert page.returncode == 0, page.stderr
        assert "**State:** closed" in page.stdout
        assert "storage on h1 stopped responding" in page.stdout
        assert "service moved to h2" in page.stdout
        assert "alice (admin): approve" in page.stdout


def test_stopped_primary_is_fenced_then_standby_promoted(cluster, tmp_path):
    log = tmp_path / "hooks.log"
    with two_hosts(cluster, tmp_path, fence_code=0) as (admin, _):
        agent(cluster, "h1").signal(signal.SIGSTOP)
        try:
            out = cluster.ctl("failover", "propose", "mail", "--reason", "h1 hangs")
            assert out.returncode == 0, out.stderr
            f = failovers(admin)[0]
            assert cluster.ctl("failover", "approve", f.id).returncode == 0
            wait_failover(admin, {"COMPLETED"}, timeout=40)
        finally:
            agent(cluster, "h1").signal(signal.SIGCONT)
        fences = fence_runs(log)
        assert len(fences) == 1
        assert "action=off" in fences[0] and "nodename=h1" in fences[0]
        assert "ip=192.0.2.10" in fences[0]
        runs = hook_runs(log)
        assert [(r.host, r.action) for r in runs if r.action == "promote"] == [("h2", "promote")]
        check_safety(runs, fenced(log))


def test_a_frozen_primary_whose_demote_blocks_is_fenced_at_once(cluster, tmp_path):
    """h1's demote hook writes to h1's mount, which is frozen: it blocks in D state. The
    fence runs at once beside the demote and h2 is promoted long before the 30 s demote
    deadline. Fails on the old code, which waited the deadline out and then fenced."""
    log = tmp_path / "hooks.log"
    with two_hosts(
        cluster,
        tmp_path,
        mode="auto",
        fence_code=0,
        demote_blocks=True,
        demote_timeout_seconds=30.0,
    ) as (admin, (m1, _)):
        with frozen(m1.mount):
            started = time.monotonic()
            done = wait_failover(admin, {"COMPLETED"}, timeout=25, what="h2 promoted")
            elapsed = time.monotonic() - started
            # The demote hook is still stuck on the frozen mount: it logged nothing yet.
            assert [(r.host, r.action) for r in hook_runs(log)] == [("h2", "promote")]
        assert elapsed < 20.0
        assert fenced(log) == {("mail", 1)}
        assert any("fencing it at once" in s.detail for s in done.steps)
        check_safety(hook_runs(log), fenced(log))


def test_a_timed_out_promote_is_recalled_before_another_target_is_chosen(cluster, tmp_path):
    """h2's agent stops once its promote hook started: the promote completes on h2 but
    is not reported in time. h2 may be serving, so the failover stays open, asks h2 to demote
    and, with no fence agent for h2, waits for a person; no other member is promoted.
    Fails on the old code: PROMOTING -> FAILED, then a -> h3 went ahead while h2
    served (two primaries), and h2's promote, delivered late, would still have run."""
    log = tmp_path / "hooks.log"
    with two_hosts(
        cluster,
        tmp_path,
        mode="auto",
        members=("h1", "h2", "h3"),
        fence_code=0,
        promote_sleep=2.0,
        promote_timeout_seconds=4.0,
        window_seconds=1.0,
    ) as (admin, (m1, _, _)):
        with frozen(m1.mount):
            first = wait_failover(admin, {"PROMOTING"}, what="the promote of h2")

            def promote_hook_running() -> bool:
                for proc in psutil.process_iter():
                    with contextlib.suppress(psutil.Error):
                        if str(tmp_path / "promote-h2") in proc.cmdline():
                            return True
                return False

            wait_for(promote_hook_running, 10, "h2's promote hook to run")
            agent(cluster, "h2").signal(signal.SIGSTOP)
            try:
                stuck = wait_failover(
                    admin, {"FENCE_FAILED"}, timeout=30, what="the recall of h2 to stop"
                )
                assert stuck.id == first.id and stuck.to_host == "h2"
                assert any("h2 may be serving" in s.detail for s in stuck.steps)
                assert "no fence agent is configured for h2" in stuck.steps[-1].detail
                assert [r.host for r in hook_runs(log) if r.action == "promote"] == ["h2"]
                assert len(failovers(admin)) == 1
            finally:
                agent(cluster, "h2").signal(signal.SIGCONT)
            # h2 reports its promote and refuses the late recall (expired): a person must
            # decide, and meanwhile nothing else moves.
            wait_for(
                lambda: (
                    f"{first.id}-recall refused" in agent(cluster, "h2").log_text()
                    and "refused: expired" in agent(cluster, "h2").log_text()
                ),
                15,
                "h2 to refuse the late recall",
            )
            assert len(failovers(admin)) == 1
            assert state_name(failovers(admin)[0]) == "FENCE_FAILED"
            out = cluster.ctl(
                "failover", "confirm-fenced", first.id, "--confirm", "h2", "--reason", "off"
            )
            assert out.returncode == 0, out.stderr
            assert state_name(failovers(admin)[-1]) == "FAILED"
        assert [r.host for r in hook_runs(log) if r.action == "promote"][:1] == ["h2"]


def test_failed_fence_stops_until_confirmed_by_hand(cluster, tmp_path):
    log = tmp_path / "hooks.log"
    with two_hosts(cluster, tmp_path, fence_code=1) as (admin, _):
        agent(cluster, "h1").signal(signal.SIGSTOP)
        try:
            assert cluster.ctl("failover", "propose", "mail", "--reason", "x").returncode == 0
            f = failovers(admin)[0]
            assert cluster.ctl("failover", "approve", f.id).returncode == 0
            wait_failover(admin, {"FENCE_FAILED"}, timeout=40)
            assert [r for r in hook_runs(log) if r.action == "promote"] == []
            wrong = cluster.ctl(
                "failover", "confirm-fenced", f.id, "--confirm", "h2", "--reason", "checked the PDU"
            )
            assert wrong.returncode == 1 and "does not name the old primary" in wrong.stderr
            ok = cluster.ctl(
                "--as",
                "bob",
                "failover",
                "confirm-fenced",
                f.id,
                "--confirm",
                "h1",
                "--reason",
                "checked the PDU",
            )
            assert ok.returncode == 0, ok.stderr
            wait_failover(admin, {"COMPLETED"})
        finally:
            agent(cluster, "h1").signal(signal.SIGCONT)
        audit = ctl_json(cluster, "audit")["entries"]
        assert any(e["actor"] == "bob" and "confirmed h1 is fenced" in e["detail"] for e in audit)
        assert any(not e.get("allowed", False) and e["action"] == "confirm-fenced" for e in audit)


def test_auto_mode_then_anti_flap_waits_for_a_human(cluster, tmp_path):
    with two_hosts(cluster, tmp_path, mode="auto") as (admin, (m1, m2)):
        with frozen(m1.mount):
            first = wait_failover(admin, {"COMPLETED"}, what="an automatic failover")
        assert first.approved_by == "hangwatch"
        assert group(admin).primary == "h2"
        wait_healthy(admin, {"h1": str(m1.mount)})
        assert cluster.ctl("host", "clear", "h1", "--reason", "kernel fixed").returncode == 0
        with frozen(m2.mount):
            second = wait_for(
                lambda: [f for f in failovers(admin, active=True)], 30, "a second proposal"
            )[0]
            assert state_name(second) == "PROPOSED"
            assert any("anti-flap" in s.detail for s in second.steps)
            out = cluster.ctl("failover", "approve", second.id)
            assert out.returncode == 0, out.stderr
            wait_for(lambda: state_name(failovers(admin)[0]) == "COMPLETED", 30, "approved")
        assert group(admin).primary == "h1"


def test_ack_lets_the_proposal_held_by_anti_flap_go_ahead(cluster, tmp_path):
    """The hold message says to end the anti-flap block with 'failover ack': doing so
    lets the waiting automatic proposal go ahead, with no approve. Fails on the old
    code, which ended the block but left the proposal waiting for ever."""
    with two_hosts(cluster, tmp_path, mode="auto", window_seconds=1.0) as (admin, (m1, m2)):
        with frozen(m1.mount):
            wait_failover(admin, {"COMPLETED"}, what="an automatic failover")
        wait_healthy(admin, {"h1": str(m1.mount)})
        assert cluster.ctl("host", "clear", "h1", "--reason", "kernel fixed").returncode == 0
        with frozen(m2.mount):
            held = wait_failover(admin, {"PROPOSED"}, what="a proposal held by anti-flap")
            hint = next(s.detail for s in held.steps if "anti-flap" in s.detail)
            assert "hangwatchctl failover ack mail" in hint
            out = cluster.ctl("failover", "ack", "mail", "--reason", "h1 is fine again")
            assert out.returncode == 0, out.stderr
            wait_for(
                lambda: {f.id: state_name(f) for f in failovers(admin)}[held.id] == "COMPLETED",
                30,
                "the held proposal to complete",
            )
        done = next(f for f in failovers(admin) if f.id == held.id)
        assert done.approved_by == "hangwatch"
        assert group(admin).primary == "h1"


def test_a_controller_restart_fails_over_no_primary_it_last_saw_suspect(cluster, tmp_path):
    """The controller dies while h1's mount is SUSPECT (a short freeze) and stays down
    longer than the unreachable threshold; h1 recovers meanwhile. After the restart the
    stored SUSPECT heartbeat, now old, does not make h1 an unreachable primary in
    trouble: no failover until the agents had time to reconnect, and then none is
    needed. Fails on the old code, which failed h1 over in its first pass."""
    with two_hosts(cluster, tmp_path, mode="auto") as (admin, (m1, _)):
        with frozen(m1.mount):

            def suspect() -> bool:
                h1 = admin.hosts().get("h1")
                return h1 is not None and any(m.state == pb.HEALTH_STATE_SUSPECT for m in h1.health)

            wait_for(suspect, 15, "h1's mount to be SUSPECT")
            cluster.procs[0].kill()
        time.sleep(4.0)  # the outage: longer than unreachable_after_seconds (2.5 s)
        cluster.start_controller()
        log = cluster.workdir / "controller.log"
        wait_for(lambda: "agents had time to reconnect" in log.read_text(), 15, "the grace")
        wait_healthy(admin, {"h1": str(m1.mount)})
        assert failovers(admin) == []
        assert group(admin).primary == "h1"
        assert "no failover on liveness, or on health reported before this start" in (
            log.read_text()
        )


def test_a_switchover_under_the_two_person_rule_needs_another_approver(cluster, tmp_path):
    """alice's switchover waits for a second person: she cannot approve it herself, bob
    can. Fails on the old code, which approved a switchover in its requester's name."""
    log = tmp_path / "hooks.log"
    with two_hosts(cluster, tmp_path, two_person_rule=True) as (admin, _):
        asked = ctl_json(cluster, "--as", "alice", "switchover", "mail", "--to", "h2")
        assert asked["state"] == "FAILOVER_STATE_PROPOSED"
        own = cluster.ctl("--as", "alice", "failover", "approve", asked["id"])
        assert own.returncode == 1 and "two-person rule" in own.stderr
        assert hook_runs(log) == []
        out = cluster.ctl("--as", "bob", "failover", "approve", asked["id"])
        assert out.returncode == 0, out.stderr
        done = wait_failover(admin, {"COMPLETED"})
        assert (done.proposed_by, done.approved_by) == ("alice", "bob")


def test_forcing_a_failover_onto_an_ineligible_host_needs_the_approver_role(tmp_path):
    """Over mutual TLS, an operator may propose and switch over, but not --force onto a
    host that is not eligible (here: never registered); an approver may. Fails on the
    old code, which let any operator force."""
    config = {
        **FAST_CONTROLLER,
        "groups": [
            {"name": "mail", "members": ["h1", "h2"], "mounts": ["/srv/mail"], "primary": "h1"}
        ],
    }
    c = LocalCluster(tmp_path, config, pki=tmp_path / "pki")

    def ctl(role: str, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "hangwatchctl", "--controller", c.address]
        return subprocess.run(
            [*argv, *c.ctl_transport(role, name), *args], capture_output=True, text=True, timeout=60
        )

    try:
        c.start_controller()
        force = ("--to", "h2", "--force")
        for args in (
            ("failover", "propose", "mail", *force, "--reason", "drill"),
            ("switchover", "mail", *force),
        ):
            refused = ctl("operator", "olga", *args)
            assert refused.returncode == 1, refused.stdout
            assert "PERMISSION_DENIED" in refused.stderr
            assert "--force onto h2 (has never registered) needs approver" in refused.stderr
        forced = ctl("approver", "ann", "failover", "propose", "mail", *force, "--reason", "x")
        assert forced.returncode == 0, forced.stderr
        audit = ctl("admin", "root", "-o", "json", "audit")
        entries = json.loads(audit.stdout)["entries"]
        refusals = [(e["actor"], e["action"]) for e in entries if not e.get("allowed", False)]
        assert refusals == [("olga", "propose"), ("olga", "propose")]
        assert any(e["actor"] == "ann" and e["action"] == "propose (forced)" for e in entries)
    finally:
        c.stop()


def test_an_approver_retargets_a_proposal_onto_an_at_risk_host_within_its_incident(
    cluster, tmp_path
):
    """Every standby runs a kernel with an advisory (cluster B at 17:36): the proposal
    has no target. An approver sends it to h2 with 'failover approve ID --to h2 --force'
    with no maintenance, reject or new proposal; it stays the same failover, in the
    same incident, and the audit log has the override with its reason. Fails on the
    old code, where approve took no target."""
    log = tmp_path / "hooks.log"
    with two_hosts(cluster, tmp_path) as (admin, (m1, _)):
        kernel = admin.hosts()["h2"].inventory.kernel_release
        added = cluster.ctl(
            "advisory", "add", "ADV-9", "--kernel", f"={kernel}", "--reason", "ext4 lockup"
        )
        assert added.returncode == 0, added.stderr
        with frozen(m1.mount):
            held = wait_failover(admin, {"PROPOSED"}, what="a proposal with no target")
            assert held.to_host == "" and held.incident_id
            no_reason = cluster.ctl("failover", "approve", held.id, "--to", "h2", "--force")
            assert no_reason.returncode == 2 and "--to needs --reason" in no_reason.stderr
            out = cluster.ctl(
                "--as",
                "ann",
                "failover",
                "approve",
                held.id,
                "--to",
                "h2",
                "--force",
                "--reason",
                "h2 is the only copy left",
            )
            assert out.returncode == 0, out.stderr
            done = wait_failover(admin, {"COMPLETED"})
        assert (done.id, done.incident_id, done.to_host) == (held.id, held.incident_id, "h2")
        assert done.forced and done.approved_by == "ann"
        assert len(failovers(admin)) == 1
        assert [(r.host, r.action) for r in hook_runs(log)] == [
            ("h1", "demote"),
            ("h2", "promote"),
        ]
        audit = ctl_json(cluster, "audit")["entries"]
        retargets = [e for e in audit if e["action"] == "retarget (forced)"]
        assert [(e["actor"], e["target"]) for e in retargets] == [("ann", "mail")]
        assert "h2 is the only copy left (forced past: at risk: ADV-9)" in retargets[0]["detail"]
        page = cluster.ctl("incident", "show", held.incident_id)
        assert page.returncode == 0 and "service moved to h2" in page.stdout


@pytest.mark.parametrize("kill_in", ["PROPOSED", "APPROVED", "FENCING", "PROMOTING"])
def test_controller_killed_in_any_state_completes_each_hook_once(cluster, tmp_path, kill_in):
    log = tmp_path / "hooks.log"
    with two_hosts(cluster, tmp_path, demote_sleep=2.0, promote_sleep=2.0) as (admin, _):
        args = ["switchover", "mail", "--to", "h2"]
        if kill_in == "APPROVED":
            args += ["--at", "+3s"]
        if kill_in == "PROPOSED":
            args = ["failover", "propose", "mail", "--reason", "drill"]
        assert cluster.ctl(*args).returncode == 0
        wait_failover(admin, {kill_in}, what=f"the failover to reach {kill_in}")
        cluster.procs[0].kill()
        cluster.start_controller()
        if kill_in == "PROPOSED":
            f = failovers(admin)[0]
            assert cluster.ctl("failover", "approve", f.id).returncode == 0
        wait_failover(admin, {"COMPLETED"}, timeout=40)
        runs = hook_runs(log)
        assert sorted((r.host, r.action) for r in runs) == [("h1", "demote"), ("h2", "promote")]
        check_safety(runs)


def test_stale_epoch_command_is_refused_and_recorded(cluster, tmp_path):
    log = tmp_path / "hooks.log"
    with two_hosts(cluster, tmp_path) as (admin, _):
        assert cluster.ctl("switchover", "mail", "--to", "h2").returncode == 0
        wait_failover(admin, {"COMPLETED"})
        assert group(admin).epoch == 1
        before = len(hook_runs(log))
        controller = cluster.procs[0]
        controller.stop()
        db = sqlite3.connect(cluster.workdir / "controller-data" / "controller.db")
        from hangwatch.v1 import types_pb2 as pb

        stale = pb.Command(
            id="stale-demote",
            group="mail",
            epoch=0,
            action=pb.ACTION_DEMOTE,
            reason="replayed",
            failover_id="old",
            role="standby",
        )
        db.execute(
            "INSERT INTO commands (id, host_id, created_at, body) VALUES (?,?,?,?)",
            ("stale-demote", "h2", 0.0, stale.SerializeToString()),
        )
        db.commit()
        db.close()
        cluster.start_controller()

        def refused() -> bool:
            audit = ctl_json(cluster, "audit")["entries"]
            return any(e["action"] == "refuse stale epoch" for e in audit)

        wait_for(refused, 30, "the agent's refusal to be recorded")
        assert len(hook_runs(log)) == before


def test_a_controller_that_lost_its_store_raises_epochs_from_its_agents(cluster, tmp_path):
    """The controller's database is lost after two switchovers (epoch 2): the new one
    seeds the group at epoch 0, learns epoch 2 from the agents' heartbeats, raises it
    (audited), and its next switchover (epoch 3) is accepted, not refused as stale.
    Fails on the old code, which stayed at epoch 0 so every later demote was refused
    and the old primary fenced (or, with no fence agent, the failover stopped)."""
    log = tmp_path / "hooks.log"
    with two_hosts(cluster, tmp_path) as (admin, (m1, m2)):
        for to in ("h2", "h1"):
            assert cluster.ctl("switchover", "mail", "--to", to).returncode == 0
            wait_for(
                lambda to=to: group(admin).primary == to and not failovers(admin, active=True),
                30,
                f"the switchover to {to}",
            )
        assert group(admin).epoch == 2
        cluster.procs[0].stop()
        shutil.rmtree(cluster.workdir / "controller-data")
        cluster.start_controller()
        wait_for(lambda: group(admin).epoch == 2, 20, "the group's epoch to catch up")
        raised = [e for e in ctl_json(cluster, "audit")["entries"] if e["action"] == "raise epoch"]
        assert len(raised) == 1 and "epoch 0 -> 2" in raised[0]["detail"]
        wait_healthy(admin, {"h1": str(m1.mount), "h2": str(m2.mount)})
        assert cluster.ctl("switchover", "mail", "--to", "h2").returncode == 0
        done = wait_failover(admin, {"COMPLETED", "FENCE_FAILED", "FAILED"})
        assert state_name(done) == "COMPLETED" and done.epoch == 3
        assert [(r.host, r.action, r.epoch) for r in hook_runs(log)][-2:] == [
            ("h1", "demote", 3),
            ("h2", "promote", 3),
        ]


def test_editing_an_audit_row_breaks_verify_naming_the_row(cluster, tmp_path):
    with two_hosts(cluster, tmp_path) as _:
        assert cluster.ctl("automation", "off", "--reason", "drill").returncode == 0
        assert cluster.ctl("automation", "on", "--reason", "drill over").returncode == 0
        assert cluster.ctl("audit", "--verify").returncode == 0
        db = sqlite3.connect(cluster.workdir / "controller-data" / "controller.db")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit SET detail = 'nothing happened' WHERE seq = 1")
        db.execute("DROP TRIGGER audit_no_update")
        db.execute("UPDATE audit SET detail = 'nothing happened' WHERE seq = 1")
        db.commit()
        db.close()
        out = cluster.ctl("audit", "--verify")
        assert out.returncode == 1
        assert "row 1" in out.stderr and "changed after it was written" in out.stderr


def test_pre_failover_hook_vetoes_automatic_approval(cluster, tmp_path):
    veto = tmp_path / "pre-failover"
    veto.write_text('#!/bin/sh\necho "change freeze in force for $HANGWATCH_GROUP"\nexit 3\n')
    veto.chmod(0o755)
    with (
        two_hosts(cluster, tmp_path, mode="auto", pre_failover_hook=str(veto)) as (admin, mounts),
        frozen(mounts[0].mount),
    ):
        proposal = wait_failover(admin, {"PROPOSED"}, what="a proposal after the freeze")
        wait_for(
            lambda: any("vetoed" in s.detail for s in failovers(admin)[0].steps),
            10,
            "the veto to be recorded",
        )
        vetoed = failovers(admin)[0]
        assert state_name(vetoed) == "PROPOSED" and vetoed.id == proposal.id
        note = next(s.detail for s in vetoed.steps if "vetoed" in s.detail)
        assert "exit 3" in note and "change freeze in force for mail" in note
    assert hook_runs(tmp_path / "hooks.log") == []


def test_a_lockup_cancels_a_switchover_scheduled_for_later(cluster, tmp_path):
    with two_hosts(cluster, tmp_path, mode="auto") as (admin, (m1, _)):
        out = cluster.ctl("switchover", "mail", "--to", "h2", "--at", "+1h")
        assert out.returncode == 0, out.stderr
        scheduled = failovers(admin)[0]
        assert state_name(scheduled) == "APPROVED"
        with frozen(m1.mount):
            wait_for(
                lambda: any(state_name(f) == "COMPLETED" for f in failovers(admin)),
                30,
                "a failover to complete",
            )
        by_id = {f.id: f for f in failovers(admin)}
        assert state_name(by_id[scheduled.id]) == "CANCELLED"
        assert "scheduled switchover" in by_id[scheduled.id].steps[-1].detail
        assert group(admin).primary == "h2"
