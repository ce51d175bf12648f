"""False confirms under healthy heavy load: fsync storms must never confirm a lockup.

    python bench/bench_false_confirms.py [--seconds 60] [--writers 4] [--quick]  (as root)

The load of `test_heavy_healthy_io_never_confirms_a_lockup` (its writer script,
imported from the test so both exercise the same thing): `--writers` processes each
rewriting an 8 MiB file on a loop-mounted ext4 filesystem in 1 MiB writes, each
followed by fsync, for `--seconds`. One agent watches the mount with default
detection settings; only its heartbeat is faster (0.5 s) so that the latency of
every probe (one per 2 s) reaches the controller. Reports the LOCKUP_CONFIRMED count
(target 0), the LOCKUP_SUSPECTED count, and the canary probe's latency under load
(p50/p99 over the probes completed during the window), plus an idle reference
measured on the same mount just before. `--quick`: a 15 s window.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import Bench, machine, percentile, watched_mounts
from integration.test_detection import WRITER

from agent.config import DetectionSettings
from hangwatch import pbtime

AGENT = {"heartbeat": {"interval_seconds": 0.5}}
IDLE_SECONDS = 20.0


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a 15 s window")
    args = parser.parse_args()
    seconds = 15.0 if args.quick else args.seconds
    print(f"machine: {machine()}")
    with watched_mounts(1, AGENT, size_mb=256) as bench:
        fs = bench.mounts[0]
        mount = str(fs.mount)
        idle, _ = probe_latencies(bench, 10.0 if args.quick else IDLE_SECONDS)
        since = bench.last_cursor()
        writers = [
            subprocess.Popen([sys.executable, "-c", WRITER, str(fs.mount / f"w{i}"), str(seconds)])
            for i in range(args.writers)
        ]
        try:
            loaded, in_flight = probe_latencies(bench, seconds)
            for w in writers:
                if w.wait(seconds + 60) != 0:
                    raise SystemExit(f"writer {w.pid} exited {w.returncode}")
        finally:
            for w in writers:
                w.kill()
                w.wait()
        # A lockup confirmed from the load's last moments would come within this.
        time.sleep(DetectionSettings().confirm_after_seconds + 1)
        events = bench.events(mount=mount, since=since)
        final = bench.state(mount)
    confirmed = [e for e in events if e.kind == "LOCKUP_CONFIRMED"]
    suspected = [e for e in events if e.kind == "LOCKUP_SUSPECTED"]
    print(
        f"\n{args.writers} writers, 1 MiB write + fsync each, for {seconds:.0f}s on "
        f"loop ext4 (256 MB); agent at default detection settings"
    )
    print(f"LOCKUP_CONFIRMED: {len(confirmed)} (target 0: {'met' if not confirmed else 'MISSED'})")
    print(f"LOCKUP_SUSPECTED: {len(suspected)}")
    for e in suspected + confirmed:
        print(f"  {e.kind}: {e.summary}")
    print(f"mount state at the end: {final}")
    print(f"{'probe latency':18}{'probes':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for label, lat in (("idle", idle), ("under load", loaded)):
        print(
            f"{label:18}{len(lat):>8}{percentile(lat, 50) * 1e3:>10.1f}"
            f"{percentile(lat, 99) * 1e3:>10.1f}{max(lat, default=0.0) * 1e3:>10.1f}"
        )
    if in_flight:
        print(f"longest probe seen in flight under load: {in_flight:.2f}s")
    if confirmed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
