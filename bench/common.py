"""Shared by the benches that run a real controller and agent on loop-mounted filesystems.

Imported as `common` by the bench scripts (`python bench/NAME.py` puts bench/ on
sys.path); importing it puts the repository root and tests/ on sys.path too, so the
benches reuse the project's own helpers: `lab.localcluster` and
`lab.scratchfs` for processes and filesystems, and the test helpers in
tests/lockups.py (hung-task sysctls, stuck writers, /dev/kmsg) and tests/clusterkit.py
(the AdminService client), rather than copies of them.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "tests", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from clusterkit import Admin  # noqa: E402

from hangwatch.v1 import admin_service_pb2 as admin_pb  # noqa: E402
from hangwatch.v1 import types_pb2 as pb  # noqa: E402
from lab import scratchfs, slowdisk  # noqa: E402
from lab.localcluster import LocalCluster, Proc, wait_for  # noqa: E402

HOST = "bench1"
OK = "HEALTH_STATE_OK"
PREFIX = "hangwatch-bench-"


def machine() -> str:
    """One line naming what the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = f" ({line.partition(':')[2].strip()})"
                break
    return (
        f"{os.cpu_count()} cores{model}, kernel {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linearly interpolated between closest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def require_loop_mounts() -> None:
    if not scratchfs.can_loop_mount():
        raise SystemExit("needs root, /dev/loop-control, losetup and mkfs.ext4: run as root")


@dataclass
class Bench:
    """A controller and one agent watching `mounts`, and a client for the controller."""

    workdir: Path
    cluster: LocalCluster
    agent: Proc
    admin: Admin
    mounts: list[scratchfs.ScratchFs]
    # The slow disk under each mount, when made with slow_disks=True.
    disks: list[slowdisk.SlowDisk]

    def events(self, kind: str = "", mount: str = "", since: int = 0) -> list[pb.Event]:
        """Stored events after cursor `since`, oldest first."""
        out: list[pb.Event] = []
        while True:
            page = self.admin.stub.ListEvents(
                admin_pb.ListEventsRequest(
                    filter=admin_pb.EventFilter(kind=kind, mount=mount),
                    since_cursor=since,
                    limit=1000,
                ),
                timeout=10,
            ).events
            out.extend(page)
            if len(page) < 1000:
                return out
            since = page[-1].cursor

    def last_cursor(self) -> int:
        events = self.events()
        return events[-1].cursor if events else 0

    def health(self, mount: str) -> pb.MountHealth | None:
        host = self.admin.hosts().get(HOST)
        return next((h for h in host.health if h.mount == mount), None) if host else None

    def state(self, mount: str) -> str:
        health = self.health(mount)
        return pb.HealthState.Name(health.state) if health else "ABSENT"

    def wait_ok(self, timeout: float = 60.0) -> None:
        for fs in self.mounts:
            wait_for(lambda fs=fs: self.state(str(fs.mount)) == OK, timeout, f"{fs.mount} OK")


@contextlib.contextmanager
def watched_mounts(
    count: int,
    agent_config: Mapping[str, Any] | None = None,
    size_mb: int | None = None,
    slow_disks: bool = False,
) -> Iterator[Bench]:
    """`count` fresh loop-mounted ext4 filesystems, a controller, and one agent watching
    them all, every mount OK. `slow_disks`: each loop device is a slow disk
    (lab.slowdisk), at full speed until told otherwise. Stops the processes, then
    thaws, unmounts and detaches everything, whatever happens; says so if a loop
    device stayed attached."""
    require_loop_mounts()
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratchfs.scratch_dir(PREFIX))
        stack.callback(_check_detached, str(workdir))
        mounts, disks = [], []
        for i in range(count):
            if slow_disks:
                slow = stack.enter_context(slowdisk.slow_loop_fs(workdir, f"m{i}", "ext4", size_mb))
                mounts.append(slow.fs)
                disks.append(slow.disk)
            else:
                mounts.append(
                    stack.enter_context(scratchfs.loop_fs(workdir, f"m{i}", "ext4", size_mb))
                )
        cluster = LocalCluster(workdir)
        stack.callback(cluster.stop)
        cluster.start_controller()
        agent = cluster.start_agent(HOST, [fs.mount for fs in mounts], agent_config or {})
        admin = Admin(cluster.address)
        stack.callback(admin.close)
        bench = Bench(workdir, cluster, agent, admin, mounts, disks)
        try:
            bench.wait_ok()
        except TimeoutError:
            print(agent.log_text()[-4000:], file=sys.stderr)
            raise
        yield bench


def _check_detached(workdir: str) -> None:
    left = [dev for dev, backing in scratchfs.loop_backing_files().items() if workdir in backing]
    if left:
        print(f"WARNING: loop devices still attached: {', '.join(left)}", file=sys.stderr)
