"""hangwatchctl demo: a local controller and agents on scratch filesystems, live.

As root the scratch filesystems are loop-mounted ext4, the real thing; otherwise
plain directories under a temp dir (enough to see registration and liveness).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from pathlib import Path

import click

from hangwatch import scratchfs
from hangwatch.localcluster import LocalCluster, wait_for

DEMO_CONTROLLER = {
    "liveness": {
        "heartbeat_interval_seconds": 1.0,
        "stale_after_seconds": 3.0,
        "unreachable_after_seconds": 6.0,
    },
}


@click.command()
@click.option(
    "--agents",
    type=click.IntRange(1, 8),
    default=3,
    show_default=True,
    help="How many agent processes (hosts) to run.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="Seconds to show the cluster before cleaning up (0: until Ctrl-C).",
)
def demo(agents: int, duration: float) -> None:
    """Start a local controller and agents on scratch filesystems and show them live.

    Everything runs on loopback and is removed afterwards.
    """
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratchfs.scratch_dir("hangwatch-demo-"))
        real = scratchfs.can_loop_mount()
        click.echo(
            f"workdir {workdir}; scratch filesystems: "
            + ("loop-mounted ext4" if real else "plain directories (not root)")
        )
        mounts: list[Path] = []
        for i in range(1, agents + 1):
            if real:
                fs = stack.enter_context(scratchfs.loop_fs(workdir, f"mail{i}", "ext4"))
                mounts.append(fs.mount)
            else:
                path = workdir / f"mail{i}"
                path.mkdir()
                mounts.append(path)
        cluster = LocalCluster(workdir, DEMO_CONTROLLER)
        stack.callback(cluster.stop)
        cluster.start_controller()
        click.echo(
            f"controller on {cluster.address} (try: hangwatchctl --insecure "
            f"--controller {cluster.address} hosts)"
        )
        for i, mount in enumerate(mounts, 1):
            cluster.start_agent(f"demo-{i}", [mount], {"heartbeat": {"interval_seconds": 1.0}})
        wait_for(
            lambda: cluster.ctl("hosts").stdout.count("HEALTHY") == agents,
            30,
            "the agents to register",
        )
        deadline = time.monotonic() + duration if duration else float("inf")
        try:
            while time.monotonic() < deadline:
                _show(cluster)
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
        click.echo("cleaning up")


def _show(cluster: LocalCluster) -> None:
    result: subprocess.CompletedProcess[str] = cluster.ctl("hosts")
    if sys.stdout.isatty():
        click.clear()
    click.echo(time.strftime("%H:%M:%S") + "  hangwatchctl hosts")
    click.echo(result.stdout.rstrip() or result.stderr.rstrip())
    click.echo("")
