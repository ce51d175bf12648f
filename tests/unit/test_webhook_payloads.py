"""Webhook payloads, signatures, retry rules, and the delivery tables, without a network."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import tomli_w
from storekit import Stores
from tenacity import RetryCallState

from controller.config import ControllerConfig, GroupSettings, WebhookSettings
from controller.notify import alertmanager, pagerduty, webhooks
from controller.notify.eventbus import CursorBus
from controller.notify.payloads import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    escape,
    json_payload,
    needs_people,
    retryable,
    signed,
    slack_payload,
    verify,
)
from controller.notify.requests import SinkRequests, group_of, mount_key
from controller.notify.secrets import SinkSecrets
from controller.notify.webhooks import DeliveryRefused, DeliveryRetryable, backoff
from controller.store.dbthread import DbThread
from controller.store.sqlite.store import SQLiteStore
from hangwatch import pbtime
from hangwatch.config import load
from hangwatch.errors import ConfigError
from hangwatch.ids import new_ulid
from hangwatch.v1 import types_pb2 as pb
from hangwatchctl.render import to_dict


def event(
    kind: str = "LOCKUP_CONFIRMED", summary: str = "probe stuck for 31s", **kw: object
) -> pb.Event:
    ev = pb.Event(
        id=new_ulid(),
        host_id="mail-b1",
        host_seq=7,
        mount="/srv/mail",
        kind=kind,
        severity=pb.SEVERITY_CRITICAL,
        occurred_at=pbtime.timestamp(1_700_000_000.5),
        summary=summary,
        **kw,  # type: ignore[arg-type]
    )
    ev.evidence.kernel_lines.append("INFO: task imapd:4242 blocked for more than 30 seconds.")
    ev.evidence.attributes["stuck_s"] = "31.0"
    return ev


async def eventually(
    check: Callable[[], Awaitable[bool]], state: Callable[[], str], timeout: float = 5.0
) -> None:
    """Polls `check` until it holds; fails with `state()` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(state())
        await asyncio.sleep(0.05)


def notice_event(kind: str, needs_approval: bool = False, **notice: str) -> pb.Event:
    ev = event(kind, summary="failover of mail from h1 to h2 proposed")
    ev.notice.group = "mail"
    ev.notice.incident_id = "01INCIDENT"
    ev.notice.failover_id = "01FAILOVER"
    ev.notice.needs_approval = needs_approval
    ev.notice.next_step = "hangwatchctl failover approve 01FAILOVER" if needs_approval else ""
    for key, value in notice.items():
        setattr(ev.notice, key, value)
    return ev


def test_standard_webhooks_signature_matches_an_independent_computation() -> None:
    # The key of a whsec_ secret is its base64 part; the signed text is "id.timestamp.body".
    key = b"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    secret = b"whsec_" + base64.b64encode(key)
    payload = signed(json_payload(event()), "msg_1", [secret], 1_674_087_231.9)
    mac = hmac.new(key, b"msg_1.1674087231." + payload.body, hashlib.sha256).digest()
    assert payload.headers[SIGNATURE_HEADER] == "v1," + base64.b64encode(mac).decode()
    assert payload.headers[ID_HEADER] == "msg_1"
    assert payload.headers[TIMESTAMP_HEADER] == "1674087231"
    assert verify([secret], payload.headers, payload.body, 1_674_087_231.0)


def test_a_receiver_refuses_tampering_a_wrong_key_and_a_replay_outside_the_window() -> None:
    body_payload = signed(json_payload(event()), "msg_1", [b"s3cret"], 1000.0)
    headers, body = body_payload.headers, body_payload.body
    assert verify([b"s3cret"], headers, body, 1000.0 + 299)
    assert not verify([b"s3cret"], headers, body, 1000.0 + 301)  # replayed too late
    assert not verify([b"s3cret"], headers, body, 1000.0 - 301)
    assert not verify([b"s3cret"], headers, body + b" ", 1000.0)
    assert not verify([b"other"], headers, body, 1000.0)
    assert not verify([b"s3cret"], {**headers, TIMESTAMP_HEADER: "1001"}, body, 1000.0)
    assert not verify([b"s3cret"], {}, body, 1000.0)


def test_during_a_rotation_each_delivery_carries_one_signature_per_key() -> None:
    payload = signed(json_payload(event()), "m", [b"new-key", b"old-key"], 50.0)
    assert len(payload.headers[SIGNATURE_HEADER].split()) == 2
    assert verify([b"old-key"], payload.headers, payload.body, 50.0)  # not yet moved
    assert verify([b"new-key"], payload.headers, payload.body, 50.0)  # already moved


