"""The agent's settings (TOML file, flags override it)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from hangwatch.config import SettingError, optional_absolute_path, positive, section, setting
from hangwatch.ids import host_id_problem
from hangwatch.metrics import AgentMetricsSettings
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
    ca_file: str = setting(
        "", "CA certificates the controller's certificate must chain to", optional_absolute_path
    )
    cert_file: str = setting(
        "",
        "this agent's client certificate (PEM); its DNS SAN must be host_id. The three "
        "files are re-read on SIGHUP",
        optional_absolute_path,
    )
    key_file: str = setting(
        "", "its private key (PEM, unencrypted, mode 0600)", optional_absolute_path
    )
    server_name: str = setting(
        "", "name the controller's certificate must carry (empty: the host of address)"
    )
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
class ProbeSettings:
    interval_seconds: float = setting(2.0, "seconds between canary probes of each mount", positive)
    soft_deadline_seconds: float = setting(
        1.0, "a probe slower than this is SLOW (suspicious, never proof)", positive
    )
    hard_deadline_seconds: float = setting(
        2.0, "a probe not done by now is STUCK: tracked, never waited on", positive
    )

    def __post_init__(self) -> None:
        if self.hard_deadline_seconds < self.soft_deadline_seconds:
            raise SettingError(
                "hard_deadline_seconds", "must not be smaller than soft_deadline_seconds"
            )


@dataclass(frozen=True)
class DetectionSettings:
    confirm_after_seconds: float = setting(
        4.0, "a probe stuck this long confirms a lockup if the device completes nothing", positive
    )
    no_progress_window_seconds: float = setting(
        3.0, "the device must have completed no I/O for this long to confirm", positive
    )
    suspect_hold_seconds: float = setting(
        6.0, "a mount stays SUSPECT this long after the last sign of trouble", positive
    )
    recover_probes: int = setting(
        2,
        "clean probes from RECOVERING back to OK",
        lambda v: None if v >= 1 else "must be 1 or more",
    )
    diskstats_interval_seconds: float = setting(
        1.0, "seconds between /proc/diskstats reads", positive
    )
    stall_after_seconds: float = setting(
        5.0, "requests in flight with no completion this long: DEVICE_NO_PROGRESS", positive
    )
    dstate_interval_seconds: float = setting(
        4.0,
        "seconds between scans for D-state tasks (suspicion only: a scan costs ~0.1 % CPU)",
        positive,
    )
    dstate_min_seconds: float = setting(
        2.0, "tasks blocked at least this long on a mount are reported", positive
    )
    pressure_interval_seconds: float = setting(
        2.0, "seconds between /proc/pressure/io reads", positive
    )
    pressure_some_threshold: float = setting(
        0.5, "share of time (0-1) some task stalled on I/O that is suspicious", positive
    )
    pressure_full_threshold: float = setting(
        0.3, "share of time (0-1) all tasks stalled on I/O that is suspicious", positive
    )
    repeat_event_after_seconds: float = setting(
        60.0, "a condition still present is reported again after this long", positive
    )


@dataclass(frozen=True)
class KmsgSettings:
    enabled: bool = setting(True, "read the kernel log from /dev/kmsg (needs CAP_SYSLOG)")
    path: str = setting("/dev/kmsg", "kernel log device")
    replay_since_boot: bool = setting(
        False, "on start, read the whole kernel ring buffer instead of starting at its end"
    )
    rules_files: list[str] = setting(
        [],
        "extra rule files (TOML) added to the shipped rules; a rule with a shipped "
        "rule's name replaces it",
    )
    accept_user_facility: bool = setting(
        False,
        "also match lines written by user space (testing only: the kernel's own "
        "lines cannot be forged from user space, injected ones can)",
    )


@dataclass(frozen=True)
class SpoolSettings:
    max_events: int = setting(
        100_000,
        "events kept on disk before droppable ones go",
        lambda v: None if v >= 100 else "must be 100 or more",
    )
    memory_max_events: int = setting(
        20_000,
        "events kept in memory before droppable ones go",
        lambda v: None if v >= 100 else "must be 100 or more",
    )
    stuck_after_seconds: float = setting(
        5.0, "a spool write pending this long is reported as SPOOL_STUCK", positive
    )


@dataclass(frozen=True)
class HookSettings:
    """Executables run on the controller's failover commands (see agent/failover/hooks.py)."""

    demote: str = setting(
        "",
        "hook that stops serving the group here (absolute path; empty: none)",
        optional_absolute_path,
    )
    promote: str = setting(
        "",
        "hook that makes this host serve the group (absolute path; empty: none)",
        optional_absolute_path,
    )
    check: str = setting(
        "",
        "hook that checks the group's service here (absolute path; empty: none)",
        optional_absolute_path,
    )
    timeout_seconds: float = setting(
        60.0, "a hook still running after this long is killed (a command's timeout wins)", positive
    )
    deadline_margin_seconds: float = setting(
        1.0,
        "a command is refused (EXPIRED), and its hook killed, this long before the "
        "command's deadline by this host's clock: the clock difference to the controller "
        "that is tolerated",
        positive,
    )


@dataclass(frozen=True)
class TestingSettings:
    """Only for tests and benchmarks: documented so nobody mistakes them for features."""

    synthetic_events: int = setting(
        0,
        "emit this many synthetic SYNTHETIC_TEST events at start (exercises the spool "
        "and delivery paths)",
        lambda v: None if v >= 0 else "must be 0 or more",
    )
    synthetic_rate_per_second: float = setting(2000.0, "rate of the synthetic events", positive)
    kernel_release_override: str = setting(
        "", "report this kernel release instead of uname's (a reboot cannot happen in a test)"
    )
    boot_id_override: str = setting(
        "",
        "report this boot id instead of the kernel's, so a restarted agent looks like a "
        "rebooted host (a reboot cannot happen in a test)",
        lambda v: None if len(v) <= 64 else "must be at most 64 characters",
    )
    wedge_main_loop_after_seconds: float = setting(
        0.0,
        "block the whole process in time.sleep from the main loop this long after start, "
        "as a wedged loop would, so a test sees the systemd watchdog pings stop (0: never)",
        lambda v: None if v >= 0 else "must be 0 or more",
    )


@dataclass(frozen=True)
class AgentConfig:
    host_id: str = setting(
        socket.gethostname(), "this host's id [default: the hostname]", host_id_problem
    )
    mounts: list[str] = setting([], "mount points to watch (absolute paths)", _absolute_paths)
    state_dir: str = setting("/var/lib/hangwatch", "directory for the spool and agent state")
    controller: ControllerSettings = section(ControllerSettings, "the controller to report to")
    heartbeat: HeartbeatSettings = section(HeartbeatSettings, "heartbeats")
    reconnect: ReconnectSettings = section(ReconnectSettings, "retries when the controller is down")
    probe: ProbeSettings = section(ProbeSettings, "canary probes")
    detection: DetectionSettings = section(DetectionSettings, "health rules and source cadence")
    kmsg: KmsgSettings = section(KmsgSettings, "the kernel log source")
    spool: SpoolSettings = section(SpoolSettings, "the event spool and queue")
    hooks: HookSettings = section(HookSettings, "failover hooks")
    metrics: AgentMetricsSettings = section(AgentMetricsSettings, "the Prometheus endpoint")
    testing: TestingSettings = section(TestingSettings, "test-only knobs")
    log: LogSettings = section(LogSettings, "logging to stderr")
