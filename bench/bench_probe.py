"""What a canary probe costs: a persistent worker against a fresh child per probe.

Run from the repository root as root (it makes a loop-mounted ext4 scratch filesystem
unless given --mount): `python -m bench.bench_probe [--probes 200] [--mount PATH]`.

The baseline is the previous design, measured in the same run: a fresh
`python -I -B -c` child per probe that imports `agent.workers.probe` (asyncio and all) and
probes once. CPU is the agent's own (RUSAGE_SELF) plus the children's; a child counts
in RUSAGE_CHILDREN only once reaped, so the worker's share is read from /proc while it
runs, which leaves its one-off start-up out of the per-probe figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from agent.workers.probe import ProbeRunner
from agent.workers.probe_report import Outcome
from lab import scratchfs

# Mounts and cadence of the agent's budget: at most 1 % of one core.
MOUNTS, INTERVAL = 10, 2.0
ROOT = str(Path(__file__).resolve().parent.parent)
_OLD_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); import agent.workers.probe; "
    "from agent.workers.probe_worker import probe; sys.stdout.write(probe(*sys.argv[2:]))"
)


@dataclass
class Figures:
    cpu_per_probe: float  # seconds, agent plus children
    wall_p50: float  # one probe as the agent waits for it
    fs_p50: float  # the filesystem's share: the probe's own step total


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


async def bench_old(mount: str, probes: int) -> Figures:
    walls, latencies = [], []
    self_before, children_before = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    for _ in range(probes):
        began = time.perf_counter()
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-B",
            "-c",
            _OLD_CHILD,
            ROOT,
            mount,
            "bench",
            stdout=asyncio.subprocess.PIPE,
            cwd="/",
        )
        stdout, _ = await child.communicate()
        walls.append(time.perf_counter() - began)
        latencies.append(sum(seconds for _, seconds in json.loads(stdout)["steps"]))
    cpu = _cpu(resource.RUSAGE_SELF) - self_before
    cpu += _cpu(resource.RUSAGE_CHILDREN) - children_before
    return Figures(cpu / probes, statistics.median(walls), statistics.median(latencies))


async def bench_new(mount: str, probes: int) -> tuple[Figures, int, int]:
    """Figures, and the worker's RSS and USS in KiB."""
    runner = ProbeRunner(mount, name="bench")
    if (await runner.run_once()).outcome is not Outcome.OK:  # starts the worker
        raise SystemExit(f"{mount} is not healthy")
    assert runner.worker_pid is not None
    worker = psutil.Process(runner.worker_pid)
    walls, latencies = [], []
    worker_before, self_before = sum(worker.cpu_times()[:2]), _cpu(resource.RUSAGE_SELF)
    for _ in range(probes):
        began = time.perf_counter()
        result = await runner.run_once()
        walls.append(time.perf_counter() - began)
        latencies.append(result.latency)
    cpu = sum(worker.cpu_times()[:2]) - worker_before + _cpu(resource.RUSAGE_SELF) - self_before
    ps = subprocess.run(["ps", "-o", "rss=", "-p", str(worker.pid)], capture_output=True, text=True)
    uss = worker.memory_full_info().uss >> 10
    await runner.close()
    figures = Figures(cpu / probes, statistics.median(walls), statistics.median(latencies))
    return figures, int(ps.stdout), uss


@contextlib.contextmanager
def healthy_mount(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    if not scratchfs.can_loop_mount():
        raise SystemExit("needs root and losetup/mkfs.ext4, or --mount PATH")
    with (
        scratchfs.scratch_dir("hangwatch-bench-") as workdir,
        scratchfs.loop_fs(workdir, "ext4", "ext4") as fs,
    ):
        yield str(fs.mount)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--mount", help="an existing healthy mount (default: loop ext4)")
    args = parser.parse_args()
    with healthy_mount(args.mount) as mount:
        old = asyncio.run(bench_old(mount, args.probes))
        new, rss, uss = asyncio.run(bench_new(mount, args.probes))
    print(f"{args.probes} probes on {args.mount or 'a loop-mounted ext4'}")
    print(f"{'':22}{'CPU/probe':>12}{'wall p50':>12}{'fs p50':>12}")
    for label, f in (("old: child per probe", old), ("new: one worker", new)):
        print(
            f"{label:22}{f.cpu_per_probe * 1e3:>9.2f} ms{f.wall_p50 * 1e3:>9.2f} ms"
            f"{f.fs_p50 * 1e3:>9.2f} ms"
        )
    print(f"CPU ratio old/new: {old.cpu_per_probe / new.cpu_per_probe:.1f}x")
    print(f"worker RSS {rss} KiB (ps -o rss), of which private (USS) {uss} KiB")
    for label, f in (("old", old), ("new", new)):
        share = f.cpu_per_probe * MOUNTS / INTERVAL * 100
        print(f"{label}: {MOUNTS} mounts every {INTERVAL:g}s cost {share:.2f} % of one core")


if __name__ == "__main__":
    main()
