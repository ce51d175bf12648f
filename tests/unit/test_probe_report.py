"""A probe worker's answer read as a result: outcomes, steps, and what counts as garbage."""

from __future__ import annotations

import json

import pytest

from agent.workers.probe_report import Outcome, ProbeResult, parse_report


def _report(**fields: object) -> bytes:
    return (json.dumps({"mode": "write", "steps": [], **fields}) + "\n").encode()


def _parse(stdout: bytes, stderr: bytes = b"", returncode: int = 0) -> ProbeResult:
    return parse_report("/srv/mail", 1000.0, stdout, stderr, returncode, soft_deadline=0.5)


def test_report_within_soft_deadline_is_ok_with_its_steps() -> None:
    result = _parse(_report(steps=[["statvfs", 0.001], ["fsync", 0.002]]))
    assert result.outcome is Outcome.OK
    assert result.steps == (("statvfs", 0.001), ("fsync", 0.002))
    assert result.latency == pytest.approx(0.003)
    assert result.mode == "write"


def test_report_past_soft_deadline_is_slow() -> None:
    assert _parse(_report(steps=[["fsync", 0.6]])).outcome is Outcome.SLOW


def test_report_with_error_is_failed_with_errno_text() -> None:
    result = _parse(_report(failed_step="create", error="ENOSPC: No space left on device"))
    assert (result.outcome, result.failed_step) == (Outcome.FAILED, "create")
    assert result.error.startswith("ENOSPC")


@pytest.mark.parametrize("stdout", [b"", b"Traceback\n", b'{"steps": 3}\n', b"[]\n"])
def test_missing_or_malformed_report_is_failed_with_stderr_tail(stdout: bytes) -> None:
    result = _parse(stdout, b"Traceback...\nMemoryError\n", -9)
    assert result.outcome is Outcome.FAILED
    assert "exited with -9" in result.error
    assert "MemoryError" in result.error


def test_report_with_a_negative_step_is_failed() -> None:
    # A step cannot take negative time: the line is garbage, not a measurement.
    result = _parse(_report(steps=[["fsync", -0.1]]))
    assert result.outcome is Outcome.FAILED
    assert "instead of a report" in result.error
