"""Webhook delivery: one queue and one worker per sink, so no sink can slow another.

Ingest hands each stored event to `Dispatcher.offer`, which never blocks: it only
pushes onto every sink's bounded in-memory queue (or drops it there when the queue
is full). The store stays the truth: each worker keeps its sink's cursor in SQLite
and, whenever its queue does not continue exactly from that cursor (a full queue,
a restart, events handed over out of order), it reads on from the event log.
Delivery is at least once; the `Idempotency-Key` header (and, signed, `webhook-id`)
lets receivers drop repeats. What each sink kind is sent is `controller.notify.requests`'.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import http.client
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import json_format
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.wait import wait_base

from controller.config import ControllerConfig, WebhookSettings
from controller.incidents.facts import AdvisoryLookup
from controller.notify.eventbus import CursorBus
from controller.notify.payloads import SEVERITY_VALUE, Payload, retryable, signed
from controller.notify.requests import SinkRequests
from controller.notify.secrets import SinkSecrets, load_sink_secrets
from controller.store.dbthread import DbThread
from controller.store.interface import DeadLetterRow, Store
from hangwatch.errors import DeliveryRefused, DeliveryRetryable, StoreFull
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

STORE_BATCH = 500
# What making a payload raises for an event that has no JSON view or no valid time.
UNPRESENTABLE = (json_format.Error, ValueError, OverflowError)
# An idle worker looks at the store this often even without a wake-up.
RECHECK_SECONDS = 1.0
ERROR_MAX = 1000
# Of an answer's body, only this much is read (an id a create answered with).
MAX_ANSWER = 1 << 20


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would be resent as a GET without its body: refuse instead."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def post(url: str, payload: Payload, timeout: float) -> bytes:
    """One blocking request (run in a thread) to `url` + the payload's path; returns the
    answer's body, or raises DeliveryRefused or DeliveryRetryable unless 2xx."""
    request = urllib.request.Request(
        url.rstrip("/") + payload.path if payload.path else url,
        data=payload.body,
        headers=payload.headers,
        method=payload.method,
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return bytes(response.read(MAX_ANSWER))
    except urllib.error.HTTPError as exc:
        text = exc.read(200).decode("utf-8", "replace").strip()
        detail = f"HTTP {exc.code} {exc.reason}" + (f": {text}" if text else "")
        raise (DeliveryRetryable if retryable(exc.code) else DeliveryRefused)(detail) from None
    except urllib.error.URLError as exc:
        raise DeliveryRetryable(str(exc.reason)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryRetryable(str(exc) or type(exc).__name__) from None


def backoff(base: float, cap: float) -> wait_base:
    """Waits doubling from `base`, capped, with jitter (half to all of it, as a fixed
    half plus a random half) so sinks recovering together are not hit in lock-step."""
    return wait_exponential(multiplier=base / 2, max=cap / 2) + wait_random_exponential(
        multiplier=base / 2, max=cap / 2
    )


@dataclass
class Outcome:
    delivered: bool
    attempts: int
    error: str = ""


class SinkWorker:
    def __init__(
        self,
        settings: WebhookSettings,
        secrets: SinkSecrets,
        store: Store,
        db: DbThread,
        bus: CursorBus,
        requests: SinkRequests,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self._secrets = secrets
        self._min_severity = SEVERITY_VALUE[settings.min_severity]
        self._requests = requests
        self._store = store
        self._db = db
        self._bus = bus
        self._queue: list[tuple[int, str, pb.Event]] = []
        self._woken = asyncio.Event()
        self._requeued = True  # dead letters requeued before a restart are resent too
        self.cursor = 0
        self._saved = 0
        # The highest cursor ever offered: ingest may offer before the bus moves.
        self._offered = 0
        # Read by the metrics collector.
        self.delivered = 0
        self.failures = 0
        self.dead_letters = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    def offer(self, events: Sequence[pb.Event]) -> None:
        """Called by ingest with newly stored events; never blocks."""
        if len(self._queue) + len(events) <= self.settings.queue_events:
            for event in events:
                heapq.heappush(self._queue, (event.cursor, event.id, event))
        if events:
            self._offered = max(self._offered, events[-1].cursor)
        self._woken.set()

    def requeued(self) -> None:
        self._requeued = True
        self._woken.set()

    def wants(self, event: pb.Event) -> bool:
        return event.severity >= self._min_severity and self._requests.selected(event)

    async def run(self) -> None:
        self.cursor = self._saved = await self._db.run(self._store.start_webhook, self.name)
        log.info(
            "webhook %s (%s) resumes after cursor %d", self.name, self.settings.kind, self.cursor
        )
        while True:
            self._woken.clear()
            if self._requeued:
                self._requeued = False
                for letter in await self._db.run(self._store.requeued_dead_letters, self.name):
                    await self._resend(letter)
            batch = self._from_memory() or await self._from_store()
            if not batch:
                await self._sleep()
                continue
            for event in batch:
                await self._handle(event)
            if self.cursor != self._saved:
                await self._db.run(self._store.set_webhook_cursor, self.name, self.cursor)
                self._saved = self.cursor

    async def _sleep(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), RECHECK_SECONDS)

    def _from_memory(self) -> list[pb.Event]:
        """Queued events that continue exactly from the cursor (the log is gapless)."""
        while self._queue and self._queue[0][0] <= self.cursor:
            heapq.heappop(self._queue)
        out: list[pb.Event] = []
        expected = self.cursor + 1
        while self._queue and self._queue[0][0] == expected:
            out.append(heapq.heappop(self._queue)[2])
            expected += 1
        return out

    async def _from_store(self) -> list[pb.Event]:
        if max(self._bus.cursor, self._offered) <= self.cursor:
            return []
        return await self._db.run(
            self._store.list_events, admin_pb.EventFilter(), self.cursor, STORE_BATCH
        )

    async def _handle(self, event: pb.Event) -> None:
        outcome = await self._deliver(event) if self.wants(event) else None
        if outcome is not None:
            if outcome.delivered:
                await self._db.run(self._store.set_webhook_cursor, self.name, event.cursor)
            else:
                await self._db.run(
                    self._store.add_dead_letter,
                    self.name,
                    event.id,
                    outcome.attempts,
                    outcome.error,
                    time.time(),
                    event.cursor,
                )
            self._saved = event.cursor
        self.cursor = event.cursor

    async def _resend(self, letter: DeadLetterRow) -> None:
        found = await self._db.run(
            self._store.list_events, admin_pb.EventFilter(), letter.cursor - 1, 1
        )
        if found and found[0].id == letter.event_id:
            outcome = await self._deliver(found[0]) or Outcome(True, 0, "nothing to send")
        else:
            outcome = Outcome(False, 0, "the event can no longer be read from the store")
        await self._db.run(
            self._store.settle_dead_letter,
            letter.id,
            outcome.delivered,
            outcome.attempts,
            outcome.error,
            time.time(),
        )
        log.info(
            "webhook %s: dead letter %d (event %s) %s",
            self.name,
            letter.id,
            letter.event_id,
            "delivered" if outcome.delivered else f"failed again: {outcome.error}",
        )

    async def _deliver(self, event: pb.Event) -> Outcome | None:
        """Sends the event (None: its sink's requests have nothing to send for it). An
        event no payload can be made of is a dead letter at once: one bad event must
        never hold up the sink."""
        try:
            payload = await self._request(event)
        except UNPRESENTABLE as exc:
            return self._dead(event, 0, f"no payload can be made of it: {exc}")
        return None if payload is None else await self._send(event, payload)

    async def _request(self, event: pb.Event) -> Payload | None:
        return await self._db.run(self._requests.request, event, time.time())

    async def _send(self, event: pb.Event, payload: Payload) -> Outcome:
        """Every attempt at one event; a dead letter is the caller's to write."""
        attempts = 0
        answer = b""
        try:
            async for attempt in self._retrying(event):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    answer = await self._post(event, payload)
        except (DeliveryRefused, DeliveryRetryable) as exc:
            return self._dead(event, attempts, str(exc))
        self.delivered += 1
        await self._db.run(self._requests.delivered, event, payload, answer)
        return Outcome(True, attempts)

    def _dead(self, event: pb.Event, attempts: int, error: str) -> Outcome:
        self.dead_letters += 1
        log.error(
            "webhook %s: event %s is a dead letter after %d attempt(s): %s",
            self.name,
            event.id,
            attempts,
            error[:ERROR_MAX],
        )
        return Outcome(False, attempts, error[:ERROR_MAX])

    def _retrying(self, event: pb.Event) -> AsyncRetrying:
        """Retryable failures are retried with backoff up to max_attempts; a refusal is final."""
        s = self.settings

        def before_sleep(state: RetryCallState) -> None:
            log.warning(
                "webhook %s: attempt %d for event %s failed: %s; retrying in %.1fs",
                self.name,
                state.attempt_number,
                event.id,
                str(state.outcome.exception() if state.outcome else "")[:ERROR_MAX],
                state.next_action.sleep if state.next_action else 0.0,
            )

        return AsyncRetrying(
            stop=stop_after_attempt(s.max_attempts),
            wait=backoff(s.backoff_base_seconds, s.backoff_cap_seconds),
            retry=retry_if_exception_type(DeliveryRetryable),
            before_sleep=before_sleep,
            reraise=True,
        )

    async def _post(self, event: pb.Event, payload: Payload) -> bytes:
        """One attempt (signed now, for a signed sink), its failure counted as it happens
        (the metrics read the count)."""
        s = self.settings
        if self._secrets.secrets:
            payload = signed(payload, event.id, self._secrets.secrets, time.time())
        try:
            return await asyncio.to_thread(post, self._secrets.url, payload, s.timeout_seconds)
        except (DeliveryRefused, DeliveryRetryable):
            self.failures += 1
            raise


class Dispatcher:
    """All sinks of the controller; ingest's one entry point is `offer`."""

    def __init__(
        self,
        config: ControllerConfig,
        store: Store,
        db: DbThread,
        bus: CursorBus,
        advisories: AdvisoryLookup,
    ) -> None:
        # The command line checked these files already, before anything was opened.
        secrets = load_sink_secrets(config)
        self.workers = {
            s.name: SinkWorker(
                s,
                secrets[s.name],
                store,
                db,
                bus,
                SinkRequests(s, secrets[s.name], store, config, advisories),
            )
            for s in config.webhooks
        }
        self._tasks: list[asyncio.Task[None]] = []

    def offer(self, events: Sequence[pb.Event]) -> None:
        for worker in self.workers.values():
            worker.offer(events)

    def requeued(self, sink: str) -> None:
        for worker in self.workers.values():
            if not sink or worker.name == sink:
                worker.requeued()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(_supervised(w), name=f"webhook-{w.name}")
            for w in self.workers.values()
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _supervised(worker: SinkWorker) -> None:
    """A bug or a store hiccup restarts the worker from its saved cursor, not the controller."""
    while True:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except StoreFull:
            pass  # logged once by the store; the worker resumes from its saved cursor
        except Exception:
            log.exception("webhook %s worker failed; restarting it from the store", worker.name)
            await asyncio.sleep(RECHECK_SECONDS)
