"""Shared by the failover tests: a group of real agents with real hook executables.

Hooks are small shell scripts that append one line per run to a log outside the
monitored mounts; the checker reads that log to prove what ran, where, in which
order and under which epoch.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clusterkit import FAST_AGENT, Admin

from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

HOOK = """#!/bin/sh
sleep {sleep}
{before}
echo "$(date +%s.%N) $HANGWATCH_HOST_ID $HANGWATCH_ACTION $HANGWATCH_EPOCH $HANGWATCH_GROUP \
$HANGWATCH_COMMAND_ID" >> {log}
exit {code}
"""
FENCE = """#!/bin/sh
input=$(cat)
echo "$(date +%s.%N) fence group=$HANGWATCH_GROUP epoch=$HANGWATCH_EPOCH \
$(echo "$input" | tr '\\n' ' ')" >> {log}
exit {code}
"""


@dataclass(frozen=True)
class HookRun:
    at: float
    host: str
    action: str
    epoch: int
    group: str
    command_id: str


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def hook_runs(log: Path) -> list[HookRun]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[1] != "fence":
            out.append(
                HookRun(float(parts[0]), parts[1], parts[2], int(parts[3]), parts[4], parts[5])
            )
    return out


def fence_runs(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if " fence " in line]


def agent_config(
    workdir: Path,
    host: str,
    *,
    demote_sleep: float = 0.0,
    promote_sleep: float = 0.0,
    demote_code: int = 0,
    demote_writes_to: Path | None = None,
) -> dict[str, Any]:
    """`demote_writes_to`: the demote hook first writes a file there, as a real one
    stopping services that hold files on the mount would (it blocks while it is frozen)."""
    log = workdir / "hooks.log"
    before = f"echo stopping > {demote_writes_to}/demoting" if demote_writes_to else ""
    demote = write_script(
        workdir / f"demote-{host}",
        HOOK.format(sleep=demote_sleep, log=log, code=demote_code, before=before),
    )
    promote = write_script(
        workdir / f"promote-{host}", HOOK.format(sleep=promote_sleep, log=log, code=0, before="")
    )
    return {
        **FAST_AGENT,
        "hooks": {"demote": str(demote), "promote": str(promote), "timeout_seconds": 30.0},
    }


def controller_config(
    base: dict[str, Any],
    mounts: list[str],
    *,
    mode: str = "manual",
    members: tuple[str, ...] = ("h1", "h2"),
    fence_code: int | None = None,
    workdir: Path | None = None,
    **failover: Any,
) -> dict[str, Any]:
    config = {
        **base,
        "failover": {
            "demote_timeout_seconds": 5.0,
            "promote_timeout_seconds": 30.0,
            "interval_seconds": 0.2,
            **failover,
        },
        "groups": [
            {
                "name": "mail",
                "members": list(members),
                "mounts": mounts,
                "mode": mode,
                "primary": members[0],
            }
        ],
    }
    if fence_code is not None:
        assert workdir is not None
        agent = write_script(
            workdir / "fence_test", FENCE.format(log=workdir / "hooks.log", code=fence_code)
        )
        config["fencing"] = [
            {
                "host": members[0],
                "agent": str(agent),
                "options": {"ip": "192.0.2.10", "username": "admin"},
                "timeout_seconds": 10.0,
            }
        ]
    return config


def failovers(admin: Admin, active: bool = False) -> list[admin_pb.Failover]:
    return list(
        admin.stub.ListFailovers(
            admin_pb.ListFailoversRequest(active_only=active), timeout=5
        ).failovers
    )


def state_name(f: admin_pb.Failover) -> str:
    return admin_pb.FailoverState.Name(f.state).removeprefix("FAILOVER_STATE_")


def wait_failover(
    admin: Admin, states: set[str], timeout: float = 30.0, what: str = ""
) -> admin_pb.Failover:
    def found() -> admin_pb.Failover | None:
        for f in failovers(admin):
            if state_name(f) in states:
                return f
        return None

    result = wait_for(found, timeout, what or f"a failover in {sorted(states)}")
    assert isinstance(result, admin_pb.Failover)
    return result


def group(admin: Admin, name: str = "mail") -> admin_pb.Group:
    groups = admin.stub.ListGroups(admin_pb.ListGroupsRequest(), timeout=5).groups
    return next(g for g in groups if g.name == name)


def wait_healthy(admin: Admin, hosts: dict[str, str], timeout: float = 30.0) -> None:
    """Waits until every host reports its mount OK."""

    def ok() -> bool:
        seen = admin.hosts()
        for host, mount in hosts.items():
            h = seen.get(host)
            if h is None or not any(
                m.mount == mount and m.state == pb.HEALTH_STATE_OK for m in h.health
            ):
                return False
        return True

    wait_for(ok, timeout, f"{sorted(hosts)} to report their mounts OK")


def ctl_json(cluster: LocalCluster, *args: str) -> Any:
    result = cluster.ctl("-o", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def fenced(log: Path) -> set[tuple[str, int]]:
    """(group, epoch) of every fence agent run."""
    out = set()
    for line in fence_runs(log):
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        out.add((fields["group"], int(fields["epoch"])))
    return out


def check_safety(runs: list[HookRun], fences: set[tuple[str, int]] = frozenset()) -> None:
    """At most one promoted host per group and epoch, and no promote before a demote of
    that epoch ran (or a fence of it did)."""
    promoted: dict[tuple[str, int], str] = {}
    for run in runs:
        if run.action != "promote":
            continue
        key = (run.group, run.epoch)
        assert promoted.setdefault(key, run.host) == run.host, (
            f"two primaries in {key}: {promoted[key]} and {run.host}"
        )
        demoted = [
            r for r in runs if r.action == "demote" and (r.group, r.epoch) == key and r.at <= run.at
        ]
        assert demoted or key in fences, f"promote without a demote or fence: {run}"
