"""The agent's settings (TOML file, flags override it)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from hangwatch.config import SettingError, positive, section, setting
from hangwatch.settings import LogSettings, address_check


def _absolute_paths(value: list[str]) -> str | None:
    for path in value:
        if not path.startswith("/"):
            return f"{path!r} is not an absolute path"
    if len(set(value)) != len(value):
        return "a mount is listed twice"
    return None


@dataclass(frozen=True)
class ControllerSettings:
    address: str = setting("127.0.0.1:7443", "HOST:PORT of the controller", address_check())
    insecure: bool = setting(False, "plaintext gRPC (loopback only; for labs and tests)")
    rpc_timeout_seconds: float = setting(5.0, "deadline of each call to the controller", positive)


@dataclass(frozen=True)
class ReconnectSettings:
    initial_backoff_seconds: float = setting(
        0.5, "first wait after a failed call; doubles each retry, with jitter", positive
    )
    max_backoff_seconds: float = setting(10.0, "cap on the wait between retries", positive)

    def __post_init__(self) -> None:
        if self.max_backoff_seconds < self.initial_backoff_seconds:
            raise SettingError(
                "max_backoff_seconds", "must not be smaller than initial_backoff_seconds"
            )


@dataclass(frozen=True)
class HeartbeatSettings:
    interval_seconds: float = setting(
        2.0, "seconds between heartbeats (the controller's answer to Register wins)", positive
    )


@dataclass(frozen=True)
class AgentConfig:
    host_id: str = setting(socket.gethostname(), "this host's id [default: the hostname]")
    mounts: list[str] = setting([], "mount points to watch (absolute paths)", _absolute_paths)
    state_dir: str = setting("/var/lib/hangwatch", "directory for the spool and agent state")
    controller: ControllerSettings = section(ControllerSettings, "the controller to report to")
    heartbeat: HeartbeatSettings = section(HeartbeatSettings, "heartbeats")
    reconnect: ReconnectSettings = section(ReconnectSettings, "retries when the controller is down")
    log: LogSettings = section(LogSettings, "logging to stderr")
