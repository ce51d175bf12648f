"""Which request each sink sends for an event, and what it keeps once it was delivered.

The formats themselves are pure (`payloads`, `pagerduty`, `alertmanager`,
`statuspage`); this is where they meet what the store knows: the alert a PagerDuty
sink has open for a mount, the incident a page is about, the id a status-page product
gave to an incident. Runs on the store thread.
"""

from __future__ import annotations

import hashlib

from controller.config import ControllerConfig, WebhookSettings
from controller.incidents import facts, statuspage
from controller.incidents.tracker import lockup_incident
from controller.notify import alertmanager, pagerduty
from controller.notify import statuspage as statuspage_api
from controller.notify.payloads import Payload, json_payload, needs_people, slack_payload
from controller.notify.secrets import SinkSecrets
from controller.store.interface import Store
from hangwatch.v1 import types_pb2 as pb

# Sink kinds that by default are told only what needs people.
PEOPLE_BY_DEFAULT = frozenset({"slack"})


def group_of(config: ControllerConfig, event: pb.Event) -> str:
    """The group the event is about: its notice's, else the one its host's mount serves
    (or, failing that, any group of the host)."""
    if event.notice.group:
        return event.notice.group
    member = [g for g in config.groups if event.host_id in g.members]
    exact = [g for g in member if event.mount in g.mounts]
    return (exact or member)[0].name if member else ""


def mount_key(event: pb.Event) -> str:
    """A lockup's dedup_key when no first signal is on record: one per host and mount."""
    key = f"{event.host_id}:{event.mount}"
    if len(key) <= pagerduty.DEDUP_MAX:
        return key
    return key[: pagerduty.DEDUP_MAX - 65] + ":" + hashlib.sha256(key.encode()).hexdigest()


class SinkRequests:
    def __init__(
        self,
        settings: WebhookSettings,
        secrets: SinkSecrets,
        store: Store,
        config: ControllerConfig,
        lookup: facts.AdvisoryLookup,
    ) -> None:
        self._settings = settings
        self._secrets = secrets
        self._store = store
        self._config = config
        self._lookup = lookup
        events = settings.events or (
            "needs-people" if settings.kind in PEOPLE_BY_DEFAULT else "all"
        )
        self._people_only = events == "needs-people"

    def selected(self, event: pb.Event) -> bool:
        """The sink's filters: kinds, and for chat only what needs people."""
        if self._settings.kinds and event.kind not in self._settings.kinds:
            return False
        return not self._people_only or needs_people(event)

    def _link(self, event: pb.Event) -> str:
        links = self._config.incidents
        if event.notice.failover_id and links.failover_url:
            return links.failover_link(event.notice.failover_id)
        if event.notice.incident_id and links.incident_url:
            return links.incident_link(event.notice.incident_id)
        return ""

    def request(self, event: pb.Event, now: float) -> Payload | None:
        """The request for the event; None when this sink has nothing to say about it."""
        kind = self._settings.kind
        if kind == "json":
            return json_payload(event)
        if kind == "slack":
            return slack_payload(event, self._link(event))
        if kind == "pagerduty":
            return self._pagerduty(event)
        if kind == "alertmanager":
            found = alertmanager.alert(event, group_of(self._config, event), self._link(event))
            return None if found is None else alertmanager.payload(event, found)
        return self._statuspage(event, now)

    def _pagerduty(self, event: pb.Event) -> Payload | None:
        act = pagerduty.action(event)
        if act is None:
            return None
        sink, store = self._settings.name, self._store
        if event.HasField("notice"):
            key = pagerduty.notice_key(event)
        elif act == "trigger":
            found = lockup_incident(store, event.host_id, event.mount, event.cursor + 1)
            key = found[0] if found else mount_key(event)
            store.set_alert_key(sink, event.host_id, event.mount, key)
        else:
            known = store.alert_key(sink, event.host_id, event.mount)
            # An incident's alert is resolved when service is restored, not when the old
            # primary's mount clears (maybe long after, or before the failover is done).
            if known is None or store.get_incident(known) is not None:
                return None
            key = known
        return pagerduty.payload(
            event,
            self._secrets.routing_key,
            act,
            key,
            group_of(self._config, event),
            self._link(event),
        )

    def _statuspage(self, event: pb.Event, now: float) -> Payload | None:
        stage = statuspage_api.stage_of(event)
        incident = self._store.get_incident(event.notice.incident_id) if stage else None
        if incident is None:
            return None
        found = facts.gather(self._store, self._config, self._lookup, incident, now)
        who = facts.audience(self._config, incident.group)
        told = statuspage.updates(
            facts.story(found), who, self._config.incidents.next_update_minutes
        )
        latest = next((u for u in told if u.stage == stage), None)
        if latest is None:
            return None
        group = self._config.group(incident.group)
        return statuspage_api.payload(
            event,
            self._secrets.api_key,
            self._store.remote_id(self._settings.name, incident.id),
            statuspage.title(who),
            latest.stage,
            latest.text,
            group.status_components if group else (),
        )

    def delivered(self, event: pb.Event, request: Payload, response: bytes) -> None:
        """What a delivery leaves behind: a resolved alert forgotten, a created id kept."""
        sink, kind = self._settings.name, self._settings.kind
        if kind == "pagerduty" and pagerduty.action(event) == "resolve":
            self._store.set_alert_key(sink, event.host_id, event.mount, None)
        if kind == "statuspage" and request.method == "POST":
            created = statuspage_api.created_id(response)
            if created is not None:
                self._store.set_remote_id(sink, event.notice.incident_id, created)
