"""Describes the monitored mounts from the mount table and sysfs, never from the mounts."""

from __future__ import annotations

from agent.host.inventory import fs_features
from agent.procfs.mountinfo import DeviceMap
from hangwatch.v1 import types_pb2 as pb


def describe(
    devices: DeviceMap, paths: list[str], *, sys_root: str = "/sys", proc_root: str = "/proc"
) -> list[pb.Mount]:
    out = []
    for path in paths:
        # A path inside a mount is described by the mount that holds it.
        entry = devices.mount(path)
        if entry is None:
            out.append(pb.Mount(path=path))
            continue
        out.append(
            pb.Mount(
                path=path,
                fs_type=entry.fs_type,
                device=entry.source,
                dev_id=entry.devno,
                options=list(dict.fromkeys(entry.options + entry.super_options)),
                read_only=entry.read_only,
                backing_devices=devices.backing_devices(path),
                fs_features=fs_features(
                    entry.fs_type, devices.device(path), sys_root=sys_root, proc_root=proc_root
                ),
            )
        )
    return out
