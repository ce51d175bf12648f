"""The mount table, and which block devices stand for which monitored mount.

Paths are compared lexically, never resolved: resolving a symlink would touch the
filesystem that may be frozen (docs/design.md#1-no-waiting).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from agent.procfs._files import read_text
from agent.procfs.sysblock import BlockDevice, read_block_devices

_ESCAPE = re.compile(r"\\([0-7]{3})")
_DEVNO = re.compile(r"\d+:\d+")


@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo."""

    mount_id: int
    parent_id: int
    # "MAJ:MIN"; major 0 for filesystems without a single block device (tmpfs, nfs, btrfs).
    devno: str
    # The directory of the filesystem that is mounted here (not "/" for bind mounts).
    root: str
    mount_point: str
    # Per-mount options ("rw", "nosuid", ...).
    options: tuple[str, ...]
    # Optional fields before the "-" separator (propagation: "shared:1", "master:2").
    tags: tuple[str, ...]
    fs_type: str
    source: str
    # Per-superblock options; an ext4 remounted read-only after errors shows "ro" here.
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        """Writes fail if either the mount or its superblock is read-only."""
        return "ro" in self.options or "ro" in self.super_options


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash as 3-digit octal escapes."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> tuple[Mount, ...]:
    """Parses mountinfo text; raises `ValueError` naming the line that is malformed."""
    mounts = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
        except ValueError:
            raise ValueError(f"mountinfo line {number}: no '-' separator: {line!r}") from None
        if len(fields) - sep != 4 or not _DEVNO.fullmatch(fields[2]):
            raise ValueError(f"mountinfo line {number}: malformed: {line!r}")
        try:
            mount_id, parent_id = int(fields[0]), int(fields[1])
        except ValueError:
            raise ValueError(f"mountinfo line {number}: bad mount ids: {line!r}") from None
        fs_type, source, super_options = fields[sep + 1 :]
        mounts.append(
            Mount(
                mount_id=mount_id,
                parent_id=parent_id,
                devno=fields[2],
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                options=tuple(fields[5].split(",")),
                tags=tuple(fields[6:sep]),
                fs_type=_unescape(fs_type),
                source=_unescape(source),
                super_options=tuple(_unescape(super_options).split(",")),
            )
        )
    return tuple(mounts)


def read_mountinfo(proc_root: str = "/proc") -> tuple[Mount, ...]:
    """Reads our own mount namespace's table: the one our paths are relative to."""
    return parse_mountinfo(read_text(os.path.join(proc_root, "self", "mountinfo")))


def _by_mount_point(mounts: Iterable[Mount]) -> dict[str, Mount]:
    """Mount point -> mount; of mounts stacked on one point the last listed is on top."""
    return {m.mount_point: m for m in mounts}


def _lookup(by_point: Mapping[str, Mount], path: str) -> Mount | None:
    if not path.startswith("/"):
        return None
    path = posixpath.normpath(path)
    while path not in by_point:
        if path == "/":
            return None
        path = posixpath.dirname(path)
    return by_point[path]


def find_mount(mounts: Iterable[Mount], path: str) -> Mount | None:
    """The mount a path lives on: the nearest mount point above it, topmost if stacked.

    Relative paths and pseudo-paths ("socket:[42]") have none.
    """
    return _lookup(_by_mount_point(mounts), path)


class DeviceMap:
    """Maps block device names to monitored mounts, and mounts to their devices.

    A mount's backing devices are the one it sits on, the disk of a partition and
    the members of dm and md devices, recursively: while the mount is in use, one
    of them should be completing I/O. A loop device's backing file is not followed:
    that file's filesystem is another mount with its own devices.
    """

    def __init__(
        self,
        mounts: Sequence[Mount],
        devices: Mapping[str, BlockDevice],
        monitored: Iterable[str] | None = None,
    ) -> None:
        """`monitored` lists mount points; `None` monitors every block-backed mount."""
        self.mounts = tuple(mounts)
        self.devices = dict(devices)
        self._by_point = _by_mount_point(self.mounts)
        self._by_devno = {d.devno: d.name for d in devices.values()}
        self._by_dm_name = {d.dm_name: d.name for d in devices.values() if d.dm_name}
        if monitored is None:
            wanted = [p for p in self._by_point if self.device(p)]
        else:
            wanted = [posixpath.normpath(p) for p in monitored]
        self.monitored = tuple(dict.fromkeys(p for p in wanted if p in self._by_point))
        # Configured mount points that are not mounted: the caller reports them gone.
        self.missing = tuple(dict.fromkeys(p for p in wanted if p not in self._by_point))
        # device -> [(distance from the mount's own device, mount point)]
        self._users: dict[str, list[tuple[int, str]]] = {}
        for point in self.monitored:
            for name, depth in self._below(point).items():
                self._users.setdefault(name, []).append((depth, point))
        for users in self._users.values():
            users.sort()

    def mount(self, path: str) -> Mount | None:
        """The mount a path lives on (see `find_mount`)."""
        return _lookup(self._by_point, path)

    def resolve(self, name: str) -> str | None:
        """The kernel name for a device named the ways kernel lines and configs do.

        Accepts kernel names ("sda1", "dm-0"), device-mapper names ("vg-mail"),
        /dev and /dev/mapper paths, and "MAJ:MIN".
        """
        if name.startswith("/dev/mapper/"):
            return self._by_dm_name.get(name.removeprefix("/dev/mapper/"))
        name = name.removeprefix("/dev/")
        if name in self.devices:
            return name
        if _DEVNO.fullmatch(name):
            return self._by_devno.get(name)
        return self._by_dm_name.get(name)

    def device(self, path: str) -> str | None:
        """The kernel name of the block device the mount holding `path` sits on."""
        mount = self.mount(path)
        if mount is None:
            return None
        by_number = self._by_devno.get(mount.devno)
        if by_number is not None:
            return by_number
        # Anonymous major 0 (btrfs and friends): try the source, if it names a device.
        return self.resolve(mount.source) if mount.source.startswith("/dev/") else None

    def _below(self, path: str) -> dict[str, int]:
        """Backing devices of a mount, with their distance from its own device."""
        top = self.device(path)
        if top is None:
            return {}
        found = {top: 0}
        queue = [top]
        while queue:
            name = queue.pop(0)
            dev = self.devices.get(name)
            if dev is None:
                continue
            for lower in (dev.parent, *dev.slaves):
                if lower is not None and lower not in found:
                    found[lower] = found[name] + 1
                    queue.append(lower)
        return found

    def backing_devices(self, mount: str) -> list[str]:
        """Devices whose /proc/diskstats progress stands for the mount, nearest first."""
        return list(self._below(mount))

    def mounts_for_device(self, name: str) -> list[str]:
        """Monitored mounts that sit on a device, those nearest to it first."""
        kernel_name = self.resolve(name)
        if kernel_name is None:
            return []
        return [point for _, point in self._users.get(kernel_name, [])]

    def mount_for_device(self, name: str) -> str | None:
        """The monitored mount a device stands for, if exactly one sits on it.

        When several do (two partitions' mounts and their shared disk) a kernel line
        naming the device concerns them all; picking one would blame the wrong
        service, so the answer is `None` and `mounts_for_device` lists them.
        """
        users = self.mounts_for_device(name)
        return users[0] if len(users) == 1 else None


def load_device_map(
    monitored: Iterable[str] | None = None,
    *,
    proc_root: str = "/proc",
    sys_root: str = "/sys",
) -> DeviceMap:
    """Builds a `DeviceMap` from the live mount table and sysfs."""
    return DeviceMap(read_mountinfo(proc_root), read_block_devices(sys_root), monitored)
