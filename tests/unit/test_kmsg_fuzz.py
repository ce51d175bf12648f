"""Whatever bytes arrive, parsing and classification neither crash nor hang."""

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.kmsg.classifier import KmsgClassifier
from agent.kmsg.record import KmsgRecord, Malformed, parse_kmsg, parse_line
from agent.kmsg.replay import replay
from agent.kmsg.rules import load_rules

RULES = load_rules()
KERNELISH = st.sampled_from(
    [
        b"INFO: task a:1 blocked for more than 5 seconds.",
        b"Call Trace:",
        b" <TASK>",
        b" xfs_ilock+0x5c/0x2a0 [xfs]",
        b" </TASK>",
        b"XFS (dm-0): log I/O error -5",
        b" SUBSYSTEM=block",
        b"6,1,2,-;EXT4-fs error (device sda1): x",
        b"[  1.0] nfs: server x not responding",
        b"watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [a:1]",
    ]
)
LINES = st.lists(st.one_of(st.binary(max_size=300), KERNELISH), max_size=40)


@given(st.binary(max_size=2000))
def test_parse_kmsg_never_raises(data):
    assert isinstance(parse_kmsg(data), KmsgRecord | Malformed)


@given(st.one_of(st.binary(max_size=2000), st.text(max_size=2000)))
def test_parse_line_never_raises(line):
    assert isinstance(parse_line(line), KmsgRecord | Malformed)


@given(st.binary(min_size=1, max_size=200).filter(lambda b: _invalid_utf8(b)))
def test_invalid_utf8_is_malformed(data):
    assert isinstance(parse_line(data), Malformed)


def _invalid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(string.ascii_letters.encode()))
def test_one_mib_lines(char):
    line = bytes([char]) * (1024 * 1024)
    assert isinstance(parse_line(line), Malformed)
    assert isinstance(parse_kmsg(b"6,1,2,-;" + line), Malformed)
    firings, malformed = replay([line, b"XFS (sda1): log I/O error -5\n"], RULES)
    assert malformed == 1
    assert [f.line for f in firings] == [2]


@given(LINES)
def test_replay_of_random_lines(lines):
    firings, malformed = replay([line + b"\n" for line in lines], RULES)
    assert malformed <= len(lines)
    assert all(1 <= f.line <= len(lines) for f in firings)


@given(st.lists(st.integers(min_value=0, max_value=10), min_size=1, max_size=30))
def test_orphan_continuations_are_malformed(gaps):
    lines = []
    for gap in gaps:
        if gap == 0:
            lines.append(b" DEVICE=b8:0\n")
        else:
            lines.append(b"6,%d,1,-;sd 0:0:0:0: [sda] ok\n" % gap)
    _, malformed = replay(lines, RULES)
    assert malformed == _orphans(lines)


def _orphans(lines: list[bytes]) -> int:
    """Continuation lines before the first record have nothing to attach to."""
    count, held = 0, False
    for line in lines:
        if line.startswith(b" "):
            count += 0 if held else 1
        else:
            held = True
    return count


@given(st.lists(st.integers(min_value=0, max_value=1 << 40), max_size=50))
def test_sequence_gaps_and_reordering(seqs):
    classifier = KmsgClassifier(RULES, clock=lambda: 0.0)
    for seq in seqs:
        classifier.feed(parse_kmsg(b"3,%d,%d,-;XFS (sda1): log I/O error -5\n" % (seq, seq)))
    classifier.flush()
    assert classifier.malformed == 0
