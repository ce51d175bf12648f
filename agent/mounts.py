"""Describes the monitored mounts from the mount table (never from the mounts themselves)."""

from __future__ import annotations

import psutil

from hangwatch.v1 import types_pb2 as pb


def describe(paths: list[str]) -> list[pb.Mount]:
    table = {p.mountpoint: p for p in psutil.disk_partitions(all=True)}
    out = []
    for path in paths:
        entry = table.get(path)
        if entry is None:
            out.append(pb.Mount(path=path))
            continue
        options = entry.opts.split(",")
        out.append(
            pb.Mount(
                path=path,
                fs_type=entry.fstype,
                device=entry.device,
                options=options,
                read_only="ro" in options,
            )
        )
    return out
