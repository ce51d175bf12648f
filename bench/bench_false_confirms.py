"""False confirms under healthy heavy load and on a slow device: neither may confirm a lockup.

    python bench/bench_false_confirms.py [--scenario all|fsync-storm|slow-device]
        [--seconds 60] [--writers 4] [--delay 0.4] [--quick]                (as root)

Two scenarios, each on a fresh filesystem watched by one agent at default detection
settings; only its heartbeat is faster (0.5 s) so that the latency of every probe
(one per 2 s) reaches the controller.

- fsync-storm: the load of `test_heavy_healthy_io_never_confirms_a_lockup` (its
  writer script, imported from the test so both exercise the same thing):
  `--writers` processes each rewriting an 8 MiB file on a loop-mounted ext4
  filesystem in 1 MiB writes, each followed by fsync, for `--seconds`.
- slow-device: the load of `test_slow_device_under_sustained_writes_is_never_confirmed`
  (its writer script likewise): two processes appending 1 MiB + fsync to ext4 on a
  loop device over lab.slowdisk, every request of which takes `--delay` seconds
  more, for `--seconds`. Also reported: the device's own latency and completion
  rate.

Reports per scenario the LOCKUP_CONFIRMED count (target 0), the LOCKUP_SUSPECTED
count, the canary probe's latency under load (p50/p99 over the probes completed
during the window, plus an idle reference measured on the same mount just before),
and the longest time the device held requests in flight without completing any
under load (sampled every 50 ms from /proc/diskstats), to set against the
no-progress window that a confirmation needs.
`--quick`: 15 s windows.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common import Bench, machine, percentile, watched_mounts
from integration import test_detection, test_slow_device

from agent.config import DetectionSettings
from agent.procfs.diskstats import DiskStats, read_diskstats
from hangwatch import pbtime
from hangwatch.v1 import types_pb2 as pb

AGENT = {"heartbeat": {"interval_seconds": 0.5}}
IDLE_SECONDS = 20.0
SLOW_WRITERS = 2


def probe_latencies(bench: Bench, seconds: float) -> tuple[list[float], float]:
    """Latencies of the probes completed in the next `seconds` (read from heartbeats),
    and the longest time a probe was seen in flight."""
    mount = str(bench.mounts[0].mount)
    latencies: list[float] = []
    last: float | None = None
    in_flight = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        health = bench.health(mount)
        if health is not None:
            if health.HasField("probe_in_flight_for"):
                in_flight = max(in_flight, pbtime.seconds(health.probe_in_flight_for))
            elif health.HasField("last_probe_latency"):
                latency = pbtime.seconds(health.last_probe_latency)
                # Heartbeats repeat the last latency until the next probe ends.
                if latency != last:
                    latencies.append(latency)
                    last = latency
        time.sleep(0.2)
    return latencies, in_flight


class CompletionGaps:
    """Samples a device's counters every 50 ms in a thread: the longest time it held
    requests in flight without completing any (an idle device is not waiting)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CompletionGaps:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        done, since = -1, time.monotonic()
        while not self._stop.wait(0.05):
            now = time.monotonic()
            stats = read_diskstats().devices[self.device]
            if stats.completions != done or not stats.in_flight:
                done, since = stats.completions, now
            self.longest = max(self.longest, now - since)


@dataclass
class Outcome:
    title: str
    idle: list[float]
    loaded: list[float]
    in_flight: float
    # The longest the device held requests without completing any while the load ran.
    longest_gap: float
    events: list[pb.Event]
    final: str
    notes: list[str] = field(default_factory=list)


def run_load(
    bench: Bench, quick: bool, seconds: float, start: Callable[[], list[subprocess.Popen[bytes]]]
) -> tuple[list[float], list[float], float, float, list[pb.Event], str]:
    """Idle probes, then `start`'s writers for `seconds`, then the events since."""
    mount = str(bench.mounts[0].mount)
    idle, _ = probe_latencies(bench, 10.0 if quick else IDLE_SECONDS)
    since = bench.last_cursor()
    writers = start()
    try:
        with CompletionGaps(bench.mounts[0].kernel_name) as gaps:
            loaded, in_flight = probe_latencies(bench, seconds)
            for w in writers:
                if w.wait(seconds + 120) != 0:
                    raise SystemExit(f"writer {w.pid} exited {w.returncode}")
    finally:
        for w in writers:
            w.kill()
            w.wait()
    # A lockup confirmed from the load's last moments would come within this.
    time.sleep(DetectionSettings().confirm_after_seconds + 1)
    events = bench.events(mount=mount, since=since)
    return idle, loaded, in_flight, gaps.longest, events, bench.state(mount)