def test_json_payload_is_the_ctl_json_with_the_configs_severity_spelling() -> None:
    ev = event()
    payload = json_payload(ev)
    assert json.loads(payload.body) == {**to_dict(ev), "severity": "critical"}
    assert payload.headers["Idempotency-Key"] == ev.id
    assert payload.headers["Content-Type"] == "application/json"


def test_pagerduty_trigger_carries_every_field_events_api_v2_requires() -> None:
    ev = event(summary="x" * 2000)
    doc = json.loads(pagerduty.payload(ev, "R0UT1NG", "trigger", "INC1", "mail-b", "").body)
    assert doc["routing_key"] == "R0UT1NG"
    assert doc["event_action"] == "trigger"
    assert doc["dedup_key"] == "INC1"
    p = doc["payload"]
    assert len(p["summary"]) == pagerduty.SUMMARY_MAX
    assert p["source"] == "mail-b1"
    assert p["severity"] == "critical"
    assert p["component"] == "/srv/mail"
    assert p["group"] == "mail-b"
    assert p["timestamp"] == "2023-11-14T22:13:20.500000+00:00"
    assert p["custom_details"]["evidence"]["kernel_lines"] == list(ev.evidence.kernel_lines)
    assert p["custom_details"]["id"] == ev.id
    assert "links" not in doc


def test_pagerduty_page_for_approval_names_the_command_and_links_the_failover() -> None:
    ev = notice_event("FAILOVER_PROPOSED", needs_approval=True)
    ev.severity = pb.SEVERITY_CRITICAL
    link = "https://ops.example/failovers/01FAILOVER"
    doc = json.loads(pagerduty.payload(ev, "R", "trigger", "01INCIDENT", "mail", link).body)
    assert doc["payload"]["severity"] == "critical"
    assert doc["payload"]["summary"].endswith("next: hangwatchctl failover approve 01FAILOVER")
    assert doc["links"] == [{"href": link, "text": "failover 01FAILOVER"}]
    assert doc["client_url"] == link


def test_pagerduty_resolve_needs_only_the_key() -> None:
    doc = json.loads(
        pagerduty.payload(event("LOCKUP_CLEARED"), "R", "resolve", "mail-b1:/srv/mail", "", "").body
    )
    assert doc == {"routing_key": "R", "event_action": "resolve", "dedup_key": "mail-b1:/srv/mail"}


def test_pagerduty_follows_an_incident_from_lockup_to_restoration() -> None:
    assert pagerduty.action(event("LOCKUP_CONFIRMED")) == "trigger"
    assert pagerduty.action(notice_event("FAILOVER_PROPOSED", needs_approval=True)) == "trigger"
    assert pagerduty.action(notice_event("FAILOVER_PROPOSED")) is None  # policy approves it
    assert pagerduty.action(notice_event("FAILOVER_FENCE_FAILED")) == "trigger"
    assert pagerduty.action(notice_event("FAILOVER_APPROVED")) == "acknowledge"
    assert pagerduty.action(notice_event("SERVICE_RESTORED")) == "resolve"
    # An incident's alert ends with its service restored, not with the failover.
    assert pagerduty.action(notice_event("FAILOVER_COMPLETED")) is None
    assert pagerduty.action(notice_event("FAILOVER_COMPLETED", incident_id="")) == "resolve"
    assert pagerduty.action(event("LOCKUP_CLEARED")) == "resolve"
    planned = notice_event("FAILOVER_APPROVED", incident_id="")
    planned.notice.planned = True
    assert pagerduty.action(planned) is None  # a switchover pages nobody
    assert alertmanager.alert(planned, "mail", "") is None
    assert pagerduty.action(event("LOCKUP_SUSPECTED")) is None
    assert pagerduty.action(event("KERNEL_HUNG_TASK")) is None
    assert pagerduty.notice_key(notice_event("FAILOVER_APPROVED")) == "01INCIDENT"
    assert pagerduty.notice_key(notice_event("FAILOVER_APPROVED", incident_id="")) == "01FAILOVER"


def test_mount_key_stays_within_pagerdutys_limit_and_distinct() -> None:
    assert mount_key(event()) == "mail-b1:/srv/mail"
    long_a = event()
    long_a.mount = "/" + "a" * 400
    long_b = event()
    long_b.mount = "/" + "a" * 399 + "b"
    assert len(mount_key(long_a)) == pagerduty.DEDUP_MAX
    assert mount_key(long_a) != mount_key(long_b)


