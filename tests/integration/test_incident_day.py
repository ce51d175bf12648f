"""The incident report's day, replayed: two lockups of one group (the second inside
anti-flap), the primary's kernel at risk by an advisory, manual mode, real agents and
real freezes, and a real receiver for every sink kind (HTTP servers for json, slack,
pagerduty and statuspage; a real Alertmanager). What reached people must be true."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clusterkit import FAST_AGENT, FAST_CONTROLLER, Admin
from failoverkit import (
    agent_config,
    controller_config,
    ctl_json,
    failovers,
    group,
    hook_runs,
    state_name,
    wait_healthy,
)
from lockups import loop_fs
from receivers import Receiver
from rootreq import require_root

from controller.notify.payloads import verify
from hangwatch import pbtime
from hangwatch.v1 import admin_service_pb2 as admin_pb
from lab.localcluster import LocalCluster, Proc, free_port, wait_for
from lab.scratchfs import frozen

SECRET = "whsec_c2VjcmV0LWtleS1ieXRlcy0xMjM0NTY3OA=="
ALERTMANAGER = "prometheus-alertmanager"
# The agents probe often, so the first signal dates a lockup to within this much.
PROBE_INTERVAL = 0.5
FAILOVER_URL = "https://ops.example/hangwatch/failovers/{id}"


@contextlib.contextmanager
def alertmanager(tmp: Path) -> Iterator[str]:
    """A real Alertmanager on a free port with a minimal config and its own storage."""
    binary = shutil.which(ALERTMANAGER)
    if binary is None:
        pytest.fail(f"{ALERTMANAGER} is not installed (scripts/test installs it)")
    config = tmp / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = free_port()
    proc = Proc(
        "alertmanager",
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp / 'alertmanager-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        tmp / "alertmanager.log",
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{url}/-/ready") is not None, 20, "Alertmanager to be ready")
        yield url
    finally:
        proc.kill()


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            body = response.read()
    except OSError:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return body


def alerts(url: str, name: str) -> list[dict[str, Any]]:
    """Alertmanager's alerts of that name that have not ended."""
    found = _get(f"{url}/api/v2/alerts") or []
    return [a for a in found if a["labels"].get("alertname") == name]


def incident(admin: Admin, incident_id: str, fmt: str = "") -> admin_pb.Incident:
    return admin.stub.GetIncident(
        admin_pb.GetIncidentRequest(id=incident_id, format=fmt), timeout=10
    )


def first_suspicion(admin: Admin, host: str, mount: str, after: float) -> float:
    events = admin.events("LOCKUP_SUSPECTED")
    times = [
        pbtime.seconds(e.occurred_at)
        for e in events
        if e.host_id == host and e.mount == mount and pbtime.seconds(e.occurred_at) >= after
    ]
    return min(times)


def approved_at(admin: Admin, failover_id: str) -> float:
    f = admin.stub.GetFailover(admin_pb.GetFailoverRequest(id=failover_id), timeout=5)
    return min(pbtime.seconds(s.at) for s in f.steps if s.state == admin_pb.FAILOVER_STATE_APPROVED)


def new_proposal(admin: Admin, seen: set[str]) -> admin_pb.Failover:
    def found() -> admin_pb.Failover | None:
        return next(
            (f for f in failovers(admin) if f.id not in seen and state_name(f) == "PROPOSED"), None
        )

    result = wait_for(found, 40, "a proposal after the freeze")
    assert isinstance(result, admin_pb.Failover)
    return result


def wait_state(admin: Admin, failover_id: str, state: str, timeout: float = 40) -> None:
    def reached() -> bool:
        f = admin.stub.GetFailover(admin_pb.GetFailoverRequest(id=failover_id), timeout=5)
        return state_name(f) == state

    wait_for(reached, timeout, f"failover {failover_id} to be {state}")


def closed(admin: Admin, incident_id: str) -> admin_pb.Incident:
    result = wait_for(
        lambda: (i := incident(admin, incident_id)).HasField("ended_at") and i,
        30,
        f"incident {incident_id} to close",
    )
    assert isinstance(result, admin_pb.Incident)
    return result


def needs_approval_page(receiver: Receiver, failover_id: str) -> Any:
    for d in receiver.under("/pd"):
        doc = d.json()
        details = doc.get("payload", {}).get("custom_details", {})
        if (
            details.get("notice", {}).get("failover_id") == failover_id
            and doc["event_action"] == "trigger"
        ):
            return d
    return None


