"""`rules check`: replaying saved logs of every format, and the two output formats."""

import json

import pytest

from agent.kmsg.replay import Firing, check_file, format_firings, replay
from agent.kmsg.rules import load_rules

RULES = load_rules()

MIXED = b"""\
6,100,5000000,-;XFS (sda1): Mounting V5 Filesystem
 SUBSYSTEM=block
 DEVICE=b8:1
3,101,5000100,-;XFS (sda1): log I/O error -5
 SUBSYSTEM=block
[  123.456789] Buffer I/O error on dev sdb, logical block 0, lost async page write
Jul 14 10:25:59 h kernel: [6996.762794] print_req_error: critical medium error, dev sdf, sector 18
Jul 14 10:25:59 host multipathd[1]: sdf: failing path
INFO: task dd:77 blocked for more than 120 seconds.
"echo 0 > /proc/sys/kernel/hung_task_timeout_secs" disables this message.
Call Trace:
 ext4_writepages+0x1/0x2
[Mon Sep 27 11:20:03 2021] nfs: server filer not responding, still trying
"""


@pytest.fixture
def mixed(tmp_path):
    path = tmp_path / "kern.log"
    path.write_bytes(MIXED)
    return path


def test_check_file_reports_start_lines(mixed):
    firings = check_file(mixed, RULES, device_to_mount={"sdb": "/srv/b"}.get)
    assert [(f.line, f.rule, f.kind, f.severity, f.device, f.mount) for f in firings] == [
        (4, "xfs_io_error", "XFS_ERROR", "error", "sda1", None),
        (6, "buffer_io_error", "BLOCK_IO_ERROR", "error", "sdb", "/srv/b"),
        (7, "block_io_error", "BLOCK_IO_ERROR", "error", "sdf", None),
        (9, "hung_task", "HUNG_TASK", "error", None, None),
        (13, "nfs_not_responding", "NFS_NOT_RESPONDING", "error", "filer", None),
    ]


def test_comment_lines_are_skipped_and_keep_line_numbers():
    lines = [
        b"# an operator's note: 'Aborting journal on device sdc1-8.' came next\n",
        b"Aborting journal on device sdc1-8.\n",
    ]
    firings, malformed = replay(lines, RULES)
    assert [(f.line, f.rule) for f in firings] == [(2, "ext4_journal_abort")]
    assert malformed == 0


def test_orphan_continuation_and_bad_lines_are_malformed():
    lines = [b" SUBSYSTEM=block\n", b"\xff\xfe\n", b"x" * 70000 + b"\n", b"ok line\n"]
    firings, malformed = replay(lines, RULES)
    assert (firings, malformed) == ([], 3)


def test_endless_line_does_not_shift_numbers(tmp_path):
    path = tmp_path / "big.log"
    path.write_bytes(b"y" * (3 * 1024 * 1024) + b"\nAborting journal on device sdc1-8.\n")
    (firing,) = check_file(path, RULES)
    assert (firing.line, firing.device) == (2, "sdc1")


def test_json_output_is_one_object_per_line_with_stable_keys(mixed):
    text = format_firings(check_file(mixed, RULES), "json")
    rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 5
    assert all(
        list(row) == ["line", "rule", "kind", "severity", "device", "mount", "summary"]
        for row in rows
    )
    assert rows[0]["device"] == "sda1" and rows[0]["mount"] is None


def test_table_output():
    firing = Firing(3, "hung_task", "HUNG_TASK", "error", None, "/srv", "INFO: task x:1 blocked")
    lines = format_firings([firing]).splitlines()
    assert lines[0].split() == ["LINE", "RULE", "KIND", "SEVERITY", "DEVICE", "MOUNT", "SUMMARY"]
    assert lines[1].split()[:6] == ["3", "hung_task", "HUNG_TASK", "error", "-", "/srv"]
    assert lines[1].endswith("INFO: task x:1 blocked")
    assert format_firings([], "json") == ""
