"""Logging to stderr: readable by default, JSON lines for log shippers, with the
priorities and fields journald and its readers understand.

Under systemd, stderr is a stream to journald, and `$JOURNAL_STREAM` holds that
stream's device and inode ("DEV:INO"). journald reads a leading `<N>` on a stream
line as the entry's syslog priority (sd-daemon(3), SyslogLevelPrefix=, on by
default) and parses nothing else on a stream, JSON included. So when stderr is the
journal every line (of either format) starts with its priority, and
`journalctl -p err` finds the errors; the human format then leaves the time out
(journald stamps each entry).

Fields that say what a line is about go in `extra=` on the calls that matter
(`host`, `mount`, `group`, `failover`): keys of the JSON object, `key=value` after
the human message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
HUMAN = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
# journald adds the time and the program to each entry.
HUMAN_IN_JOURNAL = "%(levelname)-7s %(name)s: %(message)s"


def syslog_priority(levelno: int) -> int:
    """The syslog priority (sd-daemon.h: SD_CRIT 2 ... SD_DEBUG 7) of a logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def journal_stream(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Whether `stream` is the journal stream systemd named in `$JOURNAL_STREAM`."""
    dev, sep, ino = environ.get("JOURNAL_STREAM", "").partition(":")
    if not sep:
        return False
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError):  # not a file (io.UnsupportedOperation), or not numbers
        return False


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The `extra=` fields of a record, as JSON-ready values."""
    return {
        key: value if isinstance(value, int | float | bool | str) else str(value)
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line; extra= fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class HumanFormatter(logging.Formatter):
    """The message, then its extra= fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = fields(record)
        if not extra:
            return text
        first, newline, rest = text.partition("\n")
        pairs = " ".join(f"{key}={_quoted(value)}" for key, value in extra.items())
        return f"{first} {pairs}{newline}{rest}"


class PriorityPrefix(logging.Formatter):
    """Starts every line of a record with its `<N>` priority: a traceback's lines are
    entries of their own in the journal, and each keeps the record's priority."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in self._inner.format(record).split("\n"))


def formatter(fmt: str, in_journal: bool) -> logging.Formatter:
    if fmt == "json":
        inner: logging.Formatter = JsonFormatter()
    else:
        inner = HumanFormatter(HUMAN_IN_JOURNAL if in_journal else HUMAN)
    return PriorityPrefix(inner) if in_journal else inner


def setup(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt, journal_stream(sys.stderr, os.environ)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _quoted(value: object) -> str:
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if not text or " " in text or '"' in text else text
