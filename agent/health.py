"""Per-mount health: OK -> SUSPECT -> LOCKED -> RECOVERING -> OK (pure logic).

Invariant 2 of the design: slow is not hung. Latency, a stuck probe, D-state
tasks, I/O pressure, a soft lockup or an RCU stall can make a mount SUSPECT. Only
lack of progress makes it LOCKED:

- a canary probe stuck for `confirm_after` seconds while the mount's device
  completed no I/O for `no_progress_window` seconds,
- a hung-task report in this filesystem's code while the device completes nothing,
- a filesystem shutdown, an aborted journal, or the device gone.

A heavily loaded but healthy disk keeps completing I/O, so it never confirms.
Every condition has a way to clear: a LOCKED mount recovers when a probe
completes again (unless the filesystem shut down: that needs a remount, which the
mount table source reports as MOUNT_RESTORED), and is
OK again after `recover_probes` clean probes.

The machine is fed `Signal`s and asked to `evaluate(now)`; it does no I/O and
reads no clock, so every rule is tested with plain tables.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass, field

from agent.signals import Kind, Severity, Signal


class State(enum.IntEnum):
    """Same numbers as `hangwatch.v1.HealthState`."""

    OK = 1
    SUSPECT = 2
    LOCKED = 3
    RECOVERING = 4


@dataclass(frozen=True)
class HealthSettings:
    # A probe stuck this long (from its start) may confirm a lockup.
    confirm_after: float = 4.0
    # ...if the mount's device completed nothing for this long.
    no_progress_window: float = 3.0
    # A hung-task report counts for this long.
    hung_task_window: float = 30.0
    # Suspicion (slow probe, pressure, soft lockup...) lasts this long after its last sign.
    suspect_hold: float = 6.0
    # Clean probes needed to go from RECOVERING to OK.
    recover_probes: int = 2


# Kernel kinds that end the filesystem's ability to make progress until remounted.
FATAL_KINDS = frozenset(
    {
        Kind.XFS_SHUTDOWN,
        Kind.EXT4_JOURNAL_ABORT,
        Kind.DEVICE_REMOVED,
        Kind.DEVICE_OFFLINE,
        Kind.MOUNT_GONE,
        Kind.MOUNT_READONLY,
    }
)
# Host-wide or device signs that something is slow, not proof of a hang.
SUSPECT_KINDS = frozenset(
    {
        Kind.PROBE_SLOW,
        Kind.SOFT_LOCKUP,
        Kind.HARD_LOCKUP,
        Kind.RCU_STALL,
        Kind.BLOCK_IO_ERROR,
        Kind.SCSI_TIMEOUT,
        Kind.NVME_TIMEOUT,
        Kind.XFS_ERROR,
        Kind.XFS_ALLOC_DEADLOCK,
        Kind.EXT4_ERROR,
        Kind.MULTIPATH_PATH_FAIL,
        Kind.MD_RAID_ERROR,
        Kind.BTRFS_ERROR,
        Kind.NFS_NOT_RESPONDING,
        Kind.PROBE_FAILED,
        Kind.FS_READONLY,
        Kind.DEVICE_NO_PROGRESS,
        Kind.TASKS_D_STATE,
    }
)
# Signs about the whole host: they reach every mount. Other kinds reach a mount only
# when their source attributed them to it (an unattributed hung task elsewhere on the
# host says nothing about this mount). I/O pressure is not among them: it is host-wide
# latency that any busy mount causes; it is its own event and evidence, but moves no mount.
HOST_WIDE_KINDS = frozenset({Kind.SOFT_LOCKUP, Kind.HARD_LOCKUP, Kind.RCU_STALL})
# Evidence kept per mount for the events a transition emits.
EVIDENCE_KEPT = 12


@dataclass(frozen=True)
class Transition:
    mount: str
    before: State
    after: State
    kind: str
    severity: Severity
    summary: str
    at: float
    evidence: tuple[Signal, ...]


@dataclass
class _Mount:
    state: State = State.OK
    since: float = 0.0
    reason: str = ""
    has_device: bool = True
    # Probe.
    stuck_since: float | None = None
    last_probe_ok: float | None = None
    clean_probes: int = 0
    # Device progress: wall time of the last observed completion, and whether we know.
    last_completion: float | None = None
    device_seen: bool = False
    # Kernel.
    fs_hung_task_at: float | None = None
    nfs_down: bool = False
    fatal: Signal | None = None
    # Suspicion.
    last_suspect: float | None = None
    suspect_reason: str = ""
    dstate_since: float | None = None
    evidence: collections.deque[Signal] = field(
        default_factory=lambda: collections.deque(maxlen=EVIDENCE_KEPT)
    )


class HealthEngine:
    """All monitored mounts of one host."""

    def __init__(self, mounts: dict[str, bool], settings: HealthSettings, now: float) -> None:
        """`mounts` maps each mount to whether it has a block device to watch."""
        self.settings = settings
        self._mounts = {m: _Mount(since=now, has_device=dev) for m, dev in mounts.items()}

    def state(self, mount: str) -> State:
        return self._mounts[mount].state

    def snapshot(self) -> dict[str, tuple[State, float, str]]:
        """(state, since, reason) per mount, for heartbeats."""
        return {m: (s.state, s.since, s.reason) for m, s in self._mounts.items()}

    def observe(self, signal: Signal) -> None:
        if signal.mount:
            targets = [signal.mount]
        elif signal.kind in HOST_WIDE_KINDS:
            targets = list(self._mounts)
        else:
            return
        for mount in targets:
            if mount in self._mounts:
                self._observe(self._mounts[mount], signal)

    def _observe(self, m: _Mount, s: Signal) -> None:
        kind = s.kind
        if kind not in (Kind.PROBE_OK, Kind.DEVICE_PROGRESS, Kind.DEVICE_IDLE):
            m.evidence.append(s)
        if kind == Kind.PROBE_STUCK:
            started = _float(s.attributes.get("stuck_since"), s.at)
            m.stuck_since = started if m.stuck_since is None else min(m.stuck_since, started)
            m.clean_probes = 0
            self._suspect(m, s.at, s.summary)
        elif kind in (Kind.PROBE_OK, Kind.PROBE_SLOW):
            m.stuck_since = None
            m.last_probe_ok = s.at
            m.clean_probes = m.clean_probes + 1 if kind == Kind.PROBE_OK else 0
            if kind == Kind.PROBE_SLOW:
                self._suspect(m, s.at, s.summary)
        elif kind == Kind.PROBE_FAILED:
            m.stuck_since = None
            m.clean_probes = 0
            self._suspect(m, s.at, s.summary)
        elif kind in (Kind.DEVICE_PROGRESS, Kind.DEVICE_IDLE, Kind.DEVICE_NO_PROGRESS):
            m.device_seen = True
            idle_for = _float(s.attributes.get("since_completion_s"), 0.0)
            m.last_completion = s.at - idle_for
            if kind == Kind.DEVICE_NO_PROGRESS:
                self._suspect(m, s.at, s.summary)
        elif kind == Kind.HUNG_TASK:
            self._suspect(m, s.at, s.summary)
            if s.attributes.get("filesystem"):
                m.fs_hung_task_at = s.at
        elif kind in FATAL_KINDS:
            m.fatal = s
        elif kind == Kind.NFS_NOT_RESPONDING:
            m.nfs_down = True
            self._suspect(m, s.at, s.summary)
        elif kind == Kind.NFS_RECOVERED:
            m.nfs_down = False
        elif kind == Kind.MOUNT_RESTORED:
            # Only probes of the restored mount count towards recovery.
            m.fatal = None
            m.last_probe_ok = None
        elif kind in SUSPECT_KINDS:
            self._suspect(m, s.at, s.summary)

    def _suspect(self, m: _Mount, at: float, reason: str) -> None:
        m.last_suspect = at if m.last_suspect is None else max(m.last_suspect, at)
        m.suspect_reason = reason

    def evaluate(self, now: float) -> list[Transition]:
        out = []
        for mount, m in self._mounts.items():
            out.extend(self._step(mount, m, now))
        return out

    def _no_progress(self, m: _Mount, now: float) -> bool:
        if not m.has_device:
            return m.nfs_down
        if not m.device_seen or m.last_completion is None:
            return False
        return now - m.last_completion >= self.settings.no_progress_window

    def _locked_reason(self, m: _Mount, now: float) -> str | None:
        st = self.settings
        if m.fatal is not None:
            return m.fatal.summary
        no_progress = self._no_progress(m, now)
        if m.stuck_since is not None and now - m.stuck_since >= st.confirm_after and no_progress:
            return f"probe stuck for {now - m.stuck_since:.1f}s while the device completed no I/O"
        if (
            m.fs_hung_task_at is not None
            and now - m.fs_hung_task_at <= st.hung_task_window
            and no_progress
        ):
            return "kernel hung-task report in this filesystem while the device completes no I/O"
        return None

    def _suspect_reason(self, m: _Mount, now: float) -> str | None:
        if m.stuck_since is not None:
            return f"probe stuck for {now - m.stuck_since:.1f}s"
        if m.last_suspect is not None and now - m.last_suspect <= self.settings.suspect_hold:
            return m.suspect_reason
        return None

    def _step(self, mount: str, m: _Mount, now: float) -> list[Transition]:
        locked = self._locked_reason(m, now)
        suspect = self._suspect_reason(m, now)
        before = m.state
        if locked is not None:
            if before is State.LOCKED:
                return []
            if before is State.OK:
                # Always pass through SUSPECT: consumers see the early warning first.
                first = self._move(mount, m, State.SUSPECT, locked, now)
                return [first, self._move(mount, m, State.LOCKED, locked, now)]
            return [self._move(mount, m, State.LOCKED, locked, now)]
        if before is State.LOCKED:
            if (
                m.fatal is None
                and m.stuck_since is None
                and m.last_probe_ok is not None
                and m.last_probe_ok >= m.since
            ):
                m.clean_probes = min(m.clean_probes, 1)
                return [self._move(mount, m, State.RECOVERING, "probe completes again", now)]
            return []
        if before is State.RECOVERING:
            # The lockup's own signs are still within suspect_hold: clean probes decide.
            if m.stuck_since is None and m.clean_probes >= self.settings.recover_probes:
                return [self._move(mount, m, State.OK, "probes complete normally", now)]
            return []
        if before is State.OK and suspect is not None:
            return [self._move(mount, m, State.SUSPECT, suspect, now)]
        if before is State.SUSPECT and suspect is None:
            return [
                self._move(
                    mount,
                    m,
                    State.OK,
                    f"no sign of trouble since {self.settings.suspect_hold:.0f}s",
                    now,
                )
            ]
        return []

    def _move(self, mount: str, m: _Mount, to: State, reason: str, now: float) -> Transition:
        before = m.state
        if before in (State.LOCKED, State.RECOVERING) and to in (State.RECOVERING, State.OK):
            # The lockup's own signs (the stuck probe finally completing slowly) are
            # its past, not a new suspicion.
            m.last_suspect = None
        m.state, m.since, m.reason = to, now, reason
        kind, severity = _TRANSITION_KIND[to]
        return Transition(
            mount=mount,
            before=before,
            after=to,
            kind=kind,
            severity=severity,
            summary=f"{mount}: {before.name} -> {to.name}: {reason}",
            at=now,
            evidence=tuple(m.evidence),
        )


_TRANSITION_KIND = {
    State.SUSPECT: (Kind.LOCKUP_SUSPECTED, Severity.WARNING),
    State.LOCKED: (Kind.LOCKUP_CONFIRMED, Severity.CRITICAL),
    State.RECOVERING: (Kind.LOCKUP_RECOVERING, Severity.INFO),
    State.OK: (Kind.LOCKUP_CLEARED, Severity.INFO),
}


def _float(text: str | None, default: float) -> float:
    try:
        return float(text) if text is not None else default
    except ValueError:
        return default
