"""Webhook sinks against a real local HTTP receiver: outages, restarts, dead letters."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from clusterkit import FAST_CONTROLLER, SYNTHETIC, Admin, burst_agent, stored_count
from receivers import Receiver

from controller.notify.payloads import verify
from hangwatch import pbtime
from hangwatch.ids import is_ulid, new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

SECRET = "s3cret"
FAST_RETRY = {"backoff_base_seconds": 0.1, "backoff_cap_seconds": 0.5, "timeout_seconds": 2.0}


def test_json_sink_gets_every_event_once_signed_across_an_outage_and_a_restart(
    cluster: LocalCluster, admin: Admin, receiver: Receiver, tmp_path: Any
) -> None:
    burst = 300
    cluster.controller_config = {
        **FAST_CONTROLLER,
        "webhooks": [
            {
                "name": "audit-log",
                "url": receiver.url("/json"),
                "secret": SECRET,
                "kinds": [SYNTHETIC],
                "max_attempts": 1000,
                **FAST_RETRY,
            }
        ],
    }
    controller = cluster.start_controller()
    cluster.start_agent("w1", [tmp_path], burst_agent(burst, 500))
    # The receiver's port is closed the whole time the burst is ingested.
    wait_for(lambda: stored_count(cluster) == burst, 30, "the burst to be stored")
    time.sleep(0.5)
    # A controller killed outright forgets its queues: the store says where to resume.
    controller.kill()
    cluster.start_controller()
    # Then the receiver answers 503 for a while, then takes everything.
    receiver.status["/json"] = 503
    receiver.start()
    wait_for(lambda: receiver.hits.get("/json", 0) >= 3, 20, "attempts against the 503")
    assert receiver.got.get("/json") is None
    del receiver.status["/json"]
    wait_for(lambda: len(receiver.got.get("/json", {})) >= burst, 60, "every event at the receiver")
    time.sleep(1.0)  # anything doubled would arrive now

    stored = {e.id: e for e in admin.events(SYNTHETIC)}
    with receiver._lock:
        delivered = dict(receiver.got["/json"])
    assert set(delivered) == set(stored)
    assert receiver.duplicates == 0
    for key, (headers, body) in delivered.items():
        # Signed when sent (the last attempt's timestamp), so within the replay window.
        assert verify([SECRET.encode()], headers, body, time.time()), key
        doc = json.loads(body)
        assert doc["id"] == key
        assert doc["kind"] == SYNTHETIC
        assert doc["cursor"] == str(stored[key].cursor)  # int64 as JSON string, as in ctl


def report(address: str, host: str, events: list[tuple[str, str, int]]) -> list[pb.Event]:
    """Reports events straight over AgentService, as an agent would after a lockup."""
    out = [
        pb.Event(
            id=new_ulid(),
            host_id=host,
            host_seq=i + 1,
            mount=mount,
            kind=kind,
            severity=severity,  # type: ignore[arg-type]
            occurred_at=pbtime.timestamp(time.time()),
            summary=f"{kind.lower()} on {mount}",
        )
        for i, (kind, mount, severity) in enumerate(events)
    ]
    out[0].evidence.kernel_lines.append("INFO: task imapd:4242 blocked for more than 30 seconds.")
    with grpc.insecure_channel(address) as channel:
        agent_grpc.AgentServiceStub(channel).ReportEvents(
            agent_pb.ReportEventsRequest(host_id=host, events=out), timeout=10
        )
    return out


def test_pagerduty_slack_and_dead_letters_retried_from_hangwatchctl(
    cluster: LocalCluster,
    admin: Admin,
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver.status["/reject"] = 400
    receiver.start()
    # The secrets come from files: the routing key as systemd hands over a credential
    # (LoadCredential=), the Slack URL from an absolute path.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "secrets_pd").write_text("R0UT1NG\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    slack_url = tmp_path / "slack-url"
    slack_url.write_text(receiver.url("/slack") + "\n")
    cluster.controller_config = {
        **FAST_CONTROLLER,
        "webhooks": [
            {
                "name": "pd",
                "kind": "pagerduty",
                "url": receiver.url("/pd"),
                "routing_key_file": "secrets_pd",
                **FAST_RETRY,
            },
            {"name": "chat", "kind": "slack", "url_file": str(slack_url), **FAST_RETRY},
            {
                "name": "strict",
                "url": receiver.url("/reject"),
                "secret": SECRET,
                "min_severity": "error",
                **FAST_RETRY,
            },
        ],
    }
    cluster.start_controller()
    confirmed, info, cleared = report(
        cluster.address,
        "mail-b1",
        [
            ("LOCKUP_CONFIRMED", "/srv/mail", pb.SEVERITY_CRITICAL),
            ("KERNEL_HUNG_TASK", "/srv/mail", pb.SEVERITY_INFO),
            ("LOCKUP_CLEARED", "/srv/mail", pb.SEVERITY_INFO),
        ],
    )

    # PagerDuty: a trigger and a resolve under one dedup_key; nothing for other kinds.
    wait_for(lambda: len(receiver.bodies("/pd")) == 2, 20, "trigger and resolve")
    trigger, resolve = sorted(receiver.bodies("/pd"), key=lambda d: d["event_action"] != "trigger")
    assert trigger["routing_key"] == resolve["routing_key"] == "R0UT1NG"
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    # No group holds the host: an alert of its own, keyed by the lockup's first signal.
    assert trigger["dedup_key"] == resolve["dedup_key"]
    assert is_ulid(trigger["dedup_key"])
    payload = trigger["payload"]
    assert payload["source"] == "mail-b1"
    assert payload["severity"] == "critical"
    assert payload["component"] == "/srv/mail"
    assert "LOCKUP_CONFIRMED" in payload["summary"] and len(payload["summary"]) <= 1024
    evidence = payload["custom_details"]["evidence"]
    assert evidence["kernel_lines"] == list(confirmed.evidence.kernel_lines)

    # Slack: by default only what needs people (the lockup), as Block Kit blocks.
    wait_for(lambda: len(receiver.bodies("/slack")) == 1, 20, "the lockup in slack")
    (message,) = receiver.bodies("/slack")
    assert message["text"].startswith("[CRITICAL] mail-b1:/srv/mail LOCKUP_CONFIRMED")
    assert "*Lockup confirmed*" in message["blocks"][0]["text"]["text"]

    # 400: straight to a dead letter (one attempt, no retry); info is below min_severity.
    def dead() -> list[dict[str, Any]]:
        result = cluster.ctl("-o", "json", "webhooks", "dead-letters", "--sink", "strict")
        assert result.returncode == 0, result.stderr
        return list(json.loads(result.stdout).get("dead_letters", []))

    wait_for(lambda: len(dead()) == 1, 20, "a dead letter")
    (letter,) = dead()
    assert letter["event_id"] == confirmed.id
    assert letter["attempts"] == 1
    assert "400" in letter["last_error"]
    time.sleep(1.0)
    assert receiver.hits["/reject"] == 1
    table = cluster.ctl("webhooks", "dead-letters")
    assert table.returncode == 0 and confirmed.id in table.stdout

    # The receiver is fixed: `webhooks retry ID` resends it, signed, and the letter is gone.
    receiver.status["/reject"] = 200
    result = cluster.ctl("webhooks", "retry", "--sink", "strict", letter["id"])
    assert result.returncode == 0, result.stderr
    assert "requeued 1" in result.stdout
    wait_for(lambda: len(receiver.bodies("/reject")) == 1, 20, "the resent dead letter")
    (headers, body) = next(iter(receiver.got["/reject"].values()))
    assert verify([SECRET.encode()], headers, body, time.time())
    assert json.loads(body)["id"] == confirmed.id
    wait_for(lambda: dead() == [], 10, "the dead letter to be gone")
    assert info.id not in receiver.got["/reject"] and cleared.id not in receiver.got["/reject"]
    assert len(receiver.bodies("/slack")) == 1  # the info and the clearing need nobody

    unknown = cluster.ctl("webhooks", "retry", "--sink", "nope")
    assert unknown.returncode == 2 and "no webhook sink 'nope'" in unknown.stderr
    entries = admin.stub.ListAudit(admin_pb.ListAuditRequest(), timeout=5).entries
    assert [e.target for e in entries if e.action == "retry dead letters"] == ["strict"]