def test_alertmanager_lockup_fires_then_ends_under_the_same_labels() -> None:
    fired = alertmanager.alert(event("LOCKUP_CONFIRMED"), "mail-b", "")
    ended = alertmanager.alert(event("LOCKUP_CLEARED"), "mail-b", "")
    assert fired is not None and ended is not None
    assert (
        fired["labels"]
        == ended["labels"]
        == {
            "alertname": "HangwatchLockup",
            "group": "mail-b",
            "host": "mail-b1",
            "mount": "/srv/mail",
            "severity": "critical",
        }
    )
    assert fired["startsAt"] == "2023-11-14T22:13:20.500+00:00"
    assert fired["endsAt"] > fired["startsAt"]  # firing: it ends in the future
    assert ended["endsAt"] == "2023-11-14T22:13:20.500+00:00"
    payload = alertmanager.payload(event(), fired)
    assert payload.path == "/api/v2/alerts" and json.loads(payload.body) == [fired]
    assert alertmanager.alert(event("PROBE_SLOW"), "mail-b", "") is None


def test_alertmanager_waiting_failover_fires_until_someone_acts() -> None:
    waiting = alertmanager.alert(notice_event("FAILOVER_PROPOSED", needs_approval=True), "mail", "")
    approved = alertmanager.alert(notice_event("FAILOVER_APPROVED"), "mail", "")
    assert waiting is not None and approved is not None
    assert waiting["labels"]["alertname"] == "HangwatchFailoverWaiting"
    assert waiting["labels"] == approved["labels"]
    assert waiting["annotations"]["next_step"] == "hangwatchctl failover approve 01FAILOVER"
    assert approved["endsAt"] == approved["startsAt"]


def test_slack_gets_blocks_with_its_control_characters_escaped() -> None:
    ev = notice_event("FAILOVER_PROPOSED", needs_approval=True, approver_role="approver")
    ev.summary = "probe <stuck> & waiting"
    doc = json.loads(slack_payload(ev, "https://ops.example/f/1").body)
    assert doc["text"].startswith("[CRITICAL] mail-b1:/srv/mail FAILOVER_PROPOSED")
    assert "&lt;stuck&gt; &amp; waiting" in doc["text"]
    text = json.dumps(doc["blocks"])
    assert "Failover waits for approval" in text
    assert "probe &lt;stuck&gt; &amp; waiting" in text and "<stuck>" not in text
    assert "hangwatchctl failover approve 01FAILOVER" in text
    assert doc["blocks"][-1]["elements"][0]["url"] == "https://ops.example/f/1"
    assert escape("a<b>&c") == "a&lt;b&gt;&amp;c"


def test_chat_is_told_by_default_only_what_needs_people() -> None:
    assert needs_people(event("LOCKUP_CONFIRMED"))
    assert needs_people(notice_event("FAILOVER_PROPOSED", needs_approval=True))
    assert needs_people(notice_event("FAILOVER_FENCE_FAILED"))
    assert needs_people(notice_event("FAILOVER_FAILED"))
    assert needs_people(notice_event("SERVICE_RESTORED"))
    assert not needs_people(notice_event("FAILOVER_PROPOSED"))
    assert not needs_people(event("IO_PRESSURE"))
    assert not needs_people(event("LOCKUP_SUSPECTED"))
    secrets = SinkSecrets("http://x/", (), "", "")
    config = ControllerConfig()

    def requests(**settings: object) -> SinkRequests:
        hook = WebhookSettings(name="s", url="http://x/", **settings)  # type: ignore[arg-type]
        return SinkRequests(hook, secrets, None, config, lambda i, m: ())  # type: ignore[arg-type]

    assert not requests(kind="slack").selected(event("IO_PRESSURE"))
    assert requests(kind="slack", events="all").selected(event("IO_PRESSURE"))
    assert requests(kind="json", secret="k").selected(event("IO_PRESSURE"))
    assert not requests(kind="json", secret="k", events="needs-people").selected(event("PROBE"))


