"""Rule files: validation, operator extension, keyword prefilter, and the shipped rules."""

import re

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.kmsg.keywords import required_literals
from agent.kmsg.rules import load_rules, merge_rules, parse_rules
from agent.signals import Severity
from hangwatch.errors import ConfigError

GOOD = """
[[rule]]
name = "xfs_shutdown"
pattern = 'XFS \\((?P<device>[^)]+)\\): .*Shutting down filesystem'
kind = "XFS_SHUTDOWN"
severity = "critical"
type = "permanent"
device_group = "device"
rate_limit = { count = 2, seconds = 30 }
"""


def rule_toml(**overrides: str) -> str:
    fields = {
        "name": '"r"',
        "pattern": "'x'",
        "kind": '"XFS_ERROR"',
        "severity": '"error"',
        "type": '"temporary"',
    }
    fields.update(overrides)
    body = "".join(f"{k} = {v}\n" for k, v in fields.items() if v)
    return f"[[rule]]\n{body}"


@pytest.fixture(scope="module")
def shipped():
    return load_rules()


def test_good_rule_parses():
    (rule,) = parse_rules(GOOD, "rules.toml")
    assert rule.severity is Severity.CRITICAL
    assert rule.permanent
    assert rule.device_group == "device"
    assert (rule.rate_limit.count, rule.rate_limit.seconds) == (2, 30.0)
    assert rule.keywords  # derived from the pattern


