"""Kernel records in, signals out: grouping, rules, rate limits and mount mapping.

Pure logic: the caller supplies records, the clock, and the two mappings to a monitored
mount (device name -> mount, pid -> mount), which need /proc and sysfs and live elsewhere.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from agent.kmsg.devices import device_in_text
from agent.kmsg.hung_task import Report, ReportGrouper
from agent.kmsg.record import KmsgRecord, Malformed, ParseResult
from agent.kmsg.rules import Rule, RuleMatch, RuleSet
from agent.signals import Kind, Severity, Signal
from hangwatch.kernelstack import is_frame

SOURCE = "kmsg"
MAX_SUMMARY = 240
MAX_ATTRIBUTE = 128


def _no_mount(_: object) -> str | None:
    return None


@dataclass(frozen=True)
class Detection:
    """A signal with the rule that raised it and where its first line came from."""

    signal: Signal
    rule: str
    # What the caller passed with the record (a line number on replay); else its seq.
    origin: int | None


class _RateLimiter:
    """At most `count` firings per `seconds` for each rule, on the records' own clock."""

    def __init__(self) -> None:
        self._fired: dict[str, deque[float]] = {}

    def allow(self, rule: Rule, at: float) -> bool:
        limit = rule.rate_limit
        if limit is None:
            return True
        fired = self._fired.setdefault(rule.name, deque())
        while fired and at - fired[0] >= limit.seconds:
            fired.popleft()
        if len(fired) >= limit.count:
            return False
        fired.append(at)
        return True


class KmsgClassifier:
    """Feed every record in order; call `tick()` now and then and `flush()` at the end."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        device_to_mount: Callable[[str], str | None] = _no_mount,
        pid_to_mount: Callable[[int], str | None] = _no_mount,
        clock: Callable[[], float] = time.time,
        kernel_only: bool = True,
        line_budget: int = 400,
        time_budget: float = 2.0,
    ) -> None:
        self._rules = rules
        self._device_to_mount = device_to_mount
        self._pid_to_mount = pid_to_mount
        self._clock = clock
        # Userspace may write to /dev/kmsg too (facility != 0): never let it pass for
        # the kernel, or any process could fake a filesystem lockup.
        self._kernel_only = kernel_only
        self._grouper = ReportGrouper(line_budget, time_budget)
        self._limiter = _RateLimiter()
        self.malformed = 0

    def feed(self, item: ParseResult, origin: int | None = None) -> list[Detection]:
        if isinstance(item, Malformed):
            self.malformed += 1
            return []
        now = self._clock()
        if not item.text or (self._kernel_only and not item.from_kernel):
            return self._reports(self._grouper.expire(now))
        if origin is None:
            origin = item.seq
        consumed, done = self._grouper.feed(item.text, now, origin, item.usec)
        found = self._reports(done)
        if not consumed and not is_frame(item.text):
            at = item.usec / 1e6 if item.usec is not None else now
            for hit in self._rules.match(item.text):
                if self._limiter.allow(hit.rule, at):
                    found.append(self._line_detection(hit, item, origin, now))
        return found

    def tick(self) -> list[Detection]:
        """Emits a report whose end never came once its time budget is spent."""
        return self._reports(self._grouper.expire(self._clock()))

    def flush(self) -> list[Detection]:
        """End of input: emits the report still being grouped, if any."""
        return self._reports(self._grouper.flush())

    def overrun(self, lost: int) -> Signal:
        """The signal for records the kernel overwrote before they were read."""
        return Signal(
            source=SOURCE,
            kind=Kind.KMSG_OVERRUN,
            severity=Severity.WARNING,
            summary=f"{lost} kernel log record(s) overwritten before they were read",
            at=self._clock(),
            attributes={"lost": str(lost)},
        )

    def _line_detection(
        self, hit: RuleMatch, record: KmsgRecord, origin: int | None, now: float
    ) -> Detection:
        rule = hit.rule
        device = hit.match[rule.device_group] if rule.device_group else None
        device = device or device_in_text(record.text)
        attributes = self._attributes(rule, hit)
        if record.seq is not None:
            attributes["seq"] = str(record.seq)
        signal = Signal(
            source=SOURCE,
            kind=rule.kind,
            severity=rule.severity,
            summary=record.text[:MAX_SUMMARY],
            at=now,
            mount=self._device_to_mount(device) if device else None,
            device=device,
            permanent=rule.permanent,
            lines=(record.text,),
            attributes=attributes,
        )
        return Detection(signal, rule.name, origin)

    def _reports(self, reports: list[Report]) -> list[Detection]:
        found = []
        for report in reports:
            at = report.usec / 1e6 if report.usec is not None else report.started_at
            for hit in self._rules.match(report.header):
                if self._limiter.allow(hit.rule, at):
                    found.append(self._report_detection(hit, report))
        return found

    def _report_detection(self, hit: RuleMatch, report: Report) -> Detection:
        rule = hit.rule
        devices = list(report.devices)
        named = hit.match[rule.device_group] if rule.device_group else None
        if named:
            devices.insert(0, named)
        mount = next(filter(None, (self._pid_to_mount(t.pid) for t in report.tasks)), None)
        mount = mount or next(filter(None, map(self._device_to_mount, devices)), None)
        attributes = self._attributes(rule, hit)
        summary = report.header
        if report.filesystem:
            attributes["filesystem"] = report.filesystem
            summary += f" [{report.filesystem}]"
        if report.workqueues:
            attributes["workqueue"] = report.workqueues[0]
        signal = Signal(
            source=SOURCE,
            kind=rule.kind,
            severity=rule.severity,
            summary=summary[:MAX_SUMMARY],
            at=report.started_at,
            mount=mount,
            device=devices[0] if devices else None,
            permanent=rule.permanent,
            lines=report.lines,
            attributes=attributes,
            stuck_tasks=report.tasks,
        )
        return Detection(signal, rule.name, report.origin)

    @staticmethod
    def _attributes(rule: Rule, hit: RuleMatch) -> dict[str, str]:
        attributes = {
            key: value[:MAX_ATTRIBUTE]
            for key, value in hit.match.groupdict().items()
            if value is not None
        }
        attributes["rule"] = rule.name
        if rule.clears:
            attributes["clears"] = rule.clears
        return attributes
