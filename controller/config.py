"""The controller's settings (TOML file, flags override it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hangwatch.config import (
    SettingError,
    at_most,
    one_of,
    optional_absolute_path,
    positive,
    section,
    setting,
)
from hangwatch.ids import is_kind
from hangwatch.metrics import MetricsSettings
from hangwatch.roles import PEOPLE_ROLES
from hangwatch.settings import LogSettings, address_check


@dataclass(frozen=True)
class LivenessSettings:
    heartbeat_interval_seconds: float = setting(
        2.0, "interval agents are told to heartbeat at", positive
    )
    stale_after_seconds: float = setting(
        6.0, "a host whose last heartbeat is older is STALE (3 missed beats)", positive
    )
    unreachable_after_seconds: float = setting(
        15.0, "a host whose last heartbeat is older is UNREACHABLE", positive
    )
    agent_max_backoff_seconds: float = setting(
        10.0,
        "the agents' reconnect.max_backoff_seconds. After the controller starts, no "
        "failover on liveness, or on health reported before the start, until this plus "
        "unreachable_after_seconds has passed: every agent has reconnected by then",
        positive,
    )

    @property
    def reconnect_grace_seconds(self) -> float:
        """How long after the controller's start agents may still be reconnecting."""
        return self.agent_max_backoff_seconds + self.unreachable_after_seconds

    def __post_init__(self) -> None:
        if self.heartbeat_interval_seconds >= self.stale_after_seconds:
            raise SettingError(
                "heartbeat_interval_seconds", "must be smaller than stale_after_seconds"
            )
        if self.unreachable_after_seconds <= self.stale_after_seconds:
            raise SettingError(
                "unreachable_after_seconds", "must be greater than stale_after_seconds"
            )


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _name(value: str) -> str | None:
    return None if _NAME.match(value) else f"{value!r} is not a valid name"


# "none" may do nothing; the others in increasing power.
ACCESS_ROLES = ("none", *PEOPLE_ROLES)


def _absolute(value: list[str]) -> str | None:
    bad = [p for p in value if not p.startswith("/")]
    return f"{bad[0]!r} is not an absolute path" if bad else None


def _at_least(minimum: int) -> Any:
    return lambda v: None if v >= minimum else f"must be {minimum} or more"


@dataclass(frozen=True)
class GroupSettings:
    name: str = setting("", "the group's name (a service: 'mail-b')", _name)
    members: list[str] = setting([], "hosts that can serve it, in order of preference")
    mounts: list[str] = setting([], "the mounts that matter to the service", _absolute)
    mode: str = setting(
        "manual", "manual: an SRE approves; auto: policy may approve", one_of("manual", "auto")
    )
    primary: str = setting("", "the initial primary (the controller owns it afterwards)")
    display_name: str = setting(
        "", "how customers know it on the status page ('cluster B'; default: the name)"
    )
    services: list[str] = setting(
        [], "what customers use on it, named on the status page (['IMAP', 'POP', 'Webmail'])"
    )
    status_components: list[str] = setting(
        [], "statuspage sinks: the page's component ids marked down while it is interrupted"
    )
    frozen_primary: str = setting(
        "fence",
        "an old primary whose group mount is LOCKED (or that is unreachable after SUSPECT "
        "or LOCKED) cannot finish a demote. fence: fence it at once, beside the demote "
        "(with no fence agent for it, give the demote [failover] "
        "frozen_demote_timeout_seconds, then stop for a person); wait: give the demote "
        "its full deadline first",
        one_of("fence", "wait"),
    )

    def __post_init__(self) -> None:
        if not self.name:
            raise SettingError("name", "is required")
        if len(self.members) < 2:
            raise SettingError("members", "a group needs at least two members")
        if len(set(self.members)) != len(self.members):
            raise SettingError("members", "a host is listed twice")
        if not self.mounts:
            raise SettingError("mounts", "at least one mount is required")
        if self.primary not in self.members:
            raise SettingError("primary", f"{self.primary!r} is not one of the members")


