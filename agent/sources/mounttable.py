"""The mount table: a monitored mount gone, remounted read-only, or back again.

Reads /proc/self/mountinfo only, never the mounts themselves.
"""

from __future__ import annotations

from agent.procfs.mountinfo import Mount, find_mount, read_mountinfo
from agent.signals import Kind, Severity, Signal
from agent.sources.base import PeriodicSource


def mount_changes(
    paths: list[str],
    before: dict[str, Mount | None] | None,
    after: dict[str, Mount | None],
    at: float,
) -> list[Signal]:
    """Signals for monitored mounts whose entry changed between two readings (pure).

    On the first reading (`before` is None) only a missing mount is news: a mount
    that is read-only from the start is read-only by design.
    """
    out = []
    for path in paths:
        new = after.get(path)
        if before is None:
            if new is None:
                out.append(
                    _signal(Kind.MOUNT_GONE, Severity.CRITICAL, path, at, f"{path} is not mounted")
                )
            continue
        old = before.get(path)
        if new is None:
            if old is not None:
                out.append(
                    _signal(
                        Kind.MOUNT_GONE, Severity.CRITICAL, path, at, f"{path} is no longer mounted"
                    )
                )
        elif new.read_only and (old is None or not old.read_only):
            out.append(
                _signal(
                    Kind.MOUNT_READONLY,
                    Severity.CRITICAL,
                    path,
                    at,
                    f"{path} ({new.fs_type} on {new.source}) is now read-only",
                    new,
                )
            )
        elif not new.read_only and (old is None or old.read_only or old.mount_id != new.mount_id):
            out.append(
                _signal(
                    Kind.MOUNT_RESTORED,
                    Severity.INFO,
                    path,
                    at,
                    f"{path} is mounted read-write again",
                    new,
                )
            )
    return out


def _signal(
    kind: str, severity: Severity, path: str, at: float, summary: str, mount: Mount | None = None
) -> Signal:
    attributes = {}
    if mount is not None:
        attributes = {
            "fs_type": mount.fs_type,
            "source": mount.source,
            "options": ",".join(mount.options + mount.super_options),
        }
    return Signal(
        source="mounts",
        kind=kind,
        severity=severity,
        summary=summary,
        at=at,
        mount=path,
        permanent=kind != Kind.MOUNT_RESTORED,
        attributes=attributes,
    )


class MountTableSource(PeriodicSource):
    name = "mounts"

    def __init__(self, paths: list[str], interval: float, proc_root: str = "/proc") -> None:
        super().__init__(interval)
        self._paths = paths
        self._proc_root = proc_root
        self._last: dict[str, Mount | None] | None = None
        self._points: dict[str, str] = {}

    def _read(self) -> dict[str, Mount | None]:
        """The mount each path is on, or None once that mount is no longer there.

        A configured path that is not itself a mount point is watched on the mount
        that holds it at start; if that mount goes, the path falls through to its
        parent's mount, which is reported as gone rather than as a new mount.
        """
        mounts = read_mountinfo(self._proc_root)
        out: dict[str, Mount | None] = {}
        for path in self._paths:
            found = find_mount(mounts, path)
            expected = self._points.setdefault(path, found.mount_point if found else path)
            out[path] = found if found is not None and found.mount_point == expected else None
        return out

    async def poll(self, now: float) -> list[Signal]:
        current = self._read()
        before, self._last = self._last, current
        return mount_changes(self._paths, before, current, now)
