"""The lockup fixtures make real kernel state and always undo it (needs root)."""

from __future__ import annotations

import time

import psutil
import pytest
from lockups import SYSCTL, hung_task_reports, kmsg_tail, loop_fs, stuck_writer, task_state
from rootreq import require_root

from lab.scratchfs import MKFS, frozen, run

pytestmark = [pytest.mark.root, pytest.mark.timeout(60)]
HUNG_TASK_SETTINGS = ("hung_task_timeout_secs", "hung_task_warnings")


def hung_task_settings() -> list[str]:
    return [(SYSCTL / name).read_text().strip() for name in HUNG_TASK_SETTINGS]


def assert_gone(image: str, mount: str) -> None:
    assert image not in run("losetup", "-a").stdout
    assert mount not in run("findmnt", "-rn", "-o", "TARGET").stdout


@pytest.mark.parametrize("fstype", ["ext4", "xfs"])
def test_everything_is_undone_when_the_body_raises(fstype: str) -> None:
    require_root([MKFS[fstype][0]])
    settings = hung_task_settings()
    with pytest.raises(RuntimeError, match="boom"):  # noqa: SIM117 (nesting order is the point)
        with loop_fs(fstype) as fs, hung_task_reports(), frozen(fs.mount):
            with stuck_writer(fs.mount) as writer:
                assert run("findmnt", "-rn", "-o", "FSTYPE", str(fs.mount)).stdout.strip() == fstype
                raise RuntimeError("boom")
    assert_gone(str(fs.image), str(fs.mount))
    assert not fs.image.exists()
    assert not psutil.pid_exists(writer.pid)
    assert hung_task_settings() == settings


def test_frozen_stuck_writer_gets_a_real_hung_task_report(root: None) -> None:
    settings = hung_task_settings()
    with loop_fs() as fs, kmsg_tail() as kmsg, hung_task_reports(2), frozen(fs.mount):
        assert hung_task_settings() == ["2", "-1"]
        with stuck_writer(fs.mount) as writer:
            assert task_state(writer.pid) == ("D", writer.wchan)
            began = time.monotonic()
            report = kmsg.wait_for(
                rf"INFO: task sh:{writer.pid} blocked for more than 2 seconds", timeout=20
            )
            print(f"\nhung-task report {time.monotonic() - began:.1f}s after D state: {report}")
            print(f"writer wchan: {writer.wchan}")
            assert "percpu_rwsem" in writer.wchan
    assert hung_task_settings() == settings
    assert not psutil.pid_exists(writer.pid)
    assert_gone(str(fs.image), str(fs.mount))
