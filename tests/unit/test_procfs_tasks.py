"""One task's /proc files (stat, wchan, stack), read from snapshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.procfs.tasks import parse_stat, read_stack, read_stat, read_wchan

FIXTURES = Path(__file__).parents[1] / "fixtures"


def test_proc_readers_parse_a_snapshot(tmp_path: Path) -> None:
    task = tmp_path / "77"
    task.mkdir()
    # A comm with ") " in it must not confuse the state field.
    (task / "stat").write_text("77 (odd) name) D 1 77 77 0 -1 4194560 0 0 0 0\n")
    (task / "wchan").write_text("percpu_rwsem_wait")
    (task / "stack").write_text(
        "[<0>] percpu_rwsem_wait+0x12f/0x160\n[<0>] mnt_want_write+0x21/0xa0\n"
    )
    stat = read_stat(str(tmp_path), 77)
    assert stat is not None
    assert (stat.comm, stat.state, stat.kernel_thread) == ("odd) name", "D", False)
    assert read_wchan(str(tmp_path), 77) == "percpu_rwsem_wait"
    assert read_stack(str(tmp_path), 77) == ("percpu_rwsem_wait", "mnt_want_write")


def test_proc_readers_tolerate_a_vanished_task(tmp_path: Path) -> None:
    assert read_stat(str(tmp_path), 78) is None
    assert read_wchan(str(tmp_path), 78) == ""
    assert read_stack(str(tmp_path), 78) == ()


def test_kernel_thread_is_told_by_its_flags() -> None:
    stat = read_stat(str(FIXTURES / "proc" / "storage1"), 211)
    assert stat is not None
    assert (stat.comm, stat.state, stat.kernel_thread) == ("jbd2/loop3-8", "D", True)


def test_wchan_zero_means_none(tmp_path: Path) -> None:
    (tmp_path / "79").mkdir()
    (tmp_path / "79" / "wchan").write_text("0")
    assert read_wchan(str(tmp_path), 79) == ""


@pytest.mark.parametrize("text", ["", "77 no parentheses D 1", "77 (short) D 1 2"])
def test_malformed_stat_is_refused_with_the_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a /proc/PID/stat line"):
        parse_stat(text)