def test_error_names_file_rule_and_key():
    text = (
        GOOD
        + GOOD.replace('"xfs_shutdown"', '"a"')
        + GOOD.replace('"xfs_shutdown"', '"xfs_shutdown2"').replace('"critical"', '"fatal"')
    )
    with pytest.raises(ConfigError) as info:
        parse_rules(text, "rules.toml")
    assert str(info.value).startswith(
        "rules.toml: rule[2] ('xfs_shutdown2'): key 'severity': unknown severity 'fatal'"
    )


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        ({"name": ""}, "name", "missing"),
        ({"pattern": ""}, "pattern", "missing"),
        ({"pattern": "'('"}, "pattern", "invalid regex"),
        ({"kind": '"xfs_error"'}, "kind", "upper snake case"),
        ({"kind": "3"}, "kind", "expected a string, got an integer"),
        ({"severity": '"fatal"'}, "severity", "unknown severity 'fatal'"),
        ({"type": '"sometimes"'}, "type", "must be one of temporary, permanent, got 'sometimes'"),
        ({"clears": '"nfs"'}, "clears", "upper snake case"),
        ({"rate_limit": "5"}, "rate_limit", "expected a table"),
        ({"rate_limit": "{ count = 0, seconds = 1 }"}, "rate_limit.count", "greater than 0"),
        ({"rate_limit": "{ count = 1, seconds = -1 }"}, "rate_limit.seconds", "greater than 0"),
        ({"rate_limit": "{ count = 1 }"}, "rate_limit.seconds", "count = N, seconds = S"),
        ({"rate_limit": "{ count = true, seconds = 1 }"}, "rate_limit.count", "integer"),
        ({"device_group": '"dev"'}, "device_group", "no named group 'dev'"),
        ({"keywords": "[]"}, "keywords", "non-empty list"),
        ({"keywords": '[""]'}, "keywords", "non-empty list"),
    ],
)
def test_validation_errors(overrides, key, fragment):
    with pytest.raises(ConfigError) as info:
        parse_rules(rule_toml(**overrides), "ops.toml")
    message = str(info.value)
    label = "rule[0]" if overrides.get("name") == "" else "rule[0] ('r')"
    assert message.startswith(f"ops.toml: {label}: key '{key}': "), message
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[rule]\n", "ops.toml: not valid TOML"),
        ("rules = []\n", "ops.toml: unknown key 'rules' (known here: rule)"),
        ("rule = 3\n", "ops.toml: key 'rule': expected a list"),
        ("rule = [1]\n", "ops.toml: key 'rule[0]': expected a table"),
        (rule_toml(colour='"red"'), "ops.toml: rule[0] ('r'): unknown key 'colour'"),
        (
            rule_toml(rate_limit="{ count = 1, per = 1 }"),
            "ops.toml: rule[0] ('r'): unknown key 'rate_limit.per'",
        ),
        (rule_toml() + rule_toml(), "ops.toml: key 'rule': rule[1] repeats the name 'r'"),
    ],
)
def test_file_level_errors(text, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        parse_rules(text, "ops.toml")


def test_bad_operator_file_is_named_with_rule_and_key(tmp_path):
    path = tmp_path / "20-site.toml"
    path.write_text(rule_toml(name='"site_rule"', severity='"loud"'))
    with pytest.raises(ConfigError) as info:
        load_rules([path])
    assert str(info.value).startswith(f"{path}: rule[0] ('site_rule'): key 'severity': ")


def test_operator_files_replace_and_extend(tmp_path):
    first = tmp_path / "10-site.toml"
    first.write_text(
        rule_toml(name='"hung_task"', pattern="'blocked for more than'", severity='"critical"')
        + rule_toml(name='"site_rule"', pattern="'hangwatch-site-test'")
    )
    second = tmp_path / "20-site.toml"
    second.write_text(rule_toml(name='"site_rule"', pattern="'replaced-again'"))
    shipped = load_rules()
    rules = load_rules([first, second])
    names = [r.name for r in rules.rules]
    assert names[: len(shipped.rules)] == [r.name for r in shipped.rules]
    assert names[-1] == "site_rule"
    assert len(names) == len(shipped.rules) + 1
    by_name = {r.name: r for r in rules.rules}
    assert by_name["hung_task"].severity is Severity.CRITICAL
    assert by_name["site_rule"].pattern.pattern == "replaced-again"


def test_only_operator_rules(tmp_path):
    path = tmp_path / "only.toml"
    path.write_text(rule_toml())
    assert [r.name for r in load_rules([path], shipped=False).rules] == ["r"]


def test_unreadable_file_is_named(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=re.escape(f"{missing}: no such config file")):
        load_rules([missing])


def test_merge_keeps_order():
    base = parse_rules(rule_toml(name='"a"') + rule_toml(name='"b"'), "base")
    extra = parse_rules(rule_toml(name='"c"') + rule_toml(name='"a"', kind='"OOM"'), "extra")
    merged = merge_rules(base, extra)
    assert [(r.name, r.kind) for r in merged] == [
        ("a", "OOM"),
        ("b", "XFS_ERROR"),
        ("c", "XFS_ERROR"),
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"XFS \((?P<d>[^)]+)\): log I/O error", ("): log I/O error",)),
        (r"nfs: server (?P<s>\S+) not responding", (" not responding",)),
        (
            r"Watchdog detected hard LOCKUP|not syncing: Hard LOCKUP",
            ("Watchdog detected hard LOCKUP", "not syncing: Hard LOCKUP"),
        ),
        (r"abc?defgh", ("defgh",)),
        (r"x(?:optional group)?yz", None),
        (r"\x41\x42 literal tail", (" literal tail",)),
        (r"(?i)case insensitive", None),
        (r"(?=lookahead)xy", None),
        (r"ab|alternatives", None),
        (r"short|alternatives", ("short", "alternatives")),
        (r"Buffer I/O error on dev(?:ice)? ", ("Buffer I/O error on dev",)),
        (r"a{2}bcdef", ("bcdef",)),
        (r"[abc]+ literal( here)", (" literal",)),
    ],
)
def test_required_literals(pattern, expected):
    assert required_literals(pattern) == expected


