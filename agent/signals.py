"""Signals: one observation from one source, the currency between sources and health.

Sources never decide health themselves; they emit `Signal`s and the health engine
(pure logic) decides. Keeping this type free of I/O and protobuf lets every source
and the engine be tested alone.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class Severity(enum.IntEnum):
    """Same numbers as `hangwatch.v1.Severity`, so conversion is a cast."""

    INFO = 1
    WARNING = 2
    ERROR = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Parses a severity name as written in config and rule files ("warning")."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(m.name.lower() for m in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of: {names})") from None


class Kind:
    """Signal and event kinds the agent itself knows about.

    Rule files may add their own kinds (upper snake case). The kernel-log kinds are
    the corpus categories in upper case, so a rule's kind names what it detects.
    """

    # Health transitions.
    LOCKUP_SUSPECTED = "LOCKUP_SUSPECTED"
    LOCKUP_CONFIRMED = "LOCKUP_CONFIRMED"
    LOCKUP_RECOVERING = "LOCKUP_RECOVERING"
    LOCKUP_CLEARED = "LOCKUP_CLEARED"
    # Kernel log.
    HUNG_TASK = "HUNG_TASK"
    SOFT_LOCKUP = "SOFT_LOCKUP"
    HARD_LOCKUP = "HARD_LOCKUP"
    RCU_STALL = "RCU_STALL"
    XFS_ERROR = "XFS_ERROR"
    XFS_SHUTDOWN = "XFS_SHUTDOWN"
    XFS_ALLOC_DEADLOCK = "XFS_ALLOC_DEADLOCK"
    EXT4_ERROR = "EXT4_ERROR"
    EXT4_JOURNAL_ABORT = "EXT4_JOURNAL_ABORT"
    FS_READONLY = "FS_READONLY"
    BLOCK_IO_ERROR = "BLOCK_IO_ERROR"
    SCSI_TIMEOUT = "SCSI_TIMEOUT"
    NVME_TIMEOUT = "NVME_TIMEOUT"
    NFS_NOT_RESPONDING = "NFS_NOT_RESPONDING"
    NFS_RECOVERED = "NFS_RECOVERED"
    MULTIPATH_PATH_FAIL = "MULTIPATH_PATH_FAIL"
    MD_RAID_ERROR = "MD_RAID_ERROR"
    BTRFS_ERROR = "BTRFS_ERROR"
    OOM = "OOM"
    HUNG_TASK_COUNTED = "HUNG_TASK_COUNTED"
    KMSG_OVERRUN = "KMSG_OVERRUN"
    KMSG_MALFORMED = "KMSG_MALFORMED"
    # Probes and /proc.
    PROBE_SLOW = "PROBE_SLOW"
    PROBE_STUCK = "PROBE_STUCK"
    PROBE_FAILED = "PROBE_FAILED"
    PROBE_OK = "PROBE_OK"
    DEVICE_NO_PROGRESS = "DEVICE_NO_PROGRESS"
    DEVICE_PROGRESS = "DEVICE_PROGRESS"
    DEVICE_IDLE = "DEVICE_IDLE"
    IO_PRESSURE = "IO_PRESSURE"
    TASKS_D_STATE = "TASKS_D_STATE"
    # Devices and the mount table.
    DEVICE_REMOVED = "DEVICE_REMOVED"
    DEVICE_OFFLINE = "DEVICE_OFFLINE"
    MOUNT_READONLY = "MOUNT_READONLY"
    MOUNT_GONE = "MOUNT_GONE"
    MOUNT_RESTORED = "MOUNT_RESTORED"
    # The agent's own health.
    SOURCE_STALLED = "SOURCE_STALLED"
    SOURCE_RECOVERED = "SOURCE_RECOVERED"
    SPOOL_STUCK = "SPOOL_STUCK"


@dataclass(frozen=True)
class StuckTask:
    """A task blocked in the kernel, from a hung-task report or from /proc."""

    pid: int
    comm: str
    wchan: str = ""
    blocked_seconds: float = 0.0
    # Kernel functions of the call trace, innermost first, offsets stripped.
    stack: tuple[str, ...] = ()


@dataclass(frozen=True)
class Signal:
    """One observation. `mount` is the monitored mount it concerns, if known."""

    source: str
    kind: str
    severity: Severity
    summary: str
    # Wall-clock time (time.time()) the observation was made.
    at: float
    mount: str | None = None
    device: str | None = None
    # Permanent conditions persist until cleared; temporary ones are one-off.
    permanent: bool = False
    lines: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    stuck_tasks: tuple[StuckTask, ...] = ()
