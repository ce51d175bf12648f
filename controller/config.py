"""The controller's settings (TOML file, flags override it)."""

from __future__ import annotations

from dataclasses import dataclass

from hangwatch.config import SettingError, positive, section, setting
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


@dataclass(frozen=True)
class ControllerConfig:
    listen: str = setting(
        "127.0.0.1:7443", "address the gRPC API listens on", address_check(allow_port_zero=True)
    )
    data_dir: str = setting("/var/lib/hangwatch-controller", "directory for the SQLite database")
    insecure: bool = setting(False, "serve plaintext gRPC (loopback only; for labs and tests)")
    liveness: LivenessSettings = section(LivenessSettings, "host liveness from heartbeats")
    log: LogSettings = section(LogSettings, "logging to stderr")