@pytest.mark.parametrize(
    ("status", "again"), [(429, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_only_throttling_and_server_errors_are_retried(status: int, again: bool) -> None:
    assert retryable(status) is again


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """The wait after failed attempt number `attempt`."""
    state = RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return backoff(base, cap)(state)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0)):
        delays = [backoff_delay(attempt, 1.0, 30.0) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_group_of_prefers_the_group_of_the_mount() -> None:
    config = ControllerConfig(
        groups=[
            GroupSettings(name="web", members=["a", "b"], mounts=["/srv/www"], primary="a"),
            GroupSettings(name="mail", members=["a", "c"], mounts=["/srv/mail"], primary="a"),
        ]
    )
    ev = event()
    ev.host_id = "a"
    assert group_of(config, ev) == "mail"
    ev.mount = "/elsewhere"
    assert group_of(config, ev) == "web"
    ev.host_id = "z"
    assert group_of(config, ev) == ""
    ev.notice.group = "named"
    assert group_of(config, ev) == "named"


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"name": "j", "url": "http://x/"}, "needs secret or secret_file"),
        ({"name": "p", "kind": "pagerduty", "url": "https://x/"}, "routing key"),
        ({"name": "s", "kind": "slack", "url": "ftp://x/"}, "not an http"),
        ({"name": "s", "kind": "slack", "url": "http://x/", "kinds": ["bad"]}, "event kind"),
        ({"name": "s", "kind": "teams", "url": "http://x/"}, "must be one of"),
        ({"name": "sp", "kind": "statuspage", "url": "https://x/"}, "needs api_key"),
        ({"name": "s", "kind": "slack", "url": "http://x/", "previous_secret": "o"}, "secret too"),
        ({"name": "s", "kind": "slack", "url": "http://x/", "events": "some"}, "must be one of"),
    ],
)
def test_bad_webhook_tables_are_refused_with_the_key(
    tmp_path: Path, table: dict[str, object], problem: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps({"webhooks": [table]}))
    with pytest.raises(ConfigError, match=problem):
        load(ControllerConfig, path)


def test_two_sinks_with_one_name_are_refused() -> None:
    hook = WebhookSettings(name="a", kind="slack", url="http://x/")
    with pytest.raises(ValueError, match="declared twice"):
        ControllerConfig(webhooks=[hook, hook])


def test_delivery_tables_resume_requeue_and_settle(stores: Stores) -> None:
    store = stores.open()
    first = [event(kind="SYNTHETIC_TEST") for _ in range(3)]
    stored = store.add_events(first, 1.0)
    assert [e.cursor for e in stored] == [1, 2, 3]
    assert store.add_events(first[:1], 2.0) == []  # a known id is not stored again
    # A new sink starts at the end of the log, and keeps its place after that.
    assert store.start_webhook("a") == 3
    store.add_events([event(kind="SYNTHETIC_TEST")], 3.0)
    assert store.start_webhook("a") == 3
    store.add_dead_letter("a", stored[1].id, 8, "HTTP 503", 4.0, 4)
    assert store.start_webhook("a") == 4
    (dead,) = store.list_dead_letters("a")
    assert (dead.event_id, dead.attempts, dead.cursor) == (stored[1].id, 8, 2)
    assert store.list_dead_letters("b") == []
    assert store.requeue_dead_letters("a", [dead.id + 1], 5.0) == 0
    assert store.requeue_dead_letters("", [], 5.0) == 1
    assert store.list_dead_letters() == []
    assert [d.id for d in store.requeued_dead_letters("a")] == [dead.id]
    store.settle_dead_letter(dead.id, False, 1, "HTTP 400", 6.0)
    (again,) = store.list_dead_letters("a")
    assert (again.attempts, again.last_error) == (9, "HTTP 400")
    store.requeue_dead_letters("a", [dead.id], 7.0)
    store.settle_dead_letter(dead.id, True, 1, "", 8.0)
    assert store.list_dead_letters() == store.requeued_dead_letters("a") == []
    store.set_alert_key("pd", "h", "/m", "INC1")
    assert store.alert_key("pd", "h", "/m") == "INC1"
    store.set_alert_key("pd", "h", "/m", None)
    assert store.alert_key("pd", "h", "/m") is None


