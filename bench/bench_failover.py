"""Failover speed with default settings: python bench/bench_failover.py [--quick] [--trials N]

Auto mode: freeze the primary's filesystem (fsfreeze) -> the standby's promote hook
has run, N trials, p50/p95. Manual mode: `failover approve` -> promoted, N trials.
Both against the incident report's 82-minute manual failover. Two agents (primary
and standby) on loop-mounted ext4; hooks are shell scripts that only log.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import common  # noqa: F401  (puts tests/ and the repo root on sys.path)
from clusterkit import Admin
from common import machine, percentile, require_loop_mounts
from failoverkit import agent_config, failovers, group, hook_runs, state_name, wait_healthy

from hangwatch.v1 import admin_service_pb2 as admin_pb
from lab import scratchfs
from lab.localcluster import LocalCluster, wait_for

INCIDENT_MANUAL_FAILOVER_S = 82 * 60.0
HOSTS = ("h1", "h2")


@contextlib.contextmanager
def pair(mode: str) -> Iterator[tuple[LocalCluster, Admin, dict[str, Path], Path]]:
    """A controller with group "mail" (h1 primary, h2 standby) at default settings,
    except anti-flap, which the bench ends after each trial as an SRE would, and the
    storm window, shortened to 1 s."""
    require_loop_mounts()
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(scratchfs.scratch_dir("hangwatch-bench-"))
        mounts = {h: stack.enter_context(scratchfs.loop_fs(workdir, h)).mount for h in HOSTS}
        # Default settings, but for the storm window: with one group, any second automatic
        # failover within window_seconds waits for a person, which is policy, not speed.
        cluster = LocalCluster(
            workdir,
            {
                "failover": {"window_seconds": 1.0},
                "groups": [
                    {
                        "name": "mail",
                        "members": list(HOSTS),
                        "mounts": [str(m) for m in mounts.values()],
                        "mode": mode,
                        "primary": "h1",
                    }
                ],
            },
        )
        stack.callback(cluster.stop)
        cluster.start_controller()
        for host in HOSTS:
            config = agent_config(workdir, host)
            config.pop("heartbeat")  # default heartbeat and detection settings
            cluster.start_agent(host, [mounts[host]], config)
        admin = Admin(cluster.address)
        stack.callback(admin.close)
        wait_healthy(admin, {h: str(mounts[h]) for h in HOSTS}, timeout=60)
        yield cluster, admin, mounts, workdir / "hooks.log"


def _promotes(log: Path) -> int:
    return len([r for r in hook_runs(log) if r.action == "promote"])


def _reset(cluster: LocalCluster, admin: Admin, mounts: dict[str, Path]) -> None:
    """Make the old primary eligible again and end the anti-flap block, as an SRE would."""
    wait_healthy(admin, {h: str(mounts[h]) for h in HOSTS}, timeout=60)
    for host in HOSTS:
        cluster.ctl("host", "clear", host, "--reason", "bench")
    cluster.ctl("failover", "ack", "mail", "--reason", "bench")


def auto_trials(trials: int) -> list[float]:
    out = []
    with pair("auto") as (cluster, admin, mounts, log):
        for _ in range(trials):
            primary = group(admin).primary
            before = _promotes(log)
            time.sleep(0.5 + (time.monotonic() % 2.0))  # a random point of the probe cadence
            started = time.monotonic()
            with scratchfs.frozen(mounts[primary]):
                wait_for(lambda b=before: _promotes(log) > b, 60, "the standby's promote")
                out.append(time.monotonic() - started)
            print(f"  auto trial: freeze -> promoted {out[-1]:.2f}s")
            _reset(cluster, admin, mounts)
    return out


def manual_trials(trials: int) -> list[float]:
    out = []
    with pair("manual") as (cluster, admin, mounts, log):
        for _ in range(trials):
            primary = group(admin).primary
            with scratchfs.frozen(mounts[primary]):
                proposal = wait_for(
                    lambda: [
                        f for f in failovers(admin, active=True) if state_name(f) == "PROPOSED"
                    ],
                    60,
                    "a proposal",
                )
                before = _promotes(log)
                started = time.monotonic()
                admin.stub.ApproveFailover(
                    admin_pb.ApproveFailoverRequest(id=proposal[0].id), timeout=10
                )
                wait_for(lambda b=before: _promotes(log) > b, 60, "the standby's promote")
                out.append(time.monotonic() - started)
            print(f"  manual trial: approve -> promoted {out[-1]:.2f}s")
            _reset(cluster, admin, mounts)
    return out


def report(name: str, values: list[float], target: float) -> None:
    p50, p95 = statistics.median(values), percentile(values, 95)
    print(
        f"{name}: n={len(values)} p50 {p50:.2f}s p95 {p95:.2f}s max {max(values):.2f}s "
        f"(target p50 <= {target:.0f}s: {'met' if p50 <= target else 'MISSED'}); "
        f"the incident's manual failover took {INCIDENT_MANUAL_FAILOVER_S / 60:.0f} min: "
        f"{INCIDENT_MANUAL_FAILOVER_S / p50:.0f}x faster"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 trials each")
    args = parser.parse_args()
    trials = 3 if args.quick else args.trials
    print(f"machine: {machine()}")
    report("auto mode, freeze -> promoted", auto_trials(trials), 15.0)
    report("manual mode, approve -> promoted", manual_trials(trials), 2.0)


if __name__ == "__main__":
    main()
