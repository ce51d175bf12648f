"""`python -m lab demo`: a real freeze detected and failed over, on this machine, in a minute.

As root: a controller and two agents (a primary and a standby of the group
"mail"), each watching its own loop-mounted ext4 filesystem. The demo freezes the
primary's filesystem with fsfreeze, shows the kernel-level detection arriving at
the controller, the failover proposal with its reasons, asks for approval (or
takes --yes), and shows the demote and promote hooks running. Without root the
scratch filesystems are plain directories that cannot be frozen: the demo then
shows the cluster live and stops there.
"""

from __future__ import annotations

import contextlib
import stat
import time
from pathlib import Path

import click

from hangwatch.messages import enum_label
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb
from hangwatchctl import render
from hangwatchctl.client import Target
from lab import scratchfs
from lab.localcluster import LocalCluster, wait_for

HOOK = """#!/bin/sh
echo "$(date +%H:%M:%S) $HANGWATCH_HOST_ID: $HANGWATCH_ACTION (group $HANGWATCH_GROUP, \
epoch $HANGWATCH_EPOCH)" >> {log}
"""
SHOWN = (
    "LOCKUP_SUSPECTED",
    "LOCKUP_CONFIRMED",
    "LOCKUP_RECOVERING",
    "LOCKUP_CLEARED",
    "HUNG_TASK",
    "PROBE_STUCK",
)


@click.command()
@click.option("--yes", is_flag=True, help="Approve the failover without asking.")
@click.option(
    "--auto",
    "auto_mode",
    is_flag=True,
    help="Run the group in auto mode: policy approves, nobody is asked.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Without root: seconds to show the cluster before cleaning up.",
)
def demo(yes: bool, auto_mode: bool, duration: float) -> None:
    """Detect a real filesystem freeze and fail over, on scratch filesystems.

    Everything runs on loopback on this machine and is removed afterwards.
    """
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratchfs.scratch_dir("hangwatch-demo-"))
        real = scratchfs.can_loop_mount()
        mounts: list[Path] = []
        for name in ("mail1", "mail2"):
            if real:
                mounts.append(stack.enter_context(scratchfs.loop_fs(workdir, name)).mount)
            else:
                (workdir / name).mkdir()
                mounts.append(workdir / name)
        log = workdir / "hooks.log"
        cluster = LocalCluster(
            workdir,
            {
                "liveness": {
                    "heartbeat_interval_seconds": 1.0,
                    "stale_after_seconds": 3.0,
                    "unreachable_after_seconds": 6.0,
                },
                "failover": {"demote_timeout_seconds": 10.0, "interval_seconds": 0.25},
                "groups": [
                    {
                        "name": "mail",
                        "members": ["demo-1", "demo-2"],
                        "mounts": [str(m) for m in mounts],
                        "mode": "auto" if auto_mode else "manual",
                        "primary": "demo-1",
                    }
                ],
            },
        )
        stack.callback(cluster.stop)
        cluster.start_controller()
        target = Target(cluster.address, insecure=True, timeout=10.0, actor="demo-operator")
        _say(
            f"controller on {cluster.address}; scratch filesystems: "
            + ("loop-mounted ext4" if real else "plain directories (run as root for a freeze)")
        )
        for i, mount in enumerate(mounts, 1):
            hooks = {
                action: _script(workdir / f"{action}-{i}", HOOK.format(log=log))
                for action in ("demote", "promote")
            }
            cluster.start_agent(
                f"demo-{i}", [mount], {"heartbeat": {"interval_seconds": 1.0}, "hooks": hooks}
            )
        wait_for(lambda: _all_ok(target, 2), 60, "both agents to report their mounts OK")
        click.echo(render.hosts_table(target.call("ListHosts", admin_pb.ListHostsRequest()).hosts))
        if not real:
            _watch_without_freeze(target, duration)
            return
        _freeze_and_fail_over(target, mounts[0], log, yes or auto_mode)


def _freeze_and_fail_over(target: Target, primary_mount: Path, log: Path, approve: bool) -> None:
    cursor = _last_cursor(target)
    _say(f"freezing the primary's filesystem: fsfreeze -f {primary_mount}")
    started = time.monotonic()
    with scratchfs.frozen(primary_mount):
        proposal = None
        while proposal is None:
            cursor = _print_events(target, cursor, started)
            found = target.call("ListFailovers", admin_pb.ListFailoversRequest(active_only=True))
            proposal = found.failovers[0] if found.failovers else None
            time.sleep(0.3)
        _say(f"failover proposed after {time.monotonic() - started:.1f}s:")
        click.echo(render.failover_detail(proposal))
        if proposal.state == admin_pb.FAILOVER_STATE_PROPOSED:
            if approve or click.confirm("\nApprove this failover?", default=True):
                target.call(
                    "ApproveFailover",
                    admin_pb.ApproveFailoverRequest(id=proposal.id, reason="approved in the demo"),
                )
                _say("approved")
            else:
                target.call(
                    "RejectFailover",
                    admin_pb.RejectFailoverRequest(id=proposal.id, reason="rejected in the demo"),
                )
                _say("rejected; cleaning up")
                return
        done = _wait_done(target, proposal.id)
        _say(
            f"failover {enum_label(admin_pb.FailoverState, done.state)}"
            f" {time.monotonic() - started:.1f}s after the freeze; hooks that ran:"
        )
        click.echo(log.read_text() if log.exists() else "(none)")
    _say("thawed the old primary's filesystem")
    groups = target.call("ListGroups", admin_pb.ListGroupsRequest())
    click.echo(render.groups_table(groups.groups))
    _say(
        "the 82-minute manual failover of the incident report took "
        f"{time.monotonic() - started:.0f}s here; cleaning up"
    )


def _wait_done(target: Target, failover_id: str) -> admin_pb.Failover:
    while True:
        f = target.call("GetFailover", admin_pb.GetFailoverRequest(id=failover_id))
        if f.state not in (
            admin_pb.FAILOVER_STATE_PROPOSED,
            admin_pb.FAILOVER_STATE_APPROVED,
            admin_pb.FAILOVER_STATE_FENCING,
            admin_pb.FAILOVER_STATE_PROMOTING,
        ):
            return f  # type: ignore[no-any-return]
        time.sleep(0.3)


def _print_events(target: Target, cursor: int, started: float) -> int:
    response = target.call("ListEvents", admin_pb.ListEventsRequest(since_cursor=cursor))
    for e in response.events:
        cursor = e.cursor
        if e.kind in SHOWN:
            _say(f"+{time.monotonic() - started:4.1f}s  {e.host_id}  {e.kind}  {e.summary}")
    return cursor


def _last_cursor(target: Target) -> int:
    newest = target.call("ListEvents", admin_pb.ListEventsRequest(newest_first=True, page_size=1))
    return int(newest.events[0].cursor) if newest.events else 0


def _all_ok(target: Target, count: int) -> bool:
    hosts = target.call("ListHosts", admin_pb.ListHostsRequest()).hosts
    healthy = [
        h
        for h in hosts
        if h.liveness == pb.LIVENESS_HEALTHY
        and h.health
        and all(m.state == pb.HEALTH_STATE_OK for m in h.health)
    ]
    return len(healthy) == count


def _watch_without_freeze(target: Target, duration: float) -> None:
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        time.sleep(2.0)
        hosts = target.call("ListHosts", admin_pb.ListHostsRequest()).hosts
        click.echo(render.hosts_table(hosts) + "\n")
    _say("cleaning up")


def _script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _say(text: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')}  {text}")