def test_worker_sends_in_log_order_when_ingest_overflows_or_reorders_its_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(
        webhooks,
        "post",
        lambda url, payload, timeout: sent.append(json.loads(payload.body)["text"]),
    )
    events = [event(kind="SYNTHETIC_TEST", summary=f"n{i}") for i in range(10)]

    async def main() -> None:
        store = SQLiteStore(tmp_path / "c.db")
        db = DbThread()
        hook = WebhookSettings(
            name="s", kind="slack", url="http://x/", queue_events=5, events="all"
        )
        dispatcher = webhooks.Dispatcher(
            ControllerConfig(webhooks=[hook]), store, db, CursorBus(), lambda i, m: ()
        )
        dispatcher.start()
        try:
            await asyncio.sleep(0.2)  # the worker starts at the end of the (empty) log
            first = await db.run(store.add_events, events[:3], 1.0)
            second = await db.run(store.add_events, events[3:], 1.0)
            dispatcher.offer(second)  # too many for the queue: dropped from memory
            dispatcher.offer(first)  # handed over after the later batch

            async def all_sent() -> bool:
                # The cursor is saved after each delivery: a restart resumes after it.
                return len(sent) == len(events) and await db.run(store.start_webhook, "s") == 10

            await eventually(all_sent, lambda: f"sent {len(sent)} of {len(events)}")
        finally:
            await dispatcher.stop()
            db.shutdown()
            store.close()

    asyncio.run(main())
    assert [s.rsplit(": ", 1)[1] for s in sent] == [f"n{i}" for i in range(10)]


def sinks_against(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answers: dict[str, list[Exception | None]],
    backoff: float = 0.01,
) -> tuple[dict[str, int], SQLiteStore, DbThread, webhooks.Dispatcher]:
    """A dispatcher with one slack sink per entry of `answers` (sink name: what its
    receiver does on each attempt, the last one repeated) and a count of attempts."""
    calls = dict.fromkeys(answers, 0)

    def post(url: str, payload: object, timeout: float) -> bytes:
        name = url.rsplit("/", 1)[1]
        outcome = answers[name][min(calls[name], len(answers[name]) - 1)]
        calls[name] += 1
        if outcome is not None:
            raise outcome
        return b""

    monkeypatch.setattr(webhooks, "post", post)
    hooks = [
        WebhookSettings(
            name=name,
            kind="slack",
            url=f"http://x/{name}",
            max_attempts=3,
            backoff_base_seconds=backoff,
            backoff_cap_seconds=2 * backoff,
            events="all",
        )
        for name in answers
    ]
    store = SQLiteStore(tmp_path / "c.db")
    for name in answers:
        store.start_webhook(name)  # known before any event: each is sent every event
    db = DbThread()
    return (
        calls,
        store,
        db,
        webhooks.Dispatcher(
            ControllerConfig(webhooks=hooks), store, db, CursorBus(), lambda i, m: ()
        ),
    )


def test_transient_failures_are_retried_up_to_max_attempts_and_refusals_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = [
        DeliveryRetryable("HTTP 503 Service Unavailable"),
        DeliveryRetryable("timed out"),
        None,
    ]
    calls, store, db, dispatcher = sinks_against(
        tmp_path,
        monkeypatch,
        {
            "flaky": flaky,
            "down": [DeliveryRetryable("HTTP 429 Too Many Requests")],
            "refuses": [DeliveryRefused("HTTP 400 Bad Request")],
        },
    )

    async def main() -> None:
        dispatcher.start()
        try:
            dispatcher.offer(await db.run(store.add_events, [event()], 1.0))

            async def settled() -> bool:
                return len(await db.run(store.list_dead_letters)) == 2 and calls["flaky"] == 3

            await eventually(settled, lambda: f"attempts so far: {calls}")
        finally:
            await dispatcher.stop()

    try:
        asyncio.run(main())
        letters = {d.sink: d for d in store.list_dead_letters()}
    finally:
        db.shutdown()
        store.close()
    assert calls == {"flaky": 3, "down": 3, "refuses": 1}
    assert (letters["down"].attempts, letters["down"].last_error) == (
        3,
        "HTTP 429 Too Many Requests",
    )
    assert (letters["refuses"].attempts, letters["refuses"].last_error) == (
        1,
        "HTTP 400 Bad Request",
    )
    workers = dispatcher.workers
    assert (workers["flaky"].delivered, workers["flaky"].failures) == (1, 2)
    assert (workers["down"].failures, workers["down"].dead_letters) == (3, 1)


def test_stopping_the_dispatcher_cuts_a_backoff_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, store, db, dispatcher = sinks_against(
        tmp_path, monkeypatch, {"down": [DeliveryRetryable("connection refused")]}, backoff=60.0
    )

    async def main() -> float:
        dispatcher.start()
        dispatcher.offer(await db.run(store.add_events, [event()], 1.0))
        for _ in range(100):
            if calls["down"]:
                break
            await asyncio.sleep(0.02)
        started = time.monotonic()
        await dispatcher.stop()
        return time.monotonic() - started

    try:
        assert asyncio.run(main()) < 1.0
    finally:
        db.shutdown()
        store.close()
    assert calls["down"] == 1