# Lines in the kernel's formats that the rules were not written from.
@pytest.mark.parametrize(
    ("text", "rules", "device"),
    [
        ("INFO: task mysqld:4242 blocked for more than 241 seconds.", {"hung_task"}, None),
        (
            "XFS (sdb1): Corruption of in-memory data (0x8) detected at"
            " xfs_trans_cancel+0x11c/0x130 [xfs] (fs/xfs/xfs_trans.c:1098).  Shutting down"
            " filesystem.",
            {"xfs_shutdown"},
            "sdb1",
        ),
        (
            'XFS (sdb1): metadata I/O error in "xfs_buf_ioend+0x1ae/0x5c0 [xfs]" at daddr 0x2'
            " len 1 error 5",
            {"xfs_io_error"},
            "sdb1",
        ),
        (
            "XFS (dm-3): Log I/O Error (0x2) detected at xlog_ioend_work+0x6e/0x70 [xfs]"
            " (fs/xfs/xfs_log.c:1378).  Shutting down filesystem.",
            {"xfs_shutdown", "xfs_io_error"},
            "dm-3",
        ),
        (
            "XFS (nvme0n1p3): User initiated shutdown (0x2) received. Shutting down filesystem",
            {"xfs_shutdown"},
            "nvme0n1p3",
        ),
        (
            "XFS (sda1): Metadata CRC error detected at xfs_agf_read_verify+0x1f/0x110 [xfs],"
            " xfs_agf block 0x1",
            {"xfs_corruption"},
            "sda1",
        ),
        (
            "XFS: kworker/u8:1(123) possible memory allocation deadlock size 32768 in"
            " kmem_alloc (mode:0x2400240)",
            {"xfs_alloc_deadlock"},
            None,
        ),
        (
            "I/O error, dev nvme0n1, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio"
            " class 2",
            {"block_io_error"},
            "nvme0n1",
        ),
        ("end_request: I/O error, dev sdc, sector 123456", {"block_io_error"}, "sdc"),
        (
            "critical target error, dev dm-4, sector 88 op 0x0:(READ) flags 0x0 phys_seg 1"
            " prio class 0",
            {"block_io_error"},
            "dm-4",
        ),
        (
            "Buffer I/O error on dev md127, logical block 9, lost async page write",
            {"buffer_io_error"},
            "md127",
        ),
        (
            "nvme0n1: Read(0x2) @ LBA 1234, 8 blocks, Unrecovered Read Error (sct 0x2 / sc"
            " 0x81) DNR ",
            {"nvme_io_error"},
            "nvme0n1",
        ),
        (
            "nvme nvme0: I/O tag 12 (100c) opcode 0x1 (Write) QID 3 timeout, aborting"
            " req_op:WRITE(1) size:4096",
            {"nvme_timeout"},
            "nvme0",
        ),
        (
            "nvme nvme2: I/O tag 7 (0007) QID 0 timeout, reset controller",
            {"nvme_timeout_reset"},
            "nvme2",
        ),
        ("nvme nvme1: Removing after probe failure status: -19", {"nvme_controller_dead"}, "nvme1"),
        ("sd 3:0:0:0: [sdb] tag#17 timing out command, waited 180s", {"scsi_timeout"}, "sdb"),
        (
            "sd 3:0:0:0: [sdb] tag#5 FAILED Result: hostbyte=DID_TIME_OUT driverbyte=DRIVER_OK"
            " cmd_age=30s",
            {"scsi_command_failed", "scsi_timeout"},
            "sdb",
        ),
        (
            "sd 0:0:1:0: Device offlined - not ready after error recovery",
            {"scsi_device_offlined"},
            None,
        ),
        (
            "ata3.00: failed command: WRITE FPDMA QUEUED ... res"
            " 40/00:00:00:00:00/00:00:00:00:00/00 Emask 0x4 (timeout)",
            {"ata_timeout"},
            None,
        ),
        ("lockd: server 10.0.0.1 not responding, still trying", {"nfs_not_responding"}, "10.0.0.1"),
        ("nfs: server filer-2.example.net OK", {"nfs_recovered"}, "filer-2.example.net"),
        ("device-mapper: multipath: Failing path 8:32.", {"dm_multipath_path_fail"}, None),
        ("connection1:0: detected conn error (1020)", {"transport_path_down"}, None),
        ("md/raid:md0: Disk failure on sdc1, disabling device.", {"md_disk_failure"}, "md0"),
        (
            "md/raid10:md1: sdb: unrecoverable I/O read error for block 1234",
            {"md_read_error"},
            "md1",
        ),
        ("md/raid:md2: Cannot continue operation (2/4 failed).", {"md_array_failed"}, "md2"),
        (
            "EXT4-fs error (device nvme0n1p2) in ext4_reserve_inode_write:5764: Journal has"
            " aborted",
            {"ext4_error", "ext4_aborted_journal"},
            "nvme0n1p2",
        ),
        (
            "EXT4-fs (dm-1): failed to convert unwritten extents to written extents --"
            " potential data loss!  (inode 12, error -30)",
            {"ext4_fs_error"},
            "dm-1",
        ),
        ("JBD2: Detected IO errors while flushing file data on dm-1-8", {"jbd2_error"}, None),
        ("Aborting journal on device dm-1-8.", {"ext4_journal_abort"}, "dm-1"),
        ("EXT3-fs (sdb2): Remounting filesystem read-only", {"fs_readonly"}, "sdb2"),
        (
            "BTRFS error (device dm-0 state EA): bdev /dev/mapper/x errs: wr 1, rd 0, flush 0,"
            " corrupt 0, gen 0",
            {"btrfs_error"},
            "dm-0",
        ),
        (
            "BTRFS warning (device sda2): csum failed root 5 ino 257 off 0 csum 0x8941f998"
            " expected csum 0x00000000 mirror 1",
            {"btrfs_checksum"},
            "sda2",
        ),
        (
            "BTRFS: error (device vdb state A) in __btrfs_free_extent:3092: errno=-2 No such entry",
            {"btrfs_error"},
            "vdb",
        ),
        (
            "WARNING: CPU: 1 PID: 9 at fs/xfs/libxfs/xfs_bmap.c:4567"
            " xfs_bmapi_write+0x7b/0x5f0 [xfs]",
            {"xfs_warn_splat"},
            None,
        ),
        ("INFO: rcu_preempt detected stalls on CPUs/tasks:", {"rcu_stall"}, None),
        ("rcu: INFO: rcu_tasks detected stalls on tasks:", {"rcu_stall"}, None),
        ("NMI watchdog: Watchdog detected hard LOCKUP on cpu 5", {"hard_lockup"}, None),
        (
            "watchdog: BUG: soft lockup - CPU#0 stuck for 23s! [kworker/0:1:12]",
            {"soft_lockup"},
            None,
        ),
        (
            "Out of memory: Killed process 1234 (java) total-vm:8123456kB, anon-rss:123kB",
            {"oom_kill"},
            None,
        ),
        (
            "postgres invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP),"
            " order=0",
            {"oom_invoked"},
            None,
        ),
        # Benign lines, several of them near misses of the rules above.
        ("XFS (sda1): Mounting V5 Filesystem 1d5b6a2e-0c1f-4b7e-9a3e-0d2f1e0c9b8a", set(), None),
        ("XFS (sda1): Ending clean mount", set(), None),
        (
            "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.",
            set(),
            None,
        ),
        (
            "EXT4-fs (nvme0n1p5): re-mounted. Opts: errors=remount-ro. Quota mode: none.",
            set(),
            None,
        ),
        ("rcu: Hierarchical SRCU implementation.", set(), None),
        ("NMI watchdog: Enabled. Permanently consumes one hw-PMU counter.", set(), None),
        ("md/raid1:md0: active with 2 out of 2 mirrors", set(), None),
        ("Buffer I/O error on dev fd0, logical block 0, async page read", set(), None),
        (
            "I/O error, dev sr0, sector 0 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0",
            set(),
            None,
        ),
        (
            "operation not supported error, dev sda, sector 0 op 0x9:(WRITE_ZEROES) flags 0x0",
            set(),
            None,
        ),
        ("nvme nvme0: Shutdown timeout set to 10 seconds", set(), None),
        ("sd 0:0:0:0: [sda] Write Protect is off", set(), None),
        (
            "BTRFS info (device sda): bdev /dev/sda errs: wr 0, rd 0, flush 0, corrupt 1, gen 0",
            set(),
            None,
        ),
        ("workqueue: iomap_dio_complete_work hogged CPU for >10666us 4 times", set(), None),
    ],
)
def test_shipped_rules_on_unseen_lines(shipped, text, rules, device):
    found = shipped.match(text)
    assert {m.rule.name for m in found} == rules
    for m in found:
        group = m.rule.device_group
        if group and device:
            assert m.match[group] == device


def test_shipped_rules_are_documented(shipped):
    for rule in shipped.rules:
        assert rule.description, rule.name
        assert rule.keywords, f"{rule.name} runs on every line"


def test_fast_path_agrees_with_naive(shipped):
    lines = [
        "I/O error, dev sda, sector 1 XFS (sda): log I/O error -5",
        "EXT4-fs error (device sda1): x: Detected aborted journal",
        "nfs: server a not responding, still trying nfs: server a OK",
        "blocked for more than 5 seconds",
    ]
    for text in lines:
        fast = [m.rule.name for m in shipped.match(text)]
        assert fast == [m.rule.name for m in shipped.match_naive(text)]


def test_rules_check_refuses_a_bad_rules_file(tmp_path):
    log = tmp_path / "kern.log"
    log.write_text("Aborting journal on device sdc1-8.\n")
    bad = tmp_path / "ops.toml"
    bad.write_text(rule_toml(type='"sometimes"'))
    result = CliRunner().invoke(main, ["rules", "check", str(log), "--rules", str(bad)])
    assert result.exit_code == 2
    assert (
        f"error: {bad}: rule[0] ('r'): key 'type': must be one of temporary, permanent"
        in result.output
    )
