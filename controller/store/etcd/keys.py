"""Where the etcd store keeps what, and how values are encoded.

Every key starts with the configured prefix P (default `/hangwatch/`), so several
installations can share one etcd cluster. Names and ids inside keys are
percent-encoded (a mount `/srv/mail` is `%2Fsrv%2Fmail`); numbers that order a log
are zero-padded to 20 digits so key order is numeric order.

    P/leader                      the leader's identity, on the leader's lease;
                                  its create_revision is the term (election.py)
    P/hosts/<host>                registration: boot_id, agent_version,
                                  registered_at, registration (RegisterRequest)
    P/boots/<host>                the boot_id it registered with (plain text), what a
                                  heartbeat compares in its one round trip
    P/heartbeats/<host>           at, body (HeartbeatRequest)
    P/needs-clear/<host>          why the host is not a failover target (plain text;
                                  absent: it is)
    P/event-cursor                the last cursor handed out (decimal text)
    P/events/<cursor>             received_at, body (Event without cursor/received_at)
    P/event-ids/<event id>        its cursor (decimal text): each id is stored once
    P/host-seqs/<host>            the highest host_seq stored for the host (decimal text)
    P/groups/<group>              primary, epoch, auto_blocked_until, term
    P/failovers/<id>              record (the Failover), updated_at, term
    P/open-failovers/<group>      the id of the group's open failover (plain text)
    P/commands/<id>               host_id, created_at, body (Command), result
                                  (CommandResult or null), reported_at
    P/pending-commands/<host>/<id>   empty; exists while the command has no result
    P/fence-results/<failover>    ok, detail, at
    P/audit-head                  seq and hash of the last audit row
    P/audit/<seq>                 one AuditRow
    P/maintenance/<scope>/<target>   one MaintenanceRow
    P/settings/<key>              the value (plain text)
    P/incidents/<id>              one IncidentRow
    P/webhook-cursors/<sink>      the sink's cursor (decimal text)
    P/dead-letter-seq             the last dead letter id handed out (decimal text)
    P/dead-letters/<id>           sink, event_id, attempts, last_error, failed_at,
                                  cursor, requeued_at
    P/webhook-alerts/<sink>/<host>/<mount>   the open alert's dedup key (plain text)
    P/advisories/<id>             one AdvisoryRow
    P/plans/<name>                record (the Plan), updated_at, term

Values not marked plain or decimal text are JSON objects (UTF-8, sorted keys);
protobuf messages inside them are their serialized bytes in base64, and records
(Failover, Plan) are the `controller.store.records` JSON form. `term` is the leader
term that wrote the value (0 when written without leadership, by a migration).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from google.protobuf.message import Message


def part(name: str) -> str:
    """A name or id as one key component."""
    return quote(name, safe="")


def number(n: int) -> str:
    return f"{n:020d}"


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        p = self.prefix
        self.leader = p + "leader"
        self.hosts = p + "hosts/"
        self.boots = p + "boots/"
        self.heartbeats = p + "heartbeats/"
        self.needs_clears = p + "needs-clear/"
        self.event_cursor = p + "event-cursor"
        self.events = p + "events/"
        self.event_ids = p + "event-ids/"
        self.host_seqs = p + "host-seqs/"
        self.groups = p + "groups/"
        self.failovers = p + "failovers/"
        self.open_failovers = p + "open-failovers/"
        self.commands = p + "commands/"
        self.pending_commands = p + "pending-commands/"
        self.fence_results = p + "fence-results/"
        self.audit_head = p + "audit-head"
        self.audit = p + "audit/"
        self.maintenance = p + "maintenance/"
        self.settings = p + "settings/"
        self.incidents = p + "incidents/"
        self.webhook_cursors = p + "webhook-cursors/"
        self.dead_letter_seq = p + "dead-letter-seq"
        self.dead_letters = p + "dead-letters/"
        self.webhook_alerts = p + "webhook-alerts/"
        self.remote_ids = p + "webhook-remote-ids/"
        self.advisories = p + "advisories/"
        self.plans = p + "plans/"
        self.sightings = p + "sightings/"
        self.drafts = p + "drafts/"

    def host(self, host_id: str) -> str:
        return self.hosts + part(host_id)

    def boot(self, host_id: str) -> str:
        return self.boots + part(host_id)

    def heartbeat(self, host_id: str) -> str:
        return self.heartbeats + part(host_id)

    def needs_clear(self, host_id: str) -> str:
        return self.needs_clears + part(host_id)

    def event(self, cursor: int) -> str:
        return self.events + number(cursor)

    def event_id(self, event_id: str) -> str:
        return self.event_ids + part(event_id)

    def host_seq(self, host_id: str) -> str:
        return self.host_seqs + part(host_id)

    def group(self, name: str) -> str:
        return self.groups + part(name)

    def failover(self, failover_id: str) -> str:
        return self.failovers + part(failover_id)

    def open_failover(self, group: str) -> str:
        return self.open_failovers + part(group)

    def command(self, command_id: str) -> str:
        return self.commands + part(command_id)

    def pending_of(self, host_id: str) -> str:
        return self.pending_commands + part(host_id) + "/"

    def pending_command(self, host_id: str, command_id: str) -> str:
        return self.pending_of(host_id) + part(command_id)

    def fence_result(self, failover_id: str) -> str:
        return self.fence_results + part(failover_id)

    def audit_row(self, seq: int) -> str:
        return self.audit + number(seq)

    def maintenance_of(self, scope: str, target: str) -> str:
        return self.maintenance + part(scope) + "/" + part(target)

    def setting(self, key: str) -> str:
        return self.settings + part(key)

    def incident(self, incident_id: str) -> str:
        return self.incidents + part(incident_id)

    def webhook_cursor(self, sink: str) -> str:
        return self.webhook_cursors + part(sink)

    def dead_letter(self, letter_id: int) -> str:
        return self.dead_letters + number(letter_id)

    def alert(self, sink: str, host_id: str, mount: str) -> str:
        return self.webhook_alerts + "/".join(part(x) for x in (sink, host_id, mount))

    def remote_id(self, sink: str, key: str) -> str:
        return self.remote_ids + part(sink) + "/" + part(key)

    def advisory(self, advisory_id: str) -> str:
        return self.advisories + part(advisory_id)

    def sighting(self, fingerprint: str, event_id: str) -> str:
        return self.sightings + part(fingerprint) + "/" + part(event_id)

    def draft(self, draft_id: str) -> str:
        return self.drafts + part(draft_id)

    def plan(self, name: str) -> str:
        return self.plans + part(name)


def dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def load(raw: bytes) -> Any:
    return json.loads(raw)


def message(msg: Message) -> str:
    """A protobuf message as a JSON value (base64 of its serialized bytes)."""
    return base64.b64encode(msg.SerializeToString()).decode("ascii")


def unmessage(text: str) -> bytes:
    return base64.b64decode(text)
