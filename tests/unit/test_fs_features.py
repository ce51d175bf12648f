"""Filesystem features come from sysfs and /proc/fs only (a fake tree here)."""

from __future__ import annotations

from agent.host.inventory import fs_features


def test_ext4_features_options_and_counters(tmp_path):
    sys_root, proc_root = tmp_path / "sys", tmp_path / "proc"
    (sys_root / "fs/ext4/features").mkdir(parents=True)
    for name in ("fast_commit", "encryption"):
        (sys_root / "fs/ext4/features" / name).write_text("supported\n")
    (sys_root / "fs/ext4/dm-0").mkdir()
    (sys_root / "fs/ext4/dm-0/errors_count").write_text("2\n")
    (sys_root / "fs/ext4/dm-0/mb_stats").write_text("0\n")  # a tunable: not reported
    (proc_root / "fs/ext4/dm-0").mkdir(parents=True)
    (proc_root / "fs/ext4/dm-0/options").write_text("rw\ndata=ordered\njournal_checksum\n")
    assert fs_features("ext4", "dm-0", str(sys_root), str(proc_root)) == {
        "driver_features": "encryption,fast_commit",
        "errors_count": "2",
        "rw": "yes",
        "data": "ordered",
        "journal_checksum": "yes",
    }


def test_nothing_known_is_nothing_guessed(tmp_path):
    assert fs_features("xfs", "loop3", str(tmp_path), str(tmp_path)) == {}
    assert fs_features("tmpfs", None, str(tmp_path), str(tmp_path)) == {}
