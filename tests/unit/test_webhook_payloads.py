"""Webhook payloads, signatures, retry rules, and the delivery tables, without a network."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import tomli_w
from storekit import Stores
from tenacity import RetryCallState

from controller.config import ControllerConfig, GroupSettings, WebhookSettings
from controller.notify import webhooks
from controller.notify.eventbus import CursorBus
from controller.notify.payloads import (
    PD_DEDUP_MAX,
    PD_SUMMARY_MAX,
    SIGNATURE_HEADER,
    json_payload,
    mount_key,
    pagerduty_action,
    pagerduty_payload,
    retryable,
    signature,
    signature_ok,
    slack_payload,
)
from controller.notify.webhooks import DeliveryRefused, DeliveryRetryable, backoff, group_of
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


def test_hmac_matches_an_independent_computation_and_rejects_tampering() -> None:
    # RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
    body = b"what do ya want for nothing?"
    expected = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert signature(b"Jefe", body) == expected
    assert signature_ok(b"Jefe", body, expected)
    assert not signature_ok(b"Jefe", body + b" ", expected)
    assert not signature_ok(b"jefe", body, expected)


def test_json_payload_is_the_ctl_json_signed_with_the_event_id_as_idempotency_key() -> None:
    ev = event()
    payload = json_payload(ev, b"s3cret")
    assert json.loads(payload.body) == to_dict(ev)
    assert payload.headers["Idempotency-Key"] == ev.id
    assert payload.headers["Content-Type"] == "application/json"
    assert signature_ok(b"s3cret", payload.body, payload.headers[SIGNATURE_HEADER])


def test_pagerduty_trigger_carries_every_field_events_api_v2_requires() -> None:
    ev = event(summary="x" * 2000)
    doc = json.loads(pagerduty_payload(ev, "R0UT1NG", "trigger", "INC1", "mail-b").body)
    assert doc["routing_key"] == "R0UT1NG"
    assert doc["event_action"] == "trigger"
    assert doc["dedup_key"] == "INC1"
    p = doc["payload"]
    assert len(p["summary"]) == PD_SUMMARY_MAX
    assert p["source"] == "mail-b1"
    assert p["severity"] == "critical"
    assert p["component"] == "/srv/mail"
    assert p["group"] == "mail-b"
    assert p["timestamp"] == "2023-11-14T22:13:20.500000+00:00"
    assert p["custom_details"]["kernel_lines"] == list(ev.evidence.kernel_lines)
    assert p["custom_details"]["event_id"] == ev.id


def test_pagerduty_resolve_needs_only_the_key() -> None:
    doc = json.loads(
        pagerduty_payload(event("LOCKUP_CLEARED"), "R", "resolve", "mail-b1:/srv/mail", "").body
    )
    assert doc == {"routing_key": "R", "event_action": "resolve", "dedup_key": "mail-b1:/srv/mail"}


def test_pagerduty_acts_only_on_confirmed_and_cleared_lockups() -> None:
    assert pagerduty_action(event("LOCKUP_CONFIRMED")) == "trigger"
    assert pagerduty_action(event("LOCKUP_CLEARED")) == "resolve"
    assert pagerduty_action(event("LOCKUP_SUSPECTED")) is None
    assert pagerduty_action(event("KERNEL_HUNG_TASK")) is None


def test_mount_key_stays_within_pagerdutys_limit_and_distinct() -> None:
    assert mount_key(event()) == "mail-b1:/srv/mail"
    long_a = event()
    long_a.mount = "/" + "a" * 400
    long_b = event()
    long_b.mount = "/" + "a" * 399 + "b"
    assert len(mount_key(long_a)) == PD_DEDUP_MAX
    assert mount_key(long_a) != mount_key(long_b)


def test_slack_text_is_one_line() -> None:
    doc = json.loads(slack_payload(event()).body)
    assert doc == {"text": "[CRITICAL] mail-b1:/srv/mail LOCKUP_CONFIRMED: probe stuck for 31s"}


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
    assert group_of(config, "a", "/srv/mail") == "mail"
    assert group_of(config, "a", "/elsewhere") == "web"
    assert group_of(config, "z", "/srv/mail") == ""


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ({"name": "j", "url": "http://x/"}, "needs secret or secret_file"),
        ({"name": "p", "kind": "pagerduty", "url": "https://x/"}, "routing key"),
        ({"name": "s", "kind": "slack", "url": "ftp://x/"}, "not an http"),
        ({"name": "s", "kind": "slack", "url": "http://x/", "kinds": ["bad"]}, "event kind"),
        ({"name": "s", "kind": "teams", "url": "http://x/"}, "must be one of"),
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
        hook = WebhookSettings(name="s", kind="slack", url="http://x/", queue_events=5)
        dispatcher = webhooks.Dispatcher(ControllerConfig(webhooks=[hook]), store, db, CursorBus())
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

    def post(url: str, payload: object, timeout: float) -> None:
        name = url.rsplit("/", 1)[1]
        outcome = answers[name][min(calls[name], len(answers[name]) - 1)]
        calls[name] += 1
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(webhooks, "post", post)
    hooks = [
        WebhookSettings(
            name=name,
            kind="slack",
            url=f"http://x/{name}",
            max_attempts=3,
            backoff_base_seconds=backoff,
            backoff_cap_seconds=2 * backoff,
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
        webhooks.Dispatcher(ControllerConfig(webhooks=hooks), store, db, CursorBus()),
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
