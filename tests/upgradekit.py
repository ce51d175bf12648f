"""Shared by the advisory and upgrade tests: hosts on chosen kernels, no loop devices.

Each host watches a directory of its own (a path that is not a mount point is
watched on the mount that holds it); `[testing] kernel_release_override` and
`boot_id_override` make a restarted agent look like a host rebooted onto a kernel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from failoverkit import agent_config

from lab.localcluster import LocalCluster, Proc

OLD = "6.1.0-13-amd64"
NEW = "6.1.0-15-amd64"


def mount_of(tmp: Path, host: str) -> Path:
    path = tmp / f"srv-{host}"
    path.mkdir(exist_ok=True)
    return path


def start_host(cluster: LocalCluster, tmp: Path, host: str, kernel: str, boot: str = "") -> Proc:
    """(Re)starts HOST's agent reporting `kernel` and boot id `boot` (default: the real one)."""
    for proc in cluster.procs:
        if proc.name == f"agent-{host}":
            proc.stop()
    config: dict[str, Any] = agent_config(tmp, host)
    config["testing"] = {"kernel_release_override": kernel, "boot_id_override": boot}
    return cluster.start_agent(host, [mount_of(tmp, host)], config)


def group(name: str, members: list[str], tmp: Path) -> dict[str, Any]:
    return {
        "name": name,
        "members": members,
        "mounts": [str(mount_of(tmp, m)) for m in members],
        "mode": "manual",
        "primary": members[0],
    }


def controller(
    base: dict[str, Any], groups: list[dict[str, Any]], **upgrades: Any
) -> dict[str, Any]:
    return {
        **base,
        "failover": {
            "demote_timeout_seconds": 5.0,
            "promote_timeout_seconds": 30.0,
            "interval_seconds": 0.2,
        },
        "upgrades": {"interval_seconds": 0.2, **upgrades},
        "groups": groups,
    }
