"""Evidence for the vendor and the suspect kernel, end to end: two real agents on frozen
ext4 filesystems reporting the same kernel (the kernel's own hung-task reports on), a
third on another kernel, a real controller and hangwatchctl."""

from __future__ import annotations

import contextlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

from clusterkit import FAST_CONTROLLER, Admin
from failoverkit import agent_config, ctl_json, failovers, state_name, wait_failover, wait_healthy
from lockups import hung_task_reports, loop_fs, stuck_writer
from rootreq import require_root
from upgradekit import controller, mount_of

from agent.evidence import bounds
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb
from hangwatchctl import bundle
from lab.localcluster import LocalCluster, wait_for
from lab.scratchfs import frozen

SUSPECT = "6.1.0-13-amd64"
OTHER = "6.1.0-15-amd64"
# Long enough for the kernel's hung-task report (2 s timeout) to come before the confirmation.
DETECTION = {"confirm_after_seconds": 8.0}


def start_agent(cluster: LocalCluster, tmp: Path, host: str, mount: Path, kernel: str) -> None:
    config = agent_config(tmp, host)
    config["testing"] = {"kernel_release_override": kernel}
    config["detection"] = DETECTION
    cluster.start_agent(host, [mount], config)


def confirmed(admin: Admin, host: str) -> list[pb.Event]:
    return [e for e in admin.events("LOCKUP_CONFIRMED") if e.host_id == host]


@contextlib.contextmanager
def locked_up(admin: Admin, host: str, mount: Path) -> Iterator[tuple[pb.Event, int]]:
    """`mount` frozen with a writer stuck on it, once `host` confirmed the lockup."""
    with frozen(mount), stuck_writer(mount) as writer:
        events = wait_for(lambda: confirmed(admin, host), 60, f"LOCKUP_CONFIRMED from {host}")
        yield events[0], writer.pid  # type: ignore[index]


def check_evidence(event: pb.Event, pid: int, fs: Path) -> None:
    lockup = event.evidence.lockup
    assert lockup.ByteSize() <= bounds.MAX_TOTAL_BYTES
    assert len(lockup.kernel_log) <= bounds.MAX_LOG_LINES
    assert lockup.kernel_release == SUSPECT and lockup.rule == "probe-stuck-no-io"
    assert lockup.kernel_build.startswith("Linux version ")
    assert lockup.mount.path == str(fs) and lockup.mount.fs_type == "ext4"
    assert lockup.mount.fs_features  # options from /proc/fs/ext4/DEV/options
    writer = next(t for t in lockup.tasks if t.pid == pid)
    assert writer.comm == "sh" and writer.wchan == "percpu_rwsem_wait"
    assert writer.trace[0].startswith("percpu_rwsem_wait+0x")
    assert lockup.devices and lockup.devices[0].diskstats.split()[2] == lockup.devices[0].device
    # The kernel's own report about the writer, in the window and as a report.
    assert any(f"sh:{pid} blocked for more than" in line for line in lockup.kernel_log)
    assert any(f"sh:{pid} blocked" in r.lines[0] for r in lockup.hung_task_reports)


