"""Block devices as sysfs describes them: numbers, partitions and stacking."""

from __future__ import annotations

import os
from dataclasses import dataclass

from agent.procfs._files import read_attr


@dataclass(frozen=True)
class BlockDevice:
    """One entry of /sys/class/block."""

    name: str
    # "MAJ:MIN", as in /proc/self/mountinfo.
    devno: str
    # The whole disk, when this is a partition (sda for sda1, nvme0n1 for nvme0n1p2).
    parent: str | None = None
    # Devices this one is built on: dm targets and md members.
    slaves: tuple[str, ...] = ()
    # The device-mapper name (/dev/mapper/NAME), for dm devices.
    dm_name: str | None = None


def read_block_devices(sys_root: str = "/sys") -> dict[str, BlockDevice]:
    """Reads every block device under `sys_root`.

    A partition's directory sits inside its disk's directory, so the disk is the
    parent directory of the resolved class link; sysfs has no attribute naming it.
    """
    base = os.path.join(sys_root, "class", "block")
    devices: dict[str, BlockDevice] = {}
    for name in sorted(os.listdir(base)):
        path = os.path.join(base, name)
        devno = read_attr(os.path.join(path, "dev"))
        if devno is None:  # removed while we listed
            continue
        parent = None
        if os.path.exists(os.path.join(path, "partition")):
            parent = os.path.basename(os.path.dirname(os.path.realpath(path)))
        try:
            slaves = tuple(sorted(os.listdir(os.path.join(path, "slaves"))))
        except FileNotFoundError:
            slaves = ()
        dm_name = read_attr(os.path.join(path, "dm", "name"))
        devices[name] = BlockDevice(name, devno, parent, slaves, dm_name)
    return devices
