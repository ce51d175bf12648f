"""Canary probes: prove a mount still completes I/O without ever blocking the agent.

The agent never waits on a monitored filesystem (docs/design.md#1-no-waiting). Every
operation that touches the mount (statvfs included) runs in a separate worker process
(`agent.workers.probe_worker`); the agent only exchanges lines with it over pipes and stops
waiting at a hard deadline. A process, not a thread: a thread in D state would pin
the agent itself (it could not exit, and the interpreter's shutdown would wait on it),
while a process is merely left behind.

The worker is long-lived, one per mount, because a fresh interpreter per probe costs
some 90 ms of CPU (bench/bench_probe.py): ten mounts probed every two seconds would
take half a core against a budget of 1 %, where a request to a running worker costs
about 0.3 ms, agent and worker together. A worker past the hard deadline is usually in
D state, where even SIGKILL does nothing until the filesystem thaws, so the runner
keeps it, reports it on every check, and starts no other worker for that mount until
it exits: a frozen mount costs one process, never one per check. A worker that was
stuck, died or answered garbage is retired; the next probe starts a fresh one, so
replacements follow the probe cadence rather than a restart loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from agent.procfs.tasks import TaskStat, read_stack, read_stat, read_wchan
from agent.workers.childproc import python_argv
from agent.workers.probe_report import Outcome, ProbeResult, decode_report, parse_report

if TYPE_CHECKING:
    from prometheus_client import Histogram

log = logging.getLogger(__name__)

_REQUEST = b"probe\n"
# A worker that exited between two reads of /proc: nothing known of it.
_GONE = TaskStat(comm="", state="", flags=0)


@dataclass
class _InFlight:
    worker: asyncio.subprocess.Process
    # _exchange(): the report line, and for a retired worker its stderr and exit status.
    task: asyncio.Task[tuple[bytes, bytes, int | None]]
    started: float  # monotonic
    started_at: float  # wall clock
    reported_stuck: bool = False
    # Set once, so callers sharing the probe get the same result, counted once.
    result: ProbeResult | None = None


class ProbeRunner:
    """Probes one mount through one worker process, with at most one probe in flight.

    `run_once()` returns within `hard_deadline` whatever the mount does. Concurrent
    callers share the in-flight probe rather than starting a second one. The latency
    of each probe that completed (OK or SLOW) goes to `latency`, the mount's series of
    the probe histogram, when one is given.
    """

    def __init__(
        self,
        mount: str,
        *,
        soft_deadline: float = 1.0,
        hard_deadline: float = 10.0,
        name: str | None = None,
        proc_root: str = "/proc",
        clock: Callable[[], float] = time.monotonic,
        latency: Histogram | None = None,
    ) -> None:
        if not 0 < soft_deadline <= hard_deadline:
            raise ValueError("need 0 < soft_deadline <= hard_deadline")
        self.mount = mount
        self.soft_deadline = soft_deadline
        self.hard_deadline = hard_deadline
        # Stable across agent restarts (a probe file left by a killed worker is reused,
        # not accumulated) and distinct per host on a shared filesystem.
        self.name = name or f"probe-{socket.gethostname()}"
        self._latency = latency
        self._proc_root = proc_root
        self._clock = clock
        self._worker: asyncio.subprocess.Process | None = None
        self._inflight: _InFlight | None = None
        self._spawn_lock = asyncio.Lock()

    @property
    def worker_pid(self) -> int | None:
        return self._worker.pid if self._worker else None

    async def run_once(self) -> ProbeResult:
        """Starts a probe unless one is in flight, and waits for it up to its hard deadline.

        While a stuck worker lives, every call reports it as STUCK at once; the call
        that finds it ended returns its late result (`recovered`) and the next call
        starts a fresh worker.
        """
        async with self._spawn_lock:
            if self._inflight is None:
                if self._worker is None:
                    self._worker = await self._spawn()
                self._inflight = _InFlight(
                    worker=self._worker,
                    task=asyncio.create_task(_exchange(self._worker)),
                    started=self._clock(),
                    started_at=time.time(),
                )
        probe = self._inflight
        remaining = probe.started + self.hard_deadline - self._clock()
        if remaining > 0 and not probe.task.done():
            await asyncio.wait({probe.task}, timeout=remaining)
        if not probe.task.done():
            return self._stuck_result(probe)
        if probe.result is None:
            probe.result = self._finished_result(probe)
            if self._inflight is probe:
                self._inflight = None
            if self._latency is not None and probe.result.outcome in (Outcome.OK, Outcome.SLOW):
                self._latency.observe(probe.result.latency)
        return probe.result

    async def close(self, grace: float = 1.0) -> None:
        """Kills the worker and waits up to `grace` for it.

        A worker stuck in D state cannot die before the filesystem thaws, and waiting
        for it would break docs/design.md#1-no-waiting, so it is logged and left behind: the SIGKILL
        stays pending and ends it on thaw (the init process reaps it if the agent has
        exited by then). Its probe file may remain; the next probe reuses it.
        """
        worker, self._worker = self._worker, None
        probe, self._inflight = self._inflight, None
        if worker is None:
            return
        _kill(worker)
        exited = asyncio.create_task(worker.wait())
        await asyncio.wait({exited}, timeout=grace)
        if exited.done():
            return
        exited.cancel()
        if probe is not None:
            probe.task.cancel()
        stat = read_stat(self._proc_root, worker.pid) or _GONE
        log.warning(
            "leaving probe worker %d (%s, state %s, wchan %s) on %s%s: "
            "it cannot be killed until the filesystem thaws",
            worker.pid,
            stat.comm,
            stat.state,
            read_wchan(self._proc_root, worker.pid),
            self.mount,
            f", stuck for {self._clock() - probe.started:.1f}s" if probe else "",
        )

    async def _spawn(self) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *python_argv("agent.workers.probe_worker", "main", self.mount, self.name),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            # The agent's own cwd might be on a monitored filesystem.
            cwd="/",
        )

    def _stuck_result(self, probe: _InFlight) -> ProbeResult:
        if not probe.reported_stuck:
            probe.reported_stuck = True
            # Retire it: at EOF it exits as soon as its report is out, and only then
            # does the mount get a fresh worker.
            assert probe.worker.stdin is not None
            probe.worker.stdin.close()
        pid = probe.worker.pid
        stat = read_stat(self._proc_root, pid) or _GONE
        return ProbeResult(
            mount=self.mount,
            outcome=Outcome.STUCK,
            started_at=probe.started_at,
            latency=self._clock() - probe.started,
            stuck_pid=pid,
            stuck_comm=stat.comm,
            stuck_state=stat.state,
            stuck_wchan=read_wchan(self._proc_root, pid),
            stuck_stack=read_stack(self._proc_root, pid),
        )

    def _finished_result(self, probe: _InFlight) -> ProbeResult:
        line, stderr, returncode = probe.task.result()
        pid = probe.worker.pid
        if returncode is not None and self._worker is probe.worker:
            self._worker = None
        result = parse_report(
            self.mount,
            probe.started_at,
            line,
            stderr,
            returncode,
            soft_deadline=self.soft_deadline,
        )
        if not probe.reported_stuck:
            if returncode is not None:
                log.warning("probe worker %d on %s retired: %s", pid, self.mount, result.error)
            return result
        log.info("stuck probe worker %d on %s ended after %.1fs", pid, self.mount, result.latency)
        # It did finish, so it is no longer STUCK; being late makes it at least SLOW.
        outcome = Outcome.FAILED if result.outcome is Outcome.FAILED else Outcome.SLOW
        return replace(result, outcome=outcome, stuck_pid=pid)


async def _exchange(worker: asyncio.subprocess.Process) -> tuple[bytes, bytes, int | None]:
    """Asks the worker for one probe: (report line, stderr, exit status).

    The exit status is None while the worker stays in service. One that died, answered
    garbage or was retired (its stdin closed) is killed and reaped before this returns,
    so a mount never has two workers.
    """
    assert worker.stdin is not None and worker.stdout is not None and worker.stderr is not None
    try:
        worker.stdin.write(_REQUEST)
        line = await worker.stdout.readline()
    except (OSError, ValueError):  # a broken pipe; a line over the stream's 64 KiB limit
        line = b""
    if not worker.stdin.is_closing() and decode_report(line) is not None:
        return line, b"", None
    _kill(worker)
    stderr = await worker.stderr.read()
    return line, stderr, await worker.wait()


def _kill(worker: asyncio.subprocess.Process) -> None:
    """SIGKILL, unless the worker is known to have exited.

    Not Process.kill(): its Popen polls first, and on a worker that has just exited
    that reaps it from under asyncio's child watcher, which then reports status 255.
    """
    if worker.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGKILL)
