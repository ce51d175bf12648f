"""The controller's settings (TOML file, flags override it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controller.api.validate import KIND_RE
from hangwatch.config import (
    SettingError,
    one_of,
    optional_absolute_path,
    positive,
    section,
    setting,
)
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
        50.0, "share of all groups policy may fail over within window_seconds", positive
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


SEVERITIES = ("info", "warning", "error", "critical")


def _url(value: str) -> str | None:
    ok = value.startswith(("http://", "https://")) and len(value) > len("https://")
    return None if ok else f"{value!r} is not an http:// or https:// URL"


def _kinds(value: list[str]) -> str | None:
    bad = [k for k in value if not KIND_RE.match(k)]
    return f"{bad[0]!r} is not an event kind (UPPER_SNAKE_CASE)" if bad else None


@dataclass(frozen=True)
class WebhookSettings:
    name: str = setting("", "the sink's name (in metrics, dead letters and hangwatchctl)", _name)
    kind: str = setting(
        "json",
        "json: the event, HMAC-signed; pagerduty: Events API v2 trigger/resolve on "
        "LOCKUP_CONFIRMED/LOCKUP_CLEARED; slack: a one-line text",
        one_of("json", "pagerduty", "slack"),
    )
    url: str = setting(
        "", "where to POST (PagerDuty: https://events.pagerduty.com/v2/enqueue)", _url
    )
    secret: str = setting("", "json: HMAC-SHA256 key for the X-Hangwatch-Signature header")
    secret_file: str = setting(
        "", "json: file holding the HMAC key instead", optional_absolute_path
    )
    routing_key: str = setting("", "pagerduty: the integration's routing key")
    min_severity: str = setting(
        "info", "send only events at least this severe", one_of(*SEVERITIES)
    )
    kinds: list[str] = setting([], "send only these event kinds (empty: all)", _kinds)
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
        if not self.url:
            raise SettingError("url", "is required")
        if self.kind == "json" and not (self.secret or self.secret_file):
            raise SettingError("secret", "a json sink needs secret or secret_file")
        if self.secret and self.secret_file:
            raise SettingError("secret_file", "give secret or secret_file, not both")
        if self.kind == "pagerduty" and not self.routing_key:
            raise SettingError("routing_key", "a pagerduty sink needs its routing key")
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
        50.0, "Heartbeat and ReportEvents calls one agent may make per second", positive
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


@dataclass(frozen=True)
class ControllerConfig:
    listen: str = setting(
        "127.0.0.1:7443", "address the gRPC API listens on", address_check(allow_port_zero=True)
    )
    data_dir: str = setting("/var/lib/hangwatch-controller", "directory for the SQLite database")
    insecure: bool = setting(False, "serve plaintext gRPC (loopback only; for labs and tests)")
    tls: TlsSettings = section(TlsSettings, "mutual TLS (required unless insecure)")
    access: AccessSettings = section(AccessSettings, "who may do what (with TLS)")
    limits: LimitSettings = section(LimitSettings, "limits on what agents send")
    liveness: LivenessSettings = section(LivenessSettings, "host liveness from heartbeats")
    failover: FailoverSettings = section(FailoverSettings, "failover policy and deadlines")
    upgrades: UpgradeSettings = section(UpgradeSettings, "upgrade plans")
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