@dataclass(frozen=True)
class FenceSettings:
    host: str = setting("", "the host this fence device powers off")
    agent: str = setting(
        "",
        "fence agent executable (ClusterLabs convention: key=value "
        "arguments on stdin, exit 0 on success), e.g. /usr/sbin/fence_ipmilan",
        optional_absolute_path,
    )
    options: dict[str, str] = setting(
        {}, "arguments passed on stdin besides action=off (ip, username, password, plug, ...)"
    )
    timeout_seconds: float = setting(60.0, "how long the fence agent may take", positive)

    def __post_init__(self) -> None:
        if not self.host:
            raise SettingError("host", "is required")
        if not self.agent:
            raise SettingError("agent", "is required")


@dataclass(frozen=True)
class FailoverSettings:
    demote_timeout_seconds: float = setting(
        30.0, "the old primary must acknowledge its demote by then, or it is fenced", positive
    )
    promote_timeout_seconds: float = setting(60.0, "the new primary must report by then", positive)
    frozen_demote_timeout_seconds: float = setting(
        5.0,
        "a frozen old primary with no fence agent gets this long to demote before the "
        "failover stops for a person (groups with frozen_primary = fence)",
        positive,
    )
    anti_flap_seconds: float = setting(
        6 * 3600.0,
        "after a failover completes, automatic approval for the group waits this "
        "long (a human can approve; 'failover ack' ends it)",
        positive,
    )
    max_concurrent: int = setting(
        1, "failovers in progress at once that policy may approve", _at_least(1)
    )
    max_group_percent: float = setting(
        50.0,
        "share of all groups (percent) policy may fail over within window_seconds",
        at_most(100.0),
    )
    window_seconds: float = setting(3600.0, "the window of max_group_percent", positive)
    two_person_rule: bool = setting(False, "the approver must not be the proposer")
    pre_failover_hook: str = setting(
        "",
        "executable run before policy approves a failover; non-zero exit vetoes it",
        optional_absolute_path,
    )
    hook_timeout_seconds: float = setting(30.0, "how long the pre-failover hook may take", positive)
    interval_seconds: float = setting(0.5, "seconds between coordinator passes", positive)


# The one spelling of severities: config, webhook payloads, PagerDuty, Alertmanager.
SEVERITIES = ("info", "warning", "error", "critical")
SINK_KINDS = ("json", "pagerduty", "slack", "alertmanager", "statuspage")


def is_http_url(value: str) -> bool:
    return value.startswith(("http://", "https://")) and len(value) > len("https://")


def _url(value: str) -> str | None:
    return None if is_http_url(value) else f"{value!r} is not an http:// or https:// URL"


def _optional_url(value: str) -> str | None:
    return _url(value) if value else None


def _kinds(value: list[str]) -> str | None:
    bad = [k for k in value if not is_kind(k)]
    return f"{bad[0]!r} is not an event kind (UPPER_SNAKE_CASE)" if bad else None


def _secret_file(value: str) -> str | None:
    """An absolute path, or the name of a systemd credential (no slash)."""
    if not value or value.startswith("/") or ("/" not in value and value not in (".", "..")):
        return None
    return f"{value!r} is neither an absolute path nor a credential name (no '/')"


SECRET_FILE_DOC = (
    " instead: an absolute path, or a name in $CREDENTIALS_DIRECTORY (systemd's "
    "LoadCredential=); read at start, surrounding white space dropped"
)
# Each sink setting that may be a secret, and its twin naming a file that holds it.
SECRET_KEYS = ("url", "secret", "previous_secret", "routing_key", "api_key")