def test_evidence_bundle_and_advisory_draft_from_two_lockups_on_one_kernel(cluster, tmp_path):
    require_root()
    with loop_fs("ext4") as m1, loop_fs("ext4") as m2, hung_task_reports(timeout_secs=2):
        h3_mount = mount_of(tmp_path, "h3")
        group = {
            "name": "mail",
            "members": ["h1", "h2", "h3"],
            "mounts": [str(m1.mount), str(m2.mount), str(h3_mount)],
            "mode": "manual",
            "primary": "h1",
        }
        cluster.controller_config = controller(FAST_CONTROLLER, [group])
        cluster.start_controller()
        start_agent(cluster, tmp_path, "h1", m1.mount, SUSPECT)
        start_agent(cluster, tmp_path, "h2", m2.mount, SUSPECT)
        start_agent(cluster, tmp_path, "h3", h3_mount, OTHER)
        admin = Admin(cluster.address)
        try:
            wait_healthy(admin, {"h1": str(m1.mount), "h2": str(m2.mount), "h3": str(h3_mount)})

            # The standby h2 locks up first and recovers; then the primary h1 does.
            with locked_up(admin, "h2", m2.mount) as (first, pid2):
                pass
            wait_healthy(admin, {"h2": str(m2.mount)}, timeout=60)
            assert ctl_json(cluster, "advisory", "drafts")["drafts"] == []
            with locked_up(admin, "h1", m1.mount) as (second, pid1):
                draft = wait_for(lambda: drafts_of(cluster), 20, "an advisory draft")
                proposal = proposal_with_draft_open(cluster, admin)
            check_evidence(first, pid2, m2.mount)
            check_evidence(second, pid1, m1.mount)

            # The second lockup drafted an advisory naming the kernel and both hosts.
            assert isinstance(draft, dict)
            assert draft["kernel_release"] == SUSPECT and draft["fs_type"] == "ext4"
            assert draft["state"] == "DRAFT_STATE_OPEN"
            assert sorted(lk["host_id"] for lk in draft["lockups"]) == ["h1", "h2"]
            assert draft["hosts_on_kernel"] == ["h1", "h2"]
            assert f"on kernel {SUSPECT}" in draft["summary"] and "h1, h2" in draft["summary"]
            assert draft["frames"][0] == "percpu_rwsem_wait"
            table = cluster.ctl("advisory", "drafts").stdout
            assert draft["id"] in table and SUSPECT in table
            audit = ctl_json(cluster, "audit")["entries"]
            assert any(
                e["action"] == "advisory draft" and e["target"] == draft["id"] for e in audit
            )

            # A proposal made while the draft is open ranks h3 (another kernel) before the
            # preferred h2 and says why.
            assert proposal.to_host == "h3"
            assert [c.host_id for c in proposal.candidates] == ["h3", "h2"]
            assert all(c.eligible for c in proposal.candidates)
            detail = proposal.steps[0].detail
            assert f"h3 ranked before h2 ({draft['id']}: kernel {SUSPECT} on ext4)" in detail
            shown = cluster.ctl("failover", "show", proposal.id).stdout
            assert "h3 ranked before h2" in shown

            # The incident links both lockups' evidence; the bundle holds it for the vendor.
            incident = wait_for(
                lambda: ctl_json(cluster, "incident", "list")["incidents"], 10, "the incident"
            )[0]  # type: ignore[index]
            shown_incident = ctl_json(cluster, "incident", "show", incident["id"])
            assert shown_incident["evidence"] == [first.id, second.id]
            bundle_path = tmp_path / "evidence.tar.gz"
            out = cluster.ctl("incident", "evidence", incident["id"], "-o", str(bundle_path))
            assert out.returncode == 0, out.stderr
            assert "2 lockups" in out.stdout
            check_bundle(bundle_path, incident["id"], draft["id"], [(pid2, "h2"), (pid1, "h1")])

            # Accepting makes it a normal advisory: the hosts on that kernel are at risk.
            accepted = ctl_json(cluster, "advisory", "accept", draft["id"], "--reason", "bug 42")
            assert accepted["hosts_at_risk"] == ["h1", "h2"]
            assert accepted["kernel_range"] == f"={SUSPECT}"
            assert ctl_json(cluster, "advisory", "drafts")["drafts"] == []
            again = cluster.ctl("advisory", "dismiss", draft["id"], "--reason", "late")
            assert again.returncode == 1 and "accepted by" in again.stderr
        finally:
            admin.close()


def drafts_of(cluster: LocalCluster) -> dict[str, object] | None:
    """The one advisory draft, once there is one."""
    found = ctl_json(cluster, "advisory", "drafts")["drafts"]
    assert len(found) <= 1, found
    return found[0] if found else None


def proposal_with_draft_open(cluster: LocalCluster, admin: Admin) -> admin_pb.Failover:
    """An automatic proposal made once the draft existed. The one h1's lockup made may
    have come just before it (the event and the heartbeat race), so it is rejected and
    the controller, h1 still locked, proposes again."""
    early = wait_failover(admin, {"PROPOSED"}, what="a proposal after h1 locked up")
    out = cluster.ctl("failover", "reject", early.id, "--reason", "ask again with the draft")
    assert out.returncode == 0, out.stderr

    def new_proposal() -> admin_pb.Failover | None:
        return next(
            (f for f in failovers(admin) if f.id != early.id and state_name(f) == "PROPOSED"),
            None,
        )

    found = wait_for(new_proposal, 20, "a new proposal with the draft open")
    assert isinstance(found, admin_pb.Failover)
    return found


def check_bundle(path: Path, incident: str, draft: str, writers: list[tuple[int, str]]) -> None:
    with tarfile.open(path) as tar:
        root = f"hangwatch-evidence-{incident}"

        def text(name: str) -> str:
            member = tar.extractfile(f"{root}/{name}")
            assert member is not None, name
            return member.read().decode()

        readme = text("README.txt")
        assert "tasks.txt" in readme and "kernel-log.txt" in readme
        assert "non-disclosure agreement" in readme
        assert "incident" in text("incident.txt").lower()
        for n, (pid, host) in enumerate(writers, 1):
            base = f"lockups/{n:02d}-{host}/"
            names = set(tar.getnames())
            for name in bundle.LOCKUP_FILES:
                assert f"{root}/{base}{name}" in names, base + name
            assert f"pid {pid} (sh)" in text(base + "tasks.txt")
            assert "percpu_rwsem_wait+0x" in text(base + "tasks.txt")
            assert draft in text(base + "summary.txt")
            assert SUSPECT in text(base + "kernel.txt")
            assert "ext4" in text(base + "filesystem.txt")
            assert f"sh:{pid} blocked" in text(base + "hung-task-reports.txt")
            assert json.loads(text(base + "event.json"))["host_id"] == host
