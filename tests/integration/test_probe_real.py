"""Probes against real loop filesystems, healthy, frozen and read-only (needs root)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import pytest
from lockups import LoopFs
from prometheus_client import CollectorRegistry

from agent.signals import Kind
from agent.sources.probe_source import latency_histogram, probe_signals
from agent.workers.probe import ProbeRunner
from agent.workers.probe_report import Outcome, ProbeResult
from agent.workers.probe_worker import PROBE_DIR
from lab.scratchfs import frozen, run, thaw

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]
both_fstypes = pytest.mark.parametrize("loop_mount", ["ext4", "xfs"], indirect=True)

WRITE_STEPS = ["statvfs", "mkdir", "create", "write", "fsync", "read", "remove"]
SOFT, HARD = 0.5, 1.5


class Ticker:
    """Proves the event loop stays responsive: records when each 50 ms tick ran."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            self.stamps.append(time.monotonic())
            await asyncio.sleep(0.05)

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    def stop(self) -> float:
        """The longest gap between ticks."""
        assert self._task is not None
        self._task.cancel()
        return max(b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False))


async def poll_async(
    check: Callable[[], Awaitable[ProbeResult]],
    until: Callable[[ProbeResult], bool],
    timeout: float,
) -> ProbeResult:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if until(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


def child_pids() -> list[int]:
    """This process's probe workers (the session's other children, such as an etcd
    cluster other tests started, are none of the probe's business)."""
    return [p.pid for p in psutil.Process().children(recursive=True) if _probe_worker(p)]


def _probe_worker(process: psutil.Process) -> bool:
    try:
        return any("agent.workers.probe_worker" in arg for arg in process.cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True  # a worker that has just exited still counts until reaped


@both_fstypes
def test_healthy_probe_is_ok_with_step_timings(loop_mount: LoopFs) -> None:
    mount = str(loop_mount.mount)
    histogram = latency_histogram()

    async def probe_20_times() -> tuple[list[ProbeResult], set[int | None]]:
        runner = ProbeRunner(
            mount, soft_deadline=SOFT, hard_deadline=HARD, latency=histogram.labels(mount)
        )
        results, workers = [], set()
        for _ in range(20):
            results.append(await runner.run_once())
            workers.add(runner.worker_pid)
            assert child_pids() == [runner.worker_pid]
        await runner.close()
        return results, workers

    results, workers = asyncio.run(probe_20_times())
    assert [r.outcome for r in results] == [Outcome.OK] * 20, results[0].error
    assert all(r.mode == "write" for r in results)
    assert [name for name, _ in results[0].steps] == WRITE_STEPS
    registry = CollectorRegistry(auto_describe=False)
    registry.register(histogram)
    count = registry.get_sample_value("hangwatch_probe_duration_seconds_count", {"mount": mount})
    assert count == 20
    p50 = statistics.median(r.latency for r in results)
    print(f"\n{loop_mount.fstype}: probe latency p50 {p50 * 1000:.2f} ms")
    assert p50 < SOFT
    # One worker served every probe.
    assert len(workers) == 1
    # The probe cleans up after itself: only its (hidden) directory stays.
    assert os.listdir(loop_mount.mount / PROBE_DIR) == []
    assert child_pids() == []


@both_fstypes
def test_frozen_mount_leaves_one_stuck_probe_and_a_responsive_agent(loop_mount: LoopFs) -> None:
    mount = str(loop_mount.mount)

    async def scenario() -> None:
        runner = ProbeRunner(mount, soft_deadline=SOFT, hard_deadline=HARD)
        ticker = Ticker()
        ticker.start()
        assert (await runner.run_once()).outcome is Outcome.OK
        pid = runner.worker_pid
        with frozen(mount):
            began = time.monotonic()
            # Two concurrent checks share the one in-flight probe, in the same worker.
            first, second = await asyncio.gather(runner.run_once(), runner.run_once())
            assert time.monotonic() - began < HARD + 0.5
            assert first.outcome is second.outcome is Outcome.STUCK
            assert pid is not None and first.stuck_pid == second.stuck_pid == pid
            for _ in range(3):
                again = await runner.run_once()
                assert again.outcome is Outcome.STUCK
                assert again.stuck_pid == pid
                assert child_pids() == [pid]
            assert again.latency > first.latency
            assert again.started_at == first.started_at
            # The writer waits for the freeze to end in the superblock's rwsem.
            assert again.stuck_state == "D"
            assert "percpu_rwsem" in again.stuck_wchan
            assert "percpu_rwsem_wait" in again.stuck_stack
            [signal] = probe_signals(again, at=time.time())
            assert signal.kind == Kind.PROBE_STUCK
            assert signal.attributes["stuck_wchan"] == again.stuck_wchan
            print(
                f"\n{loop_mount.fstype}: stuck wchan {again.stuck_wchan}, stack {again.stuck_stack}"
            )
        frozen_for = time.monotonic() - began
        late = await poll_async(runner.run_once, lambda r: r.outcome is not Outcome.STUCK, 5)
        assert late.recovered, late
        assert (late.outcome, late.stuck_pid) == (Outcome.SLOW, pid)
        # The worker's own clock saw the whole freeze, then the steps left after the thaw.
        assert frozen_for - 0.5 < late.latency < time.monotonic() - began
        # A stuck worker is retired once it answers: reaped, not a zombie.
        assert not psutil.pid_exists(pid)
        assert runner.worker_pid is None
        after = await runner.run_once()
        assert after.outcome is Outcome.OK
        assert after.stuck_pid is None
        assert runner.worker_pid not in (None, pid)
        await runner.close()
        assert ticker.stop() < 0.5

    asyncio.run(scenario())
    assert child_pids() == []


def test_close_leaves_a_stuck_child_that_dies_on_thaw(
    loop_mount: LoopFs, caplog: pytest.LogCaptureFixture
) -> None:
    mount = str(loop_mount.mount)

    async def scenario() -> int:
        runner = ProbeRunner(mount, soft_deadline=SOFT, hard_deadline=HARD)
        run("fsfreeze", "-f", mount)
        try:
            stuck = await runner.run_once()
            assert stuck.stuck_pid is not None
            began = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="agent.workers.probe"):
                await runner.close(grace=0.2)
            assert time.monotonic() - began < 1.0
            assert f"leaving probe worker {stuck.stuck_pid}" in caplog.text
            assert runner.worker_pid is None
        finally:
            thaw(mount)
        # The SIGKILL sent by close() lands once the freeze ends.
        deadline = time.monotonic() + 5
        while psutil.pid_exists(stuck.stuck_pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return stuck.stuck_pid

    pid = asyncio.run(scenario())
    assert not psutil.pid_exists(pid)


def test_close_kills_a_probe_in_flight(loop_mount: LoopFs) -> None:
    async def scenario() -> ProbeResult:
        runner = ProbeRunner(str(loop_mount.mount), soft_deadline=SOFT, hard_deadline=HARD)
        check = asyncio.create_task(runner.run_once())
        while runner.worker_pid is None:
            await asyncio.sleep(0)
        await runner.close()
        return await check

    result = asyncio.run(scenario())
    assert result.outcome is Outcome.FAILED
    assert "exited with -9" in result.error
    assert child_pids() == []


def test_read_only_mount_gets_a_read_probe(loop_mount: LoopFs) -> None:
    (loop_mount.mount / "canary.txt").write_text("hello\n")
    run("mount", "-o", "remount,ro", str(loop_mount.mount))

    async def probe() -> ProbeResult:
        runner = ProbeRunner(str(loop_mount.mount), soft_deadline=SOFT, hard_deadline=HARD)
        try:
            return await runner.run_once()
        finally:
            await runner.close()

    result = asyncio.run(probe())
    assert result.outcome is Outcome.OK, result.error
    assert result.mode == "read"
    assert [name for name, _ in result.steps] == ["statvfs", "list", "read"]
    assert not (loop_mount.mount / PROBE_DIR).exists()


def test_missing_mount_is_a_failed_probe_from_a_worker_that_stays(tmp_path: Path) -> None:
    async def probe_twice() -> tuple[list[ProbeResult], set[int | None]]:
        runner = ProbeRunner(str(tmp_path / "gone"))
        results, workers = [], set()
        for _ in range(2):
            results.append(await runner.run_once())
            workers.add(runner.worker_pid)
        await runner.close()
        return results, workers

    results, workers = asyncio.run(probe_twice())
    for result in results:
        assert (result.outcome, result.failed_step) == (Outcome.FAILED, "statvfs")
        assert result.error.startswith("ENOENT")
    # The filesystem's error is a report like any other: the worker is fine.
    assert len(workers) == 1 and None not in workers
    assert child_pids() == []


def test_dead_worker_is_failed_and_replaced_at_the_next_probe(loop_mount: LoopFs) -> None:
    async def scenario() -> None:
        runner = ProbeRunner(str(loop_mount.mount), soft_deadline=SOFT, hard_deadline=HARD)
        assert (await runner.run_once()).outcome is Outcome.OK
        pid = runner.worker_pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        failed = await runner.run_once()
        assert failed.outcome is Outcome.FAILED
        assert "exited with -9 without a report" in failed.error
        # Replaced at the next probe, not straight away.
        assert runner.worker_pid is None
        assert child_pids() == []
        assert (await runner.run_once()).outcome is Outcome.OK
        assert runner.worker_pid not in (None, pid)
        await runner.close()

    asyncio.run(scenario())
    assert child_pids() == []


def test_garbage_answer_is_failed_and_the_worker_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    garbage = "import sys\nfor _ in sys.stdin: print('garbage', flush=True)"
    monkeypatch.setattr(
        "agent.workers.probe.python_argv", lambda *_args: [sys.executable, "-c", garbage]
    )

    async def scenario() -> None:
        runner = ProbeRunner(str(tmp_path), soft_deadline=SOFT, hard_deadline=HARD)
        # Each probe gets a fresh worker, and none is left running in between.
        for _ in range(2):
            result = await runner.run_once()
            assert result.outcome is Outcome.FAILED
            assert "answered 'garbage' instead of a report" in result.error
            assert runner.worker_pid is None
            assert child_pids() == []
        await runner.close()

    asyncio.run(scenario())