@dataclass(frozen=True)
class WebhookSettings:
    name: str = setting("", "the sink's name (in metrics, dead letters and hangwatchctl)", _name)
    kind: str = setting(
        "json",
        "json: the event, signed (Standard Webhooks); pagerduty: Events API v2, one alert per "
        "incident; slack: Block Kit message; alertmanager: alerts to /api/v2/alerts; "
        "statuspage: the customer status page (Atlassian Statuspage incidents API)",
        one_of(*SINK_KINDS),
    )
    url: str = setting(
        "",
        "where to send: PagerDuty https://events.pagerduty.com/v2/enqueue; Alertmanager its "
        "base URL (http://am:9093); Statuspage https://api.statuspage.io/v1/pages/PAGE_ID",
        _url,
    )
    url_file: str = setting(
        "", "file holding the URL (a Slack webhook URL is a secret)" + SECRET_FILE_DOC, _secret_file
    )
    secret: str = setting(
        "", "json: the signing key (whsec_ and base64, or any text) of webhook-signature"
    )
    secret_file: str = setting(
        "", "json: file holding the signing key" + SECRET_FILE_DOC, _secret_file
    )
    previous_secret: str = setting(
        "", "json: during a key rotation, the old key: each delivery is signed with both"
    )
    previous_secret_file: str = setting(
        "", "json: file holding the old key" + SECRET_FILE_DOC, _secret_file
    )
    routing_key: str = setting("", "pagerduty: the integration's routing key")
    routing_key_file: str = setting(
        "", "pagerduty: file holding the routing key" + SECRET_FILE_DOC, _secret_file
    )
    api_key: str = setting("", "statuspage: the API key (sent as 'Authorization: OAuth KEY')")
    api_key_file: str = setting(
        "", "statuspage: file holding the API key" + SECRET_FILE_DOC, _secret_file
    )
    min_severity: str = setting(
        "info", "send only events at least this severe", one_of(*SEVERITIES)
    )
    kinds: list[str] = setting([], "send only these event kinds (empty: all)", _kinds)
    events: str = setting(
        "",
        "needs-people: only lockups, failovers waiting or failed, and restorations; all: "
        "every event; default: needs-people for slack, all for the others",
        one_of("", "needs-people", "all"),
    )
    timeout_seconds: float = setting(10.0, "how long one HTTP request may take", positive)
    max_attempts: int = setting(
        8, "attempts before an event becomes a dead letter (4xx other than 429: one)", _at_least(1)
    )
    backoff_base_seconds: float = setting(
        1.0, "wait after the first failure; doubles with each attempt, with jitter", positive
    )
    backoff_cap_seconds: float = setting(300.0, "longest wait between attempts", positive)
    queue_events: int = setting(
        10000,
        "events held in memory for the sink; beyond, it catches up from the store",
        _at_least(1),
    )

    def __post_init__(self) -> None:
        if not self.name:
            raise SettingError("name", "is required")
        for key in SECRET_KEYS:
            if getattr(self, key) and getattr(self, f"{key}_file"):
                raise SettingError(f"{key}_file", f"give {key} or {key}_file, not both")
        if not (self.url or self.url_file):
            raise SettingError("url", "is required (or url_file)")
        if self.kind == "json" and not (self.secret or self.secret_file):
            raise SettingError("secret", "a json sink needs secret or secret_file")
        if self.kind == "pagerduty" and not (self.routing_key or self.routing_key_file):
            raise SettingError(
                "routing_key", "a pagerduty sink needs its routing key (or routing_key_file)"
            )
        if self.kind == "statuspage" and not (self.api_key or self.api_key_file):
            raise SettingError("api_key", "a statuspage sink needs api_key (or api_key_file)")
        if (self.previous_secret or self.previous_secret_file) and not (
            self.secret or self.secret_file
        ):
            raise SettingError("previous_secret", "is the old key beside secret: give secret too")
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise SettingError("backoff_cap_seconds", "must not be below backoff_base_seconds")


def _roles(value: dict[str, str]) -> str | None:
    bad = next(((n, r) for n, r in value.items() if r not in ACCESS_ROLES), None)
    return None if bad is None else f"{bad[0]}: {bad[1]!r} is not one of {', '.join(ACCESS_ROLES)}"


@dataclass(frozen=True)
class TlsSettings:
    """Mutual TLS: required unless `insecure` (loopback only). Re-read on SIGHUP."""

    cert_file: str = setting(
        "", "the controller's certificate (PEM, intermediates after it)", optional_absolute_path
    )
    key_file: str = setting(
        "",
        "its private key (PEM, unencrypted, readable by the service user)",
        optional_absolute_path,
    )
    ca_file: str = setting(
        "",
        "CA certificates every client (agents, people) must present a certificate of",
        optional_absolute_path,
    )


@dataclass(frozen=True)
class AccessSettings:
    """Roles of people and tools (certificates with a URI SAN hangwatch://user/NAME)."""

    roles: dict[str, str] = setting(
        {},
        "role per NAME (none, viewer, operator, approver, admin); wins over the certificate's OU",
        _roles,
    )
    certificate_roles: bool = setting(
        True, "take the role from the certificate's OU for a NAME not in roles"
    )
    default_role: str = setting(
        "none", "role of a NAME that neither roles nor the OU gives one", one_of(*ACCESS_ROLES)
    )