def writers(script: str, bench: Bench, count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    mount = bench.mounts[0].mount
    return [
        subprocess.Popen([sys.executable, "-c", script, str(mount / f"w{i}"), str(seconds)])
        for i in range(count)
    ]


def fsync_storm(args: argparse.Namespace, seconds: float) -> Outcome:
    with watched_mounts(1, AGENT, size_mb=256) as bench:
        result = run_load(
            bench,
            args.quick,
            seconds,
            lambda: writers(test_detection.WRITER, bench, args.writers, seconds),
        )
    return Outcome(
        f"fsync storm: {args.writers} writers, 1 MiB write + fsync each, for {seconds:.0f}s "
        "on loop ext4 (256 MB)",
        *result,
    )


def slow_device(args: argparse.Namespace, seconds: float) -> Outcome:
    with watched_mounts(1, AGENT, size_mb=256, slow_disks=True) as bench:
        disk, device = bench.disks[0], bench.mounts[0].kernel_name

        marks: list[DiskStats] = []

        def start() -> list[subprocess.Popen[bytes]]:
            # The idle reference is measured at full speed; the device slows from here.
            disk.set_delay(args.delay)
            marks.append(read_diskstats().devices[device])
            return writers(test_slow_device.WRITER, bench, SLOW_WRITERS, seconds)

        result = run_load(bench, args.quick, seconds, start)
        before, after = marks[0], read_diskstats().devices[device]
    requests = after.reads + after.writes - before.reads - before.writes
    busy_ms = after.read_ms + after.write_ms - before.read_ms - before.write_ms
    return Outcome(
        f"slow device: {SLOW_WRITERS} writers, 1 MiB append + fsync each, for {seconds:.0f}s "
        f"on ext4 over a loop device taking {args.delay * 1000:.0f} ms more per request",
        *result,
        notes=[
            f"device: {requests} reads and writes, mean {busy_ms / max(requests, 1):.0f} ms "
            f"each; {(after.completions - before.completions) / seconds:.1f} completions/s",
        ],
    )


SCENARIOS = {"fsync-storm": fsync_storm, "slow-device": slow_device}


def report(outcome: Outcome) -> bool:
    confirmed = [e for e in outcome.events if e.kind == "LOCKUP_CONFIRMED"]
    suspected = [e for e in outcome.events if e.kind == "LOCKUP_SUSPECTED"]
    print(f"\n{outcome.title}; agent at default detection settings")
    print(f"LOCKUP_CONFIRMED: {len(confirmed)} (target 0: {'met' if not confirmed else 'MISSED'})")
    print(f"LOCKUP_SUSPECTED: {len(suspected)}")
    for e in suspected[:5] + confirmed:
        print(f"  {e.kind}: {e.summary}")
    print(f"mount state at the end: {outcome.final}")
    print(f"{'probe latency':18}{'probes':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for label, lat in (("idle", outcome.idle), ("under load", outcome.loaded)):
        print(
            f"{label:18}{len(lat):>8}{percentile(lat, 50) * 1e3:>10.1f}"
            f"{percentile(lat, 99) * 1e3:>10.1f}{max(lat, default=0.0) * 1e3:>10.1f}"
        )
    if outcome.in_flight:
        print(f"longest probe seen in flight under load: {outcome.in_flight:.2f}s")
    print(
        f"longest the device held requests in flight, completing none, under load: "
        f"{outcome.longest_gap:.2f}s (default no-progress window: "
        f"{DetectionSettings().no_progress_window_seconds:g}s)"
    )
    for note in outcome.notes:
        print(note)
    return not confirmed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["all", *SCENARIOS], default="all")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=4, help="fsync-storm writers")
    parser.add_argument("--delay", type=float, default=test_slow_device.SLOW_DELAY)
    parser.add_argument("--quick", action="store_true", help="15 s windows")
    args = parser.parse_args()
    seconds = 15.0 if args.quick else args.seconds
    print(f"machine: {machine()}")
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    met = [report(SCENARIOS[name](args, seconds)) for name in names]
    if not all(met):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
