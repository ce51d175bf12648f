"""The controller's settings (TOML file, flags override it)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hangwatch.config import SettingError, one_of, positive, section, setting
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

    def __post_init__(self) -> None:
        if self.unreachable_after_seconds <= self.stale_after_seconds:
            raise SettingError(
                "unreachable_after_seconds", "must be greater than stale_after_seconds"
            )


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _name(value: str) -> str | None:
    return None if _NAME.match(value) else f"{value!r} is not a valid name"


def _absolute(value: list[str]) -> str | None:
    bad = [p for p in value if not p.startswith("/")]
    return f"{bad[0]!r} is not an absolute path" if bad else None


def _optional_path(value: str) -> str | None:
    return None if not value or value.startswith("/") else f"{value!r} is not an absolute path"


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
        _optional_path,
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
        _optional_path,
    )
    hook_timeout_seconds: float = setting(30.0, "how long the pre-failover hook may take", positive)
    interval_seconds: float = setting(0.5, "seconds between coordinator passes", positive)


@dataclass(frozen=True)
class ControllerConfig:
    listen: str = setting(
        "127.0.0.1:7443", "address the gRPC API listens on", address_check(allow_port_zero=True)
    )
    data_dir: str = setting("/var/lib/hangwatch-controller", "directory for the SQLite database")
    insecure: bool = setting(False, "serve plaintext gRPC (loopback only; for labs and tests)")
    liveness: LivenessSettings = section(LivenessSettings, "host liveness from heartbeats")
    failover: FailoverSettings = section(FailoverSettings, "failover policy and deadlines")
    groups: list[GroupSettings] = setting([], "service groups ([[groups]] tables)")
    fencing: list[FenceSettings] = setting([], "fence devices per host ([[fencing]] tables)")
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

    def fence_for(self, host: str) -> FenceSettings | None:
        return next((f for f in self.fencing if f.host == host), None)