@dataclass(frozen=True)
class LimitSettings:
    agent_calls_per_second: float = setting(
        50.0,
        "AgentService calls (Register, Heartbeat, ReportEvents, ReportCommandResult) one "
        "agent may make per second",
        positive,
    )
    agent_burst: int = setting(
        200,
        "calls one agent may make at once before agent_calls_per_second applies",
        _at_least(1),
    )


@dataclass(frozen=True)
class UpgradeSettings:
    interval_seconds: float = setting(
        2.0, "seconds between passes over the upgrade plans", positive
    )
    max_parallel_hosts: int = setting(
        1, "hosts one plan upgrades at once (never two members of a group)", _at_least(1)
    )
    default_soak_seconds: float = setting(
        600.0,
        "an upgraded host's mounts must stay OK this long before it is DONE (a plan's --soak wins)",
        positive,
    )


def _endpoints(value: list[str]) -> str | None:
    for endpoint in value:
        url = urlsplit(endpoint)
        try:
            port = url.port
        except ValueError:
            port = None
        if url.scheme not in ("http", "https") or not url.hostname or port is None:
            return f"{endpoint!r} is not an etcd client URL (http[s]://HOST:PORT)"
        if url.path not in ("", "/"):
            return f"{endpoint!r}: an etcd client URL has no path"
    return None


def _prefix(value: str) -> str | None:
    ok = value.startswith("/") and value.endswith("/") and len(value) > 1
    return None if ok else f"{value!r} must start and end with '/' (e.g. /hangwatch/)"


@dataclass(frozen=True)
class StoreSettings:
    """Where the cluster's state lives (see docs/operations.md, "Running on etcd")."""

    backend: str = setting(
        "sqlite",
        "sqlite: one controller, a file in data_dir; etcd: any number of controllers "
        "sharing an etcd v3 cluster, one of them leader",
        one_of("sqlite", "etcd"),
    )
    endpoints: list[str] = setting(
        [], "etcd: client URLs of the members, http[s]://HOST:PORT", _endpoints
    )
    prefix: str = setting(
        "/hangwatch/", "etcd: the key prefix this installation keeps its state under", _prefix
    )
    ca_file: str = setting(
        "",
        "etcd: CA certificates the members' certificates are checked against (https)",
        optional_absolute_path,
    )
    cert_file: str = setting(
        "", "etcd: client certificate, when the members require one", optional_absolute_path
    )
    key_file: str = setting("", "etcd: its private key", optional_absolute_path)
    timeout_seconds: float = setting(
        2.0,
        "etcd: how long one request to one member may take before the next is tried",
        positive,
    )
    max_txn_ops: int = setting(
        128,
        "etcd: the members' --max-txn-ops (operations one transaction may hold)",
        _at_least(16),
    )
    leader_ttl_seconds: int = setting(
        5, "etcd: TTL of the leader's lease; a dead leader is replaced after it", _at_least(2)
    )
    leader_renew_deadline_seconds: float = setting(
        3.0,
        "etcd: a leader whose keepalives all failed this long stops acting (at most 80 % "
        "of leader_ttl_seconds: the rest covers clock drift and an action under way)",
        positive,
    )
    compact_keep_revisions: int = setting(
        100000,
        "etcd: the leader compacts etcd's history older than this many revisions "
        "(0: leave it to the members' --auto-compaction settings)",
        _at_least(0),
    )
    compact_interval_seconds: float = setting(
        300.0, "etcd: how often the leader compacts", positive
    )

    def __post_init__(self) -> None:
        if self.backend != "etcd":
            return
        if not self.endpoints:
            raise SettingError("endpoints", "the etcd backend needs at least one member's URL")
        secure = {urlsplit(e).scheme == "https" for e in self.endpoints}
        if len(secure) > 1:
            raise SettingError("endpoints", "mixes http:// and https:// members")
        if True in secure and not self.ca_file:
            raise SettingError("ca_file", "https:// endpoints need the CA to check members by")
        if bool(self.cert_file) != bool(self.key_file):
            raise SettingError("key_file", "give cert_file and key_file together, or neither")
        if self.cert_file and True not in secure:
            raise SettingError("cert_file", "a client certificate needs https:// endpoints")
        if self.leader_renew_deadline_seconds > 0.8 * self.leader_ttl_seconds:
            raise SettingError(
                "leader_renew_deadline_seconds",
                f"must be at most 80 % of leader_ttl_seconds ({0.8 * self.leader_ttl_seconds:g} s)",
            )


