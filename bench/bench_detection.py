"""Detection latency at default agent settings: fsfreeze to LOCKUP_SUSPECTED/CONFIRMED.

    python bench/bench_detection.py [--trials 20] [--quick]      (as root)

Each trial freezes a loop-mounted ext4 filesystem watched by one agent (default
settings: probe every 2 s, hard deadline 2 s, confirm after 4 s stuck with 3 s
without device completions) and times, from the moment the bench runs `fsfreeze -f`,
the arrival of LOCKUP_SUSPECTED and LOCKUP_CONFIRMED at the controller (the events'
`received_at`, the controller's wall clock on this same machine). It then thaws and
waits for LOCKUP_CLEARED. The freeze moment is randomised against the probe cadence
by a uniform wait of up to one probe interval.

Baseline, in the same run (in parallel with the trials, on a filesystem of its own):
the kernel's own hung-task report at its default threshold
(`kernel.hung_task_timeout_secs` as found, 120 s by default), i.e. what a detector
reading only the kernel log (node-problem-detector, say) can see: the time from the
freeze until `INFO: task sh:PID blocked for more than ...` for a writer stuck on the
frozen mount shows in /dev/kmsg. `hung_task_warnings` is -1 for the trial; both
sysctls are restored. `--quick`: 3 trials, no baseline.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from common import Bench, machine, percentile, watched_mounts
from lockups import SYSCTL, hung_task_reports, kmsg_tail, stuck_writer

from agent.config import DetectionSettings, ProbeSettings
from hangwatch import pbtime
from lab import scratchfs
from lab.localcluster import wait_for

TARGET_CONFIRMED_P50, TARGET_CONFIRMED_P95 = 6.0, 10.0


@dataclass
class Trial:
    suspected: float  # seconds from the freeze to arrival at the controller
    confirmed: float
    confirmed_at_agent: float  # ... to the agent's own occurred_at
    wait: float  # the random wait before the freeze, 0 to one probe interval


def trial(bench: Bench, rng: random.Random, interval: float) -> Trial:
    mount = str(bench.mounts[0].mount)
    wait_for(lambda: bench.state(mount) == "HEALTH_STATE_OK", 60, f"{mount} OK")
    since = bench.last_cursor()
    # Randomise the freeze against the probe cadence.
    delay = rng.uniform(0, interval)
    time.sleep(delay)
    frozen_at = time.time()
    scratchfs.freeze(mount)
    try:

        def first(kind: str) -> float | None:
            found = bench.events(kind, mount, since)
            return pbtime.seconds(found[0].received_at) if found else None

        confirmed_at = wait_for(lambda: first("LOCKUP_CONFIRMED"), 60, "LOCKUP_CONFIRMED")
        lockup = bench.events("LOCKUP_CONFIRMED", mount, since)[0]
        suspected_at = first("LOCKUP_SUSPECTED")
        assert isinstance(confirmed_at, float) and suspected_at is not None
    finally:
        scratchfs.thaw(mount)
    wait_for(lambda: bench.events("LOCKUP_CLEARED", mount, since), 60, "LOCKUP_CLEARED")
    return Trial(
        suspected=suspected_at - frozen_at,
        confirmed=confirmed_at - frozen_at,
        confirmed_at_agent=pbtime.seconds(lockup.occurred_at) - frozen_at,
        wait=delay,
    )


def kernel_baseline(workdir: Path, stop: threading.Event) -> tuple[float, int, str]:
    """Seconds from a freeze to the kernel's hung-task line for a writer stuck on it,
    the threshold in force, and the line."""
    threshold = int((SYSCTL / "hung_task_timeout_secs").read_text())
    with (
        scratchfs.loop_fs(workdir, "baseline", "ext4") as fs,
        hung_task_reports(timeout_secs=threshold),
        kmsg_tail() as tail,
    ):
        frozen_at = time.monotonic()
        with scratchfs.frozen(fs.mount), stuck_writer(fs.mount) as writer:
            pattern = rf"task sh:{writer.pid} blocked for more than"
            # khungtaskd checks every `threshold` s and counts a task's time from the
            # first check that saw it blocked: the report comes 1-2 thresholds late.
            deadline = frozen_at + 2 * threshold + 60
            while True:
                if stop.is_set():
                    raise RuntimeError("baseline abandoned")
                try:
                    line = tail.wait_for(pattern, 1.0)
                    return time.monotonic() - frozen_at, threshold, line
                except TimeoutError:
                    if time.monotonic() > deadline:
                        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="3 trials, no kernel baseline")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    trials = 3 if args.quick else args.trials
    rng = random.Random(args.seed)
    interval = ProbeSettings().interval_seconds
    print(f"machine: {machine()}")
    d = DetectionSettings()
    print(
        f"agent defaults: probe every {interval:g}s, hard deadline "
        f"{ProbeSettings().hard_deadline_seconds:g}s, confirm after {d.confirm_after_seconds:g}s "
        f"stuck with {d.no_progress_window_seconds:g}s without device completions"
    )
    results: list[Trial] = []
    stop = threading.Event()
    with watched_mounts(1) as bench, ThreadPoolExecutor(1) as pool:
        baseline: Future[tuple[float, int, str]] | None = None
        if not args.quick:
            baseline = pool.submit(kernel_baseline, bench.workdir, stop)
        try:
            for n in range(1, trials + 1):
                t = trial(bench, rng, interval)
                results.append(t)
                print(
                    f"trial {n:2}: wait {t.wait:4.2f}s  suspected {t.suspected:5.2f}s  "
                    f"confirmed {t.confirmed:5.2f}s (agent {t.confirmed_at_agent:5.2f}s)",
                    flush=True,
                )
            if baseline is not None and not baseline.done():
                print("waiting for the kernel's hung-task report...", flush=True)
            kernel = baseline.result() if baseline is not None else None
        finally:
            stop.set()
    print(f"\n{len(results)} trials, seconds from fsfreeze -f to arrival at the controller")
    print(f"{'':12}{'p50':>8}{'p95':>8}{'max':>8}")
    for label, values in (
        ("suspected", [t.suspected for t in results]),
        ("confirmed", [t.confirmed for t in results]),
        ("(at agent)", [t.confirmed_at_agent for t in results]),
    ):
        print(
            f"{label:12}{percentile(values, 50):8.2f}{percentile(values, 95):8.2f}"
            f"{max(values):8.2f}"
        )
    p50 = percentile([t.confirmed for t in results], 50)
    p95 = percentile([t.confirmed for t in results], 95)
    ok = p50 <= TARGET_CONFIRMED_P50 and p95 <= TARGET_CONFIRMED_P95
    print(
        f"target: confirmed p50 <= {TARGET_CONFIRMED_P50:g}s, p95 <= {TARGET_CONFIRMED_P95:g}s: "
        f"{'met' if ok else 'MISSED'}"
    )
    if kernel is not None:
        seconds, threshold, line = kernel
        print(f"\nbaseline: kernel hung-task report (hung_task_timeout_secs={threshold})")
        print(f"  {line!r}")
        print(f"  {seconds:.1f}s after the freeze")
        print(f"ratio baseline / confirmed p50: {seconds / p50:.1f}x")


if __name__ == "__main__":
    main()
