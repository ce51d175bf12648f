"""The kernel log: /dev/kmsg records through the rules, as signals.

Every record is also kept in a bounded ring (`recent`) for the evidence of a
confirmed lockup.

Also watches the kernel's hung-task counter (6.13+), which keeps counting after the
kernel stops printing reports (hung_task_warnings): a rising count with no report
is still a hung task somewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, Metric

from agent.kmsg.classifier import KmsgClassifier
from agent.kmsg.reader import Batch, KmsgReader, hung_task_detect_count
from agent.kmsg.recent import RecentKernelLog
from agent.kmsg.record import KmsgRecord
from agent.kmsg.rules import RuleSet
from agent.procfs.dstate import mounts_of_pid
from agent.procfs.mountinfo import DeviceMap
from agent.signals import Kind, Severity, Signal
from agent.sources.base import Emit, Source

log = logging.getLogger(__name__)


class KmsgSource(Source):
    name = "kmsg"

    def __init__(
        self,
        rules: RuleSet,
        devices: DeviceMap,
        *,
        path: str,
        from_start: bool,
        kernel_only: bool,
        own_pids: Callable[[int], str | None] = lambda _: None,
        interval: float = 1.0,
        proc_root: str = "/proc",
    ) -> None:
        """`own_pids` maps the agent's own children (probe workers) to their mounts."""
        super().__init__(interval)
        self._devices = devices
        self._own_pids = own_pids
        self._reported = 0
        self._proc_root = proc_root
        self._reader = KmsgReader(path, from_start=from_start)
        self._classifier = KmsgClassifier(
            rules,
            device_to_mount=devices.mount_for_device,
            pid_to_mount=self._pid_mount,
            kernel_only=kernel_only,
        )
        self.records = 0
        self.lost = 0
        self.recent = RecentKernelLog()
        self._hung_count = hung_task_detect_count(Path(proc_root))

    @property
    def malformed(self) -> int:
        return self._classifier.malformed

    def collect(self) -> Iterator[Metric]:
        for name, doc, value in (
            ("records", "Kernel log records read", self.records),
            ("records_lost", "Kernel log records overwritten before they were read", self.lost),
            ("records_malformed", "Kernel log records that did not parse", self.malformed),
        ):
            yield CounterMetricFamily(f"hangwatch_kmsg_{name}_total", doc, value=value)

    def _pid_mount(self, pid: int) -> str | None:
        own = self._own_pids(pid)
        if own is not None:
            return own
        mounts = mounts_of_pid(pid, self._devices, self._proc_root)
        return mounts[0] if len(mounts) == 1 else None

    def _on_batch(self, batch: Batch, emit: Emit) -> None:
        self.records += len(batch.records)
        if batch.lost:
            self.lost += batch.lost
            emit(self._classifier.overrun(batch.lost))
        for record in batch.records:
            if isinstance(record, KmsgRecord):
                self.recent.add(record)
            for detection in self._classifier.feed(record):
                self._emit(detection.signal, emit)
        self.tick()

    async def run(self, emit: Emit) -> None:
        try:
            self._reader.start(lambda batch: self._on_batch(batch, emit))
        except OSError as exc:
            self.error = f"cannot read {exc.filename or 'the kernel log'}: {exc.strerror}"
            log.error("kmsg source: %s", self.error)
        try:
            while True:
                # Reports whose end never came are flushed by their time budget.
                for detection in self._classifier.tick():
                    self._emit(detection.signal, emit)
                self._check_hung_count(emit)
                if not self.error:
                    self.tick()
                await asyncio.sleep(self.interval)
        finally:
            self._reader.close()

    def _emit(self, signal: Signal, emit: Emit) -> None:
        if signal.kind == Kind.HUNG_TASK:
            self._reported += max(1, len(signal.stuck_tasks))
        emit(signal)

    def _check_hung_count(self, emit: Emit) -> None:
        """Hung tasks the kernel counted but did not report (or we did not read)."""
        count = hung_task_detect_count(Path(self._proc_root))
        if count is None or self._hung_count is None:
            self._hung_count = count
            return
        unreported = count - self._hung_count - self._reported
        self._reported = 0
        self._hung_count = count
        if unreported > 0:
            emit(
                Signal(
                    source=self.name,
                    kind=Kind.HUNG_TASK_COUNTED,
                    severity=Severity.WARNING,
                    summary=f"kernel counted {unreported} hung task(s) it did not report "
                    f"(hung_task_detect_count {count})",
                    at=time.time(),
                    attributes={"hung_task_detect_count": str(count)},
                )
            )
