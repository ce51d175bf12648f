"""Record parsing: every shape of saved kernel log reduces to the kernel's own message."""

import pytest

from agent.kmsg.record import (
    MATCH_LIMIT,
    Format,
    KmsgRecord,
    Malformed,
    add_meta,
    parse_continuation,
    parse_kmsg,
    parse_line,
)

MSG = "XFS (dm-0): log I/O error -5"


def record(line: str | bytes) -> KmsgRecord:
    parsed = parse_line(line)
    assert isinstance(parsed, KmsgRecord), parsed
    return parsed


@pytest.mark.parametrize(
    ("line", "fmt", "usec"),
    [
        (MSG, Format.PLAIN, None),
        (f"[  123.456789] {MSG}", Format.DMESG, 123_456_789),
        (f"[505412.987970] {MSG}", Format.DMESG, 505_412_987_970),
        (f"871222.759484] {MSG}", Format.DMESG, 871_222_759_484),
        (f"[Mon Sep 27 11:20:03 2021] {MSG}", Format.DMESG, None),
        (f"[wo jul 28 05:19:43 2021] {MSG}", Format.DMESG, None),
        (f"[Sep27 10:00] {MSG}", Format.DMESG, None),
        (f"[  +0.000123] {MSG}", Format.DMESG, None),
        (f"Sep 27 10:00:00 host kernel: {MSG}", Format.SYSLOG, None),
        (f"Sep  7 10:00:00 host kernel: [  12.5] {MSG}", Format.SYSLOG, 12_500_000),
        (
            f"2025 Jun 18 07:12:22.363360 sonic ERR kernel: [ 1009.228833] {MSG}",
            Format.SYSLOG,
            1_009_228_833,
        ),
        (f"2024-11-17T15:41:58.123+01:00 host kernel: {MSG}", Format.SYSLOG, None),
        (
            f"Feb  2 16:33:20 <host> kernel: [2006540.556911] {MSG}",
            Format.SYSLOG,
            2_006_540_556_911,
        ),
        (f"23:54:39,681 INFO kernel:{MSG}", Format.SYSLOG, None),
        (f" kernel:[ 4796.249920] {MSG}", Format.SYSLOG, 4_796_249_920),
        (f"<0>[1401585.395801] {MSG}", Format.DMESG, 1_401_585_395_801),
        (f"kern  :err   : [  5.000001] {MSG}", Format.DMESG, 5_000_001),
        (f"> [    0.124941] {MSG}", Format.DMESG, 124_941),
        (f" | [  599.515700][T23028] {MSG}", Format.DMESG, 599_515_700),
        (f"  11745 [46223316.649832] {MSG}", Format.DMESG, 46_223_316_649_832),
        (f"    {MSG}", Format.PLAIN, None),
    ],
)
def test_prefixes_are_stripped(line, fmt, usec):
    parsed = record(line)
    assert parsed.text == MSG
    assert parsed.format is fmt
    assert parsed.usec == usec
    assert parsed.from_kernel


def test_caller_id_after_stamp():
    parsed = record("[  599.515700][T23028] oom-kill:constraint=CONSTRAINT_MEMCG")
    assert parsed.caller == "T23028"
    assert parsed.text == "oom-kill:constraint=CONSTRAINT_MEMCG"


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("2025 Jun 18 07:12:22.363360 sonic CRIT kernel: [ 1.0] x", 2),
        ("<3>[ 1.0] x", 3),
        ("kern  :warn  : [ 1.0] x", 4),
    ],
)
def test_level_from_prefix(line, level):
    assert record(line).level == level


def test_syslog_line_from_another_program_is_not_kernel():
    parsed = record("Jul  8 13:33:59 host multipathd[46030]: mpatha: remaining active paths: 0")
    assert not parsed.from_kernel
    assert parsed.text == "mpatha: remaining active paths: 0"


def test_raw_kmsg_line_in_a_saved_log():
    parsed = record("3,1234,5678901,-,caller=T42;EXT4-fs error (device sda1): x")
    assert parsed.format is Format.KMSG
    assert (parsed.facility, parsed.level, parsed.seq, parsed.usec) == (0, 3, 1234, 5678901)
    assert parsed.caller == "T42"
    assert parsed.prio == 3


def test_kmsg_read_with_continuation_lines():
    data = (
        b"6,339,5140900,-;sd 0:0:0:0: [sda] Attached SCSI disk\n"
        b" SUBSYSTEM=scsi\n DEVICE=+scsi:0:0:0:0\n"
    )
    parsed = parse_kmsg(data)
    assert isinstance(parsed, KmsgRecord)
    assert parsed.text == "sd 0:0:0:0: [sda] Attached SCSI disk"
    assert parsed.meta == {"SUBSYSTEM": "scsi", "DEVICE": "+scsi:0:0:0:0"}
    assert (parsed.facility, parsed.level, parsed.seq, parsed.flags) == (0, 6, 339, "-")


def test_kmsg_escapes_are_undone():
    parsed = parse_kmsg(b"4,1,2,-;CPU#6 Utilization:\\x0a\\x09#1 caf\\xc3\\xa9 back\\x5cslash\n")
    assert isinstance(parsed, KmsgRecord)
    assert parsed.text == "CPU#6 Utilization:\n\t#1 café back\\slash"


def test_user_facility_record():
    parsed = parse_kmsg(b"12,7,100,-;hello from userspace\n")
    assert isinstance(parsed, KmsgRecord)
    assert (parsed.facility, parsed.level) == (1, 4)
    assert not parsed.from_kernel


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"no header at all\n",
        b"6,1,2;missing flags\n",
        b"x,1,2,-;bad prio\n",
        b"99999,1,2,-;prio out of range\n",
        b"6,1,2,-;text\nnot a continuation\n",
        b"\xff\xfe,1,2,-;binary\n",
        b" KEY=VALUE\n",
    ],
)
def test_bad_kmsg_reads_are_malformed(data):
    assert isinstance(parse_kmsg(data), Malformed)


@pytest.mark.parametrize(
    "line",
    [b"\xff\xfe invalid utf-8", "nul\x00byte", "x" * (64 * 1024 + 1)],
)
def test_bad_lines_are_malformed(line):
    parsed = parse_line(line)
    assert isinstance(parsed, Malformed)
    assert parsed.reason
    assert len(parsed.excerpt) < 200


def test_long_line_is_capped_for_matching():
    parsed = record("[ 1.0] " + "a" * (MATCH_LIMIT * 2))
    assert len(parsed.text) == MATCH_LIMIT
    assert parsed.truncated


def test_continuation_helpers():
    assert parse_continuation(" DEVICE=b7:0\n") == ("DEVICE", "b7:0")
    assert parse_continuation(" not a pair") is None
    assert parse_continuation("DEVICE=b7:0") is None
    base = record("6,1,2,-;loop0: detected capacity change")
    assert add_meta(base, "DEVICE", "b7:0").meta == {"DEVICE": "b7:0"}
