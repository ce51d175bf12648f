"""Log lines: syslog priorities when stderr is the journal, fields in both formats."""

from __future__ import annotations

import json
import logging
import os
import sys

import pytest

from hangwatch import logs


def record(level: int, msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.makeLogRecord({"name": "agent.runner", "levelno": level, "msg": msg})
    rec.levelname = logging.getLevelName(level)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


@pytest.mark.parametrize(
    ("level", "priority"),
    [
        (logging.CRITICAL, 2),
        (logging.ERROR, 3),
        (logging.WARNING, 4),
        (logging.INFO, 6),
        (logging.DEBUG, 7),
    ],
)
def test_levels_map_to_the_syslog_priorities_journald_reads(level, priority):
    line = logs.formatter("human", in_journal=True).format(record(level, "x"))
    assert line.startswith(f"<{priority}>")
    assert logs.syslog_priority(level) == priority


def test_the_journal_stream_is_recognised_by_device_and_inode(tmp_path):
    with (tmp_path / "stderr").open("w") as stream:
        st = os.fstat(stream.fileno())
        assert logs.journal_stream(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not logs.journal_stream(stream, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not logs.journal_stream(stream, {})
        assert not logs.journal_stream(stream, {"JOURNAL_STREAM": "junk"})
        assert not logs.journal_stream(stream, {"JOURNAL_STREAM": "a:b"})


def test_a_stream_without_a_file_is_not_the_journal():
    import io

    assert not logs.journal_stream(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_every_line_of_a_traceback_keeps_the_records_priority():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        rec = record(logging.ERROR, "failover pass failed")
        rec.exc_info = sys.exc_info()
    lines = logs.formatter("human", in_journal=True).format(rec).split("\n")
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines), lines
    # journald stamps the time itself.
    assert lines[0] == "<3>ERROR   agent.runner: failover pass failed"


def test_json_lines_carry_fields_and_the_prefix_only_in_the_journal():
    rec = record(logging.WARNING, "/srv: OK -> LOCKED", host="m1", mount="/srv", group="mail")
    plain = logs.formatter("json", in_journal=False).format(rec)
    body = json.loads(plain)
    assert (body["level"], body["host"], body["mount"], body["group"]) == (
        "warning",
        "m1",
        "/srv",
        "mail",
    )
    journal = logs.formatter("json", in_journal=True).format(rec)
    assert journal == "<4>" + plain


def test_human_lines_end_with_their_fields():
    rec = record(logging.INFO, "promote sent", failover="01J", group="mail", reason="two words")
    line = logs.formatter("human", in_journal=False).format(rec)
    assert line.endswith(' promote sent failover=01J group=mail reason="two words"')
    assert "message=" not in line and "asctime=" not in line