def test_two_lockups_of_one_group_reach_every_sink_truthfully(cluster: LocalCluster, tmp_path):
    require_root([ALERTMANAGER])
    receiver = Receiver()
    receiver.start()
    agent = {
        **FAST_AGENT,
        "probe": {
            "interval_seconds": PROBE_INTERVAL,
            "soft_deadline_seconds": 0.25,
            "hard_deadline_seconds": 0.5,
        },
    }
    with (
        loop_fs("ext4") as m1,
        loop_fs("xfs") as m2,
        alertmanager(tmp_path) as am,
    ):
        config = controller_config(
            FAST_CONTROLLER, [str(m1.mount), str(m2.mount)], mode="manual", anti_flap_seconds=3600
        )
        config["groups"][0].update(display_name="cluster B", services=["IMAP", "POP", "Webmail"])
        config["incidents"] = {"failover_url": FAILOVER_URL}
        config["webhooks"] = [
            {"name": "log", "url": receiver.url("/json"), "secret": SECRET},
            {"name": "chat", "kind": "slack", "url": receiver.url("/slack")},
            {"name": "pager", "kind": "pagerduty", "url": receiver.url("/pd"), "routing_key": "RK"},
            {"name": "am", "kind": "alertmanager", "url": am},
            {
                "name": "page",
                "kind": "statuspage",
                "url": receiver.url("/statuspage"),
                "api_key": "K3Y",
            },
        ]
        cluster.controller_config = config
        cluster.start_controller()
        for host, fs in (("h1", m1), ("h2", m2)):
            cluster.start_agent(host, [fs.mount], {**agent_config(tmp_path, host), **agent})
        admin = Admin(cluster.address)
        mounts = {"h1": str(m1.mount), "h2": str(m2.mount)}
        try:
            wait_healthy(admin, mounts)
            added = ctl_json(
                cluster,
                "advisory",
                "add",
                "ADV-EXT4",
                "--kernel",
                ">=1.0",
                "--fs",
                "ext4",
                "--reason",
                "file systems stop responding",
            )
            assert added["hosts_at_risk"] == ["h1"]

            # The first lockup: h1 freezes; the person must approve.
            freeze1 = time.time()
            with frozen(m1.mount):
                first = new_proposal(admin, set())
                page = wait_for(
                    lambda: needs_approval_page(receiver, first.id), 20, "the approval page"
                )
                firing = wait_for(lambda: alerts(am, "HangwatchFailoverWaiting"), 20, "AM waiting")
                assert firing[0]["labels"]["group"] == "mail"
                lockups = wait_for(lambda: alerts(am, "HangwatchLockup"), 20, "AM lockup alert")
                assert lockups[0]["labels"] == {
                    "alertname": "HangwatchLockup",
                    "group": "mail",
                    "host": "h1",
                    "mount": str(m1.mount),
                    "severity": "critical",
                }
                out = cluster.ctl("--as", "alice", "failover", "approve", first.id)
                assert out.returncode == 0, out.stderr
                wait_state(admin, first.id, "COMPLETED")
            promote1 = max(r.at for r in hook_runs(tmp_path / "hooks.log") if r.action == "promote")
            # The "needs approval" page reached PagerDuty before anyone approved.
            assert page.at < approved_at(admin, first.id)
            doc = page.json()
            assert doc["payload"]["severity"] == "critical"
            assert doc["links"][0]["href"] == FAILOVER_URL.format(id=first.id)
            assert f"hangwatchctl failover approve {first.id}" in doc["payload"]["summary"]
            one = closed(admin, first.incident_id)
            # Alertmanager: the waiting failover ended at the approval, the lockup at the clear.
            wait_for(lambda: not alerts(am, "HangwatchFailoverWaiting"), 20, "AM waiting resolved")
            wait_for(lambda: not alerts(am, "HangwatchLockup"), 30, "AM lockup resolved")

            # Back to h1 (a planned move, forced past its advisory), then it freezes again
            # inside the anti-flap block.
            wait_healthy(admin, mounts)
            assert cluster.ctl("host", "clear", "h1", "--reason", "thawed").returncode == 0
            back = ctl_json(
                cluster, "switchover", "mail", "--to", "h1", "--force", "--reason", "back to h1"
            )
            wait_state(admin, back["id"], "COMPLETED")
            assert group(admin).primary == "h1"
            assert group(admin).HasField("auto_blocked_until")
            wait_healthy(admin, mounts)
            freeze2 = time.time()
            with frozen(m1.mount):
                second = new_proposal(admin, {first.id, back["id"]})
                assert any("anti-flap" in s.detail for s in second.steps)
                wait_for(lambda: needs_approval_page(receiver, second.id), 20, "the second page")
                out = cluster.ctl("--as", "bob", "failover", "approve", second.id)
                assert out.returncode == 0, out.stderr
                wait_state(admin, second.id, "COMPLETED")
            promote2 = max(r.at for r in hook_runs(tmp_path / "hooks.log") if r.action == "promote")
            two = closed(admin, second.incident_id)

            # Each incident starts at its first signal and lasts what customers saw.
            for inc, freeze, promote in ((one, freeze1, promote1), (two, freeze2, promote2)):
                started = pbtime.seconds(inc.started_at)
                suspected = first_suspicion(admin, "h1", str(m1.mount), freeze)
                assert abs(started - suspected) <= 1.0
                assert freeze - 1.0 <= started <= suspected
                lasted = pbtime.seconds(inc.restored_at) - started
                # The first signal dates the freeze to within one probe interval.
                assert lasted >= promote - freeze - PROBE_INTERVAL
                assert inc.mount == str(m1.mount)

            # Each holds nothing of the other, and both link the advisory; the second
            # links the first as an earlier incident of it.
            one, two = incident(admin, one.id), incident(admin, two.id)
            refs_one = {e.ref for e in one.timeline} - {one.id}
            refs_two = {e.ref for e in two.timeline} - {two.id}
            assert first.id in refs_one and second.id in refs_two
            assert not refs_one & refs_two
            assert back["id"] not in refs_one | refs_two
            assert all(
                pbtime.seconds(e.at) >= pbtime.seconds(two.started_at) - 1 for e in two.timeline
            )
            assert list(one.advisories) == list(two.advisories) == ["ADV-EXT4"]
            assert list(two.related) == [one.id]

            # The customer's page: plain words, no host name, path or id.
            internal = [
                "h1",
                "h2",
                str(m1.mount),
                str(m2.mount),
                str(tmp_path),
                one.id,
                two.id,
                first.id,
                second.id,
                "ADV-EXT4",
            ]
            for inc in (one, two):
                text = incident(admin, inc.id, "status").rendered
                assert text.startswith("# Cluster B - IMAP/POP/Webmail")
                assert "IMAP, POP and Webmail on cluster B" in text
                assert "known bug in the operating system kernel" in text
                assert not [word for word in internal if re.search(rf"\b{re.escape(word)}\b", text)]
            assert (
                "The same issue interrupted service on"
                in incident(admin, two.id, "status").rendered
            )

            # PagerDuty: one dedup key per incident (the lockup's page already has it),
            # trigger -> acknowledge -> resolve; the planned move back pages nobody.
            paged = [d.json() for d in receiver.under("/pd")]
            assert {p["dedup_key"] for p in paged} == {one.id, two.id}
            lockup_pages = [
                p for p in paged if p.get("payload", {}).get("class") == "LOCKUP_CONFIRMED"
            ]
            assert [p["dedup_key"] for p in lockup_pages] == [one.id, two.id]
            for inc in (one, two):
                actions = [
                    d.json()["event_action"]
                    for d in receiver.under("/pd")
                    if d.json()["dedup_key"] == inc.id
                ]
                collapsed = [a for i, a in enumerate(actions) if i == 0 or actions[i - 1] != a]
                assert collapsed == ["trigger", "acknowledge", "resolve"], actions

            # Statuspage: created once per incident, then updated through every stage.
            page_posts = receiver.under("/statuspage")
            creates = [d for d in page_posts if d.method == "POST"]
            assert [d.path for d in creates] == ["/statuspage/incidents"] * 2
            assert all(d.headers["Authorization"] == "OAuth K3Y" for d in page_posts)
            stages = [d.json()["incident"]["status"] for d in page_posts]
            assert stages[:4] == ["investigating", "identified", "monitoring", "resolved"]
            for d in page_posts:
                body = d.json()["incident"]["body"]
                assert not [word for word in internal if re.search(rf"\b{re.escape(word)}\b", body)]

            # Slack: what needs people, as blocks; json: the same events, signed.
            slack = [json.dumps(d.json()["blocks"]) for d in receiver.under("/slack")]
            assert any("Failover waits for approval" in b for b in slack)
            assert any("Service restored" in b for b in slack)
            signed = receiver.under("/json")
            kinds = {d.json()["kind"] for d in signed}
            assert {"FAILOVER_PROPOSED", "FAILOVER_APPROVED", "SERVICE_RESTORED"} <= kinds
            assert all(verify([SECRET.encode()], d.headers, d.body, d.at) for d in signed)
            proposal = next(d.json() for d in signed if d.json()["kind"] == "FAILOVER_PROPOSED")
            assert proposal["notice"]["needs_approval"] is True
            assert proposal["notice"]["approver_role"] == "approver"
            # The same events are in the log WatchEvents reads.
            assert len(admin.events("FAILOVER_PROPOSED")) >= 2
        finally:
            admin.close()
            receiver.stop()
            cluster.stop()
