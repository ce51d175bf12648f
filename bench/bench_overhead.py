"""Agent overhead: CPU and memory of one agent watching 10 loop mounts at default settings.

    python bench/bench_overhead.py [--seconds 60] [--mounts 10] [--quick]    (as root)

One agent (default settings: probe each mount every 2 s, diskstats every 1 s, D-state
scan and PSI every 2 s, kmsg on) reports to a controller. After a settling period the
bench samples the agent and each of its children (one probe worker per mount, the
spool worker) once a second with psutil: CPU from cpu_times() (user + system), as %
of one core over the window; memory as RSS, USS and PSS (memory_full_info()).

The children are separate interpreters (`python -I -S`), so they share with each other
and the agent only file-backed pages (the python binary, libc, extension modules):
summing their RSS counts those pages once per process. PSS divides each shared page
among the processes mapping it, so the PSS total is the honest footprint; USS (pages
private to one process) is the floor. `--quick`: a 15 s window.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psutil
from common import machine, watched_mounts

TARGET_CPU_PERCENT, TARGET_MEMORY_MB = 1.0, 60.0
SETTLE_SECONDS = 10.0
MB = 1 << 20


@dataclass
class Usage:
    """One process's CPU over the window and its memory at the last sample."""

    role: str
    cpu_first: float
    cpu_last: float
    rss: int = 0
    uss: int = 0
    pss: int = 0

    @property
    def cpu(self) -> float:
        return self.cpu_last - self.cpu_first


@dataclass
class Sampler:
    agent: psutil.Process
    seen: dict[int, Usage] = field(default_factory=dict)
    peak_agent_rss: int = 0

    def sample(self) -> None:
        procs = [(self.agent, "agent")]
        try:
            procs += [(c, role(c)) for c in self.agent.children(recursive=True)]
        except psutil.NoSuchProcess:
            raise SystemExit("the agent exited") from None
        for proc, what in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    memory = proc.memory_full_info()
            except psutil.NoSuchProcess:
                continue  # its CPU so far stays counted
            cpu = times.user + times.system
            # A child that appears mid-window is counted from its start.
            usage = self.seen.setdefault(proc.pid, Usage(what, 0.0 if self.seen else cpu, cpu))
            usage.cpu_last = cpu
            usage.rss, usage.uss = memory.rss, memory.uss
            usage.pss = getattr(memory, "pss", 0)
            if proc is self.agent:
                self.peak_agent_rss = max(self.peak_agent_rss, memory.rss)


def role(proc: psutil.Process) -> str:
    try:
        cmdline = " ".join(proc.cmdline())
    except psutil.Error:
        return "other"
    for name in ("probe_worker", "spool_worker"):
        if name in cmdline:
            return name.replace("_", " ")
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--mounts", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="a 15 s window")
    args = parser.parse_args()
    seconds = 15.0 if args.quick else args.seconds
    print(f"machine: {machine()}")
    with watched_mounts(args.mounts) as bench:
        time.sleep(SETTLE_SECONDS)  # start-up (imports, first probes, registration) excluded
        sampler = Sampler(psutil.Process(bench.agent.pid))
        began = time.monotonic()
        sampler.sample()
        while time.monotonic() - began < seconds:
            time.sleep(1.0)
            sampler.sample()
        wall = time.monotonic() - began
        unhealthy = [
            str(fs.mount) for fs in bench.mounts if bench.state(str(fs.mount)) != "HEALTH_STATE_OK"
        ]
    report(sampler, wall, args.mounts, unhealthy)


def report(sampler: Sampler, wall: float, mounts: int, unhealthy: list[str]) -> None:
    groups: dict[str, list[Usage]] = defaultdict(list)
    for usage in sampler.seen.values():
        groups[usage.role].append(usage)
    print(f"\none agent, {mounts} loop mounts, default settings, {wall:.0f}s window")
    print(f"{'':22}{'procs':>6}{'CPU % core':>12}{'RSS MB':>9}{'USS MB':>9}{'PSS MB':>9}")

    def row(label: str, usages: list[Usage]) -> tuple[float, float, float, float]:
        cpu = sum(u.cpu for u in usages) / wall * 100
        rss, uss, pss = (sum(getattr(u, k) for u in usages) / MB for k in ("rss", "uss", "pss"))
        print(f"{label:22}{len(usages):>6}{cpu:>12.3f}{rss:>9.1f}{uss:>9.1f}{pss:>9.1f}")
        return cpu, rss, uss, pss

    row("agent", groups["agent"])
    children = [u for r, us in groups.items() if r != "agent" for u in us]
    for name in sorted(r for r in groups if r != "agent"):
        row(f"  {name}s", groups[name])
    row("children, total", children)
    cpu, rss, _, pss = row("agent + children", groups["agent"] + children)
    print(f"agent peak RSS {sampler.peak_agent_rss / MB:.1f} MB")
    print(
        "RSS sums count the pages the processes share (interpreter, libraries) once per "
        "process; PSS splits them, so the PSS total is the footprint and USS the floor."
    )
    if unhealthy:
        print(f"WARNING: not OK at the end: {', '.join(unhealthy)}")
    cpu_ok = cpu <= TARGET_CPU_PERCENT
    mem_ok = pss <= TARGET_MEMORY_MB
    print(
        f"target CPU <= {TARGET_CPU_PERCENT:g} % of one core (agent + children): "
        f"{cpu:.2f} % {'met' if cpu_ok else 'MISSED'}"
    )
    print(
        f"target memory <= {TARGET_MEMORY_MB:g} MB (agent + children, PSS): "
        f"{pss:.1f} MB {'met' if mem_ok else 'MISSED'}; agent RSS alone "
        f"{sum(u.rss for u in groups['agent']) / MB:.1f} MB, "
        f"RSS sum {rss:.1f} MB"
    )


if __name__ == "__main__":
    main()
