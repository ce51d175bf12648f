"""What this host runs: kernel, OS, boot, filesystem tools and filesystem features.

Read at start and re-checked now and then (a package upgrade or a remount changes
it). Nothing here touches a monitored filesystem: /proc, /sys, /etc/os-release and
the package database live on the root filesystem or in the kernel.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import psutil

from hangwatch import __version__, pbtime
from hangwatch.executables import run_executable_blocking
from hangwatch.v1 import types_pb2 as pb

FS_TOOLS = ("xfsprogs", "e2fsprogs", "btrfs-progs", "nfs-common", "nfs-utils")


def boot_id(proc: Path = Path("/proc")) -> str:
    return (proc / "sys/kernel/random/boot_id").read_text().strip()


def os_release(etc: Path = Path("/etc")) -> str:
    for name in ("os-release", "../usr/lib/os-release"):
        try:
            text = (etc / name).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key == "PRETTY_NAME":
                return value.strip().strip('"')
    return ""


def fs_tool_versions(timeout: float = 5.0) -> dict[str, str]:
    """Installed filesystem tool packages, from dpkg or rpm, whichever exists."""
    if shutil.which("dpkg-query"):
        cmd = ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev} ${Version}\\n", *FS_TOOLS]
    elif shutil.which("rpm"):
        cmd = ["rpm", "-q", "--qf", "%{NAME} ii %{VERSION}-%{RELEASE}\\n", *FS_TOOLS]
    else:
        return {}
    # The package database may sit on a stuck filesystem: the runner never waits on it.
    result = run_executable_blocking(
        cmd, timeout=timeout, env={"PATH": os.environ.get("PATH", os.defpath)}
    )
    if result.timed_out:
        return {}
    out = result.output_tail
    versions = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].startswith("ii"):
            versions[parts[0]] = parts[2]
    return versions


# Per-filesystem sysfs attributes worth reporting (the rest are tunables).
_SYSFS_ATTRS = {"ext4": ("errors_count",), "xfs": (), "btrfs": ()}


def fs_features(
    fs_type: str, device: str | None, sys_root: str = "/sys", proc_root: str = "/proc"
) -> dict[str, str]:
    """What the kernel says about one mounted filesystem, from sysfs and /proc/fs only.

    `device` is the kernel name the filesystem is registered under (`sda1`, `dm-0`,
    `loop3`). Keys: `driver_features` (what the kernel's driver supports, comma-joined),
    the options in effect from /proc/fs/TYPE/DEV/options (`key` -> "yes",
    `key=value` -> value), and a few counters such as ext4's `errors_count`. On-disk
    format versions that the kernel does not export (XFS v4/v5) are not guessed.
    """
    out: dict[str, str] = {}
    base = Path(sys_root) / "fs" / fs_type
    try:
        features = sorted(p.name for p in (base / "features").iterdir())
    except OSError:
        features = []
    if features:
        out["driver_features"] = ",".join(features)
    if not device:
        return out
    for name in _SYSFS_ATTRS.get(fs_type, ()):
        value = _read(base / device / name)
        if value is not None:
            out[name] = value
    options = _read(Path(proc_root) / "fs" / fs_type / device / "options")
    for line in (options or "").splitlines():
        key, eq, value = line.strip().partition("=")
        if key:
            out[key] = value if eq else "yes"
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def collect(kernel_release_override: str = "") -> pb.Inventory:
    """`kernel_release_override` exists for tests only: a reboot cannot happen in one."""
    uname = os.uname()
    return pb.Inventory(
        kernel_release=kernel_release_override or uname.release,
        kernel_version=uname.version,
        os_release=os_release(),
        boot_time=pbtime.timestamp(psutil.boot_time()),
        fs_tools=fs_tool_versions(),
        agent_version=__version__,
        architecture=platform.machine(),
    )