@dataclass(frozen=True)
class EventSettings:
    """How long events are kept (see 'Event retention' in docs/operations.md)."""

    retention_days: float = setting(90.0, "days; events received longer ago are pruned", positive)
    max_events: int = setting(2_000_000, "only the newest this many are kept", _at_least(1000))


@dataclass(frozen=True)
class AuditSettings:
    """Anchors of the audit log outside the database (see 'The audit log' in the docs)."""

    key_file: str = setting(
        "",
        "HMAC key that signs the anchors, created with mode 0600 on the first start; "
        "keep it out of the database's backups [default: DATA_DIR/audit-anchor.key]",
        optional_absolute_path,
    )
    anchor_file: str = setting(
        "",
        "the signed anchor: the last row and its hash [default: DATA_DIR/audit-anchor.json]",
        optional_absolute_path,
    )
    anchor_interval_seconds: float = setting(
        10.0,
        "how often the log's last row is anchored (when it changed); rows added since "
        "the last anchor have only the hash chain's protection",
        positive,
    )


@dataclass(frozen=True)
class IncidentSettings:
    failover_url: str = setting(
        "",
        "link to a failover in pages and alerts, {id} replaced by its id "
        "(a runbook or console: 'https://ops.example/hangwatch/failovers/{id}')",
        _optional_url,
    )
    incident_url: str = setting("", "link to an incident, {id} replaced by its id", _optional_url)
    next_update_minutes: int = setting(
        15, "the status page promises its next update within this many minutes", _at_least(1)
    )

    def failover_link(self, failover_id: str) -> str:
        return self.failover_url.replace("{id}", failover_id)

    def incident_link(self, incident_id: str) -> str:
        return self.incident_url.replace("{id}", incident_id)


@dataclass(frozen=True)
class ControllerConfig:
    listen: str = setting(
        "127.0.0.1:7443", "address the gRPC API listens on", address_check(allow_port_zero=True)
    )
    data_dir: str = setting("/var/lib/hangwatch-controller", "directory for the SQLite database")
    store: StoreSettings = section(StoreSettings, "where the cluster's state lives")
    insecure: bool = setting(False, "serve plaintext gRPC (loopback only; for labs and tests)")
    tls: TlsSettings = section(TlsSettings, "mutual TLS (required unless insecure)")
    access: AccessSettings = section(AccessSettings, "who may do what (with TLS)")
    limits: LimitSettings = section(LimitSettings, "limits on what agents send")
    liveness: LivenessSettings = section(LivenessSettings, "host liveness from heartbeats")
    failover: FailoverSettings = section(FailoverSettings, "failover policy and deadlines")
    upgrades: UpgradeSettings = section(UpgradeSettings, "upgrade plans")
    audit: AuditSettings = section(AuditSettings, "the audit log's anchors")
    events: EventSettings = section(EventSettings, "event retention")
    incidents: IncidentSettings = section(IncidentSettings, "incident pages and links")
    groups: list[GroupSettings] = setting([], "service groups ([[groups]] tables)")
    fencing: list[FenceSettings] = setting([], "fence devices per host ([[fencing]] tables)")
    webhooks: list[WebhookSettings] = setting([], "webhook sinks for events ([[webhooks]] tables)")
    metrics: MetricsSettings = section(MetricsSettings, "the Prometheus endpoint")
    log: LogSettings = section(LogSettings, "logging to stderr")

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for i, group in enumerate(self.groups):
            if group.name in seen:
                raise SettingError(f"groups[{i}].name", f"group {group.name!r} is declared twice")
            seen.add(group.name)
        fenced: set[str] = set()
        for i, fence in enumerate(self.fencing):
            if fence.host in fenced:
                raise SettingError(f"fencing[{i}].host", f"{fence.host!r} has two fence devices")
            fenced.add(fence.host)
        sinks: set[str] = set()
        for i, hook in enumerate(self.webhooks):
            if hook.name in sinks:
                raise SettingError(f"webhooks[{i}].name", f"sink {hook.name!r} is declared twice")
            sinks.add(hook.name)

    def fence_for(self, host: str) -> FenceSettings | None:
        return next((f for f in self.fencing if f.host == host), None)

    def group(self, name: str) -> GroupSettings | None:
        return next((g for g in self.groups if g.name == name), None)
