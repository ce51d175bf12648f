"""Randomised faults against a running group, then a checker over the hook logs.

Seeded, so a failure replays: freezes of any member's filesystem, agents SIGKILLed
and restarted or SIGSTOPped, the controller SIGKILLed, one agent's network cut (it
lives in its own network namespace), switchovers, approvals. Whatever happens,
docs/design.md#4-fence-before-promote holds: at most one primary per group per epoch, no promote
without a demote or fence of that epoch first. HANGWATCH_FAULT_ITERATIONS and
HANGWATCH_FAULT_SEED change the run (bench/bench_faults.py runs it longer).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from clusterkit import FAST_CONTROLLER, Admin
from failoverkit import (
    FENCE,
    agent_config,
    check_safety,
    failovers,
    fenced,
    group,
    hook_runs,
    state_name,
    write_script,
)
from lockups import loop_fs
from netns import start_relays, veth_namespace
from rootreq import require_root

from lab.localcluster import LocalCluster, Proc
from lab.scratchfs import freeze, thaw

MEMBERS = ("h1", "h2", "h3")
NETNS_MEMBER = "h3"


def _config(workdir: Path, mounts: list[str]) -> dict[str, object]:
    fence = write_script(workdir / "fence_test", FENCE.format(log=workdir / "hooks.log", code=0))
    return {
        **FAST_CONTROLLER,
        "failover": {
            "demote_timeout_seconds": 3.0,
            "promote_timeout_seconds": 20.0,
            "interval_seconds": 0.2,
            "anti_flap_seconds": 2.0,
            "max_concurrent": 1,
        },
        "groups": [
            {
                "name": "mail",
                "members": list(MEMBERS),
                "mounts": mounts,
                "mode": "auto",
                "primary": "h1",
            }
        ],
        "fencing": [{"host": h, "agent": str(fence), "timeout_seconds": 10.0} for h in MEMBERS],
    }


class Chaos:
    """The cluster under test and the faults it can suffer."""

    def __init__(
        self,
        cluster: LocalCluster,
        rng: random.Random,
        mounts: dict[str, Path],
        start_agent: Callable[[str], Proc],
        link: Callable[[bool], None],
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.mounts = mounts
        self.start_agent = start_agent
        self.link = link
        self.agents = {h: start_agent(h) for h in MEMBERS}
        self.admin = Admin(cluster.address)
        self.log: list[str] = []

    def _ctl(self, *args: str) -> None:
        self.cluster.ctl("--timeout", "3", *args, timeout=20)

    def primary(self) -> str:
        try:
            return group(self.admin).primary
        except Exception:  # the controller may be down this very moment
            return self.rng.choice(MEMBERS)

    def freeze(self) -> None:
        """Most freezes hit the primary, long enough to confirm a lockup, or not quite."""
        host = self.primary() if self.rng.random() < 0.7 else self.rng.choice(MEMBERS)
        hold = self.rng.uniform(0.5, 9.0)
        self.log.append(f"freeze {host} {hold:.1f}s")
        freeze(self.mounts[host])
        try:
            time.sleep(hold)  # the fault's duration, not a synchronisation
        finally:
            thaw(self.mounts[host])

    def kill_agent(self) -> None:
        host = self.rng.choice(MEMBERS)
        self.log.append(f"kill {host}")
        self.agents[host].kill_group()
        time.sleep(self.rng.uniform(0.0, 2.0))
        self.agents[host] = self.start_agent(host)

    def stop_agent(self) -> None:
        host = self.rng.choice(MEMBERS)
        hold = self.rng.uniform(1.0, 6.0)
        self.log.append(f"stop {host} {hold:.1f}s")
        self.agents[host].signal(signal.SIGSTOP)
        try:
            time.sleep(hold)
        finally:
            self.agents[host].signal(signal.SIGCONT)

    def kill_controller(self) -> None:
        self.log.append("kill controller")
        controller = next(p for p in self.cluster.procs if p.name == "controller" and p.alive())
        controller.kill()
        self.cluster.start_controller()

    def cut_network(self) -> None:
        hold = self.rng.uniform(2.0, 8.0)
        self.log.append(f"cut {NETNS_MEMBER} {hold:.1f}s")
        self.link(False)
        try:
            time.sleep(hold)
        finally:
            self.link(True)

    def switchover(self) -> None:
        host = self.rng.choice(MEMBERS)
        self.log.append(f"switchover to {host}")
        self._ctl("switchover", "mail", "--to", host)

    def tend(self) -> None:
        """What an operator on call would do: approve, confirm fences, clear hosts."""
        self.log.append("tend")
        for f in failovers(self.admin, active=True):
            if state_name(f) == "PROPOSED" and f.to_host:
                self._ctl("failover", "approve", f.id)
            elif state_name(f) == "FENCE_FAILED":
                self._ctl(
                    "failover",
                    "confirm-fenced",
                    f.id,
                    "--confirm",
                    f.from_host,
                    "--reason",
                    "chaos drill",
                )
        for host in MEMBERS:
            self._ctl("host", "clear", host, "--reason", "chaos drill")

    def run(self, iterations: int) -> None:
        faults = [
            self.freeze,
            self.freeze,
            self.kill_agent,
            self.stop_agent,
            self.kill_controller,
            self.cut_network,
            self.switchover,
            self.tend,
        ]
        for _ in range(iterations):
            self.rng.choice(faults)()

    def heal(self) -> None:
        for host, proc in self.agents.items():
            proc.signal(signal.SIGCONT)
            if not proc.alive():
                self.agents[host] = self.start_agent(host)
        self.link(True)


@contextlib.contextmanager
def chaos_cluster(cluster: LocalCluster, tmp: Path, rng: random.Random) -> Iterator[Chaos]:
    require_root(["ip"])
    with contextlib.ExitStack() as stack:
        mounts = {h: stack.enter_context(loop_fs("ext4")).mount for h in MEMBERS}
        cluster.controller_config = _config(tmp, [str(m) for m in mounts.values()])
        ns = stack.enter_context(veth_namespace("10.200.0.4/30"))
        cluster.start_controller()
        port = start_relays(cluster, ns)

        def start_agent(host: str) -> Proc:
            config = agent_config(tmp, host)
            if host != NETNS_MEMBER:
                return cluster.start_agent(host, [mounts[host]], config)
            return cluster.start_agent(
                host, [mounts[host]], config, prefix=ns.prefix, controller=f"127.0.0.1:{port}"
            )

        chaos = Chaos(cluster, rng, mounts, start_agent, ns.set_link)
        try:
            yield chaos
        finally:
            chaos.heal()
            for mount in mounts.values():
                thaw(mount)
            for proc in chaos.agents.values():
                proc.kill_group()
            chaos.admin.close()


def test_random_faults_never_make_two_primaries_or_promote_unfenced(cluster, tmp_path):
    seed = int(os.environ.get("HANGWATCH_FAULT_SEED", "20260827"))
    iterations = int(os.environ.get("HANGWATCH_FAULT_ITERATIONS", "50"))
    rng = random.Random(seed)
    with chaos_cluster(cluster, tmp_path, rng) as chaos:
        chaos.run(iterations)
        chaos.heal()
        log = tmp_path / "hooks.log"
        runs = hook_runs(log)
        promotes = [r for r in runs if r.action == "promote"]
        context = f"seed {seed}, faults: {'; '.join(chaos.log)}"
        assert promotes, f"no failover ever completed ({context})"
        try:
            check_safety(runs, fenced(log))
        except AssertionError as exc:
            raise AssertionError(f"{exc} ({context})") from exc
