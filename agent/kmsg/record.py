"""One kernel log record, from a /dev/kmsg read or from a line of a saved log.

Parsing never raises: input the parser cannot trust comes back as `Malformed`, which the
caller counts. Saved logs come in many shapes (dmesg with or without stamps, `dmesg -T`,
syslog and journald lines, quoted mail excerpts); every known prefix is stripped so the
rules only ever see the kernel's own message.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

# Longest text the rules look at: kernel records are at most ~1 KiB, so anything past this
# is noise that would only slow the regexes down.
MATCH_LIMIT = 8192
# Longer "lines" are not log lines at all (binary data, a file without newlines).
LINE_LIMIT = 64 * 1024

KERNEL_FACILITY = 0
USER_FACILITY = 1


class Format(enum.Enum):
    """Where a record came from, as far as the parser could tell."""

    KMSG = "kmsg"
    DMESG = "dmesg"
    SYSLOG = "syslog"
    PLAIN = "plain"


@dataclass(frozen=True, slots=True)
class KmsgRecord:
    """A kernel message with whatever the source told about it (None: not known)."""

    text: str
    format: Format
    facility: int | None = None
    level: int | None = None
    seq: int | None = None
    # Kernel monotonic clock at printk time, microseconds since boot.
    usec: int | None = None
    flags: str = ""
    caller: str | None = None
    # ` KEY=VALUE` continuation lines: device identities, never matched by rules.
    meta: Mapping[str, str] = field(default_factory=dict)
    truncated: bool = False

    @property
    def prio(self) -> int | None:
        if self.facility is None or self.level is None:
            return None
        return self.facility * 8 + self.level

    @property
    def from_kernel(self) -> bool:
        """False only when the source says a program other than the kernel wrote it."""
        return self.facility is None or self.facility == KERNEL_FACILITY


@dataclass(frozen=True, slots=True)
class Malformed:
    """Input that is not a record; `excerpt` is a short, printable view of it."""

    reason: str
    excerpt: str


ParseResult = KmsgRecord | Malformed


def _malformed(reason: str, data: bytes | str) -> Malformed:
    return Malformed(reason, repr(data[:80]))


_KMSG_HEADER = re.compile(r"(\d{1,4}),(\d{1,20}),(\d{1,20}),([^,;]{0,8})((?:,[^,;]*)*);")
_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_CONTINUATION = re.compile(r" ([A-Z][A-Z0-9_]*)=(.*)")


def _unescape(raw: bytes) -> str:
    """/dev/kmsg writes non-printable bytes (and UTF-8) as \\xNN; undo that."""
    if b"\\x" in raw:
        raw = _ESCAPE.sub(lambda m: bytes((int(m[1], 16),)), raw)
    return raw.decode("utf-8", "replace")


def _cap(text: str) -> tuple[str, bool]:
    if len(text) > MATCH_LIMIT:
        return text[:MATCH_LIMIT], True
    return text, False


def _kmsg_record(header: re.Match[str], body: bytes, meta: dict[str, str]) -> ParseResult:
    prio = int(header[1])
    if prio > 1023:
        return _malformed("priority out of range", header[0])
    caller = None
    for extra in header[5].split(",")[1:]:
        key, _, value = extra.partition("=")
        if key == "caller":
            caller = value
    text, truncated = _cap(_unescape(body).strip())
    return KmsgRecord(
        text=text,
        format=Format.KMSG,
        facility=prio >> 3,
        level=prio & 7,
        seq=int(header[2]),
        usec=int(header[3]),
        flags=header[4],
        caller=caller,
        meta=meta,
        truncated=truncated,
    )


def parse_kmsg(data: bytes) -> ParseResult:
    """Parses one read() of /dev/kmsg: a header line plus ` KEY=VALUE` lines."""
    if len(data) > LINE_LIMIT:
        return _malformed("record too long", data)
    first, _, rest = data.partition(b"\n")
    try:
        head_text = first[: first.find(b";") + 1].decode("ascii")
    except UnicodeDecodeError:
        return _malformed("header is not ASCII", data)
    header = _KMSG_HEADER.fullmatch(head_text) if head_text else None
    if header is None:
        return _malformed("no prio,seq,usec,flags; header", data)
    meta: dict[str, str] = {}
    for line in rest.split(b"\n"):
        if not line:
            continue
        pair = parse_continuation(_unescape(line))
        if pair is None:
            return _malformed("line after the record is not a KEY=VALUE continuation", data)
        meta[pair[0]] = pair[1]
    return _kmsg_record(header, first[len(head_text) :], meta)


def parse_continuation(line: str) -> tuple[str, str] | None:
    """Splits a ` KEY=VALUE` continuation line; None if `line` is not one."""
    match = _CONTINUATION.fullmatch(line.rstrip("\r\n"))
    return (match[1], match[2]) if match else None


def add_meta(record: KmsgRecord, key: str, value: str) -> KmsgRecord:
    """Attaches a continuation line read separately (saved raw logs) to its record."""
    return replace(record, meta={**record.meta, key: value})


# Saved-log prefixes, tried in order. Each removes one layer and may tell something.
_QUOTE = re.compile(r"[ \t]*(?:[>|][ \t]*)+(?=\S)")
_LINE_NUMBER = re.compile(r"[ \t]*\d+[ \t]+(?=\[\s*\d+\.\d+\])")
_PROG = r"(?:(?P<sev>[A-Za-z]+) )?(?P<prog>[A-Za-z][\w.\-/@]*)(?:\[\d+\])?: ?"
_SYSLOG = (
    # RFC 3164 and journalctl short/short-precise; SONiC puts the year first.
    re.compile(
        r"(?:<\d{1,3}>)?(?:\d{4} )?[A-Za-z]{3} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)? [^\s:]+ " + _PROG
    ),
    # RFC 3339 stamps (rsyslog high precision, journalctl short-iso).
    re.compile(
        r"(?:<\d{1,3}>)?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
        r" [^\s:]+ " + _PROG
    ),
    # Installer logs: "23:54:39,681 INFO kernel:msg".
    re.compile(r"\d\d:\d\d:\d\d(?:[.,]\d+)? " + _PROG),
    # Console broadcasts from syslogd: " kernel:[ 123.4] msg".
    re.compile(r"[ \t]*(?P<prog>kernel): ?"),
)
_SEVERITY_WORDS = {
    "emerg": 0,
    "alert": 1,
    "crit": 2,
    "err": 3,
    "warning": 4,
    "warn": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}
_PRIO = re.compile(r"<(\d{1,3})>")
_DMESG_X = re.compile(
    r"(kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7]) *:"
    r"(emerg|alert|crit|err|warn|notice|info|debug) *: ?"
)
_FACILITY_NAMES = [
    *("kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron"),
    *("authpriv", "ftp", *(f"local{i}" for i in range(8))),
]
_MONOTONIC = re.compile(r"\[\s*(\d+)\.(\d{1,9})\]|(\d+)\.(\d{6})\]")
# `dmesg -T` (any locale), `dmesg -H`, `dmesg -d`, and ISO stamps.
_OTHER_STAMP = re.compile(
    r"\[[^\[\]]{0,40}\d\d:\d\d(?::\d\d)?(?: \d{4})?\]|\[\s*[+<>]?\s*\d+\.\d+\]"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.,]\d+(?:Z|[+-]\d\d:?\d\d) "
)
_CALLER = re.compile(r" ?\[\s*([TC]\d+)\]")


def _usec(match: re.Match[str]) -> int:
    whole, frac = (match[1], match[2]) if match[1] is not None else (match[3], match[4])
    return int(whole) * 1_000_000 + int(frac.ljust(6, "0")[:6])


def _parse_text(line: str) -> KmsgRecord:
    fmt = Format.PLAIN
    facility: int | None = None
    level: int | None = None
    usec: int | None = None
    caller: str | None = None
    pos = 0

    def take(pattern: re.Pattern[str]) -> re.Match[str] | None:
        nonlocal pos
        match = pattern.match(line, pos)
        if match:
            pos = match.end()
        return match

    take(_QUOTE)
    take(_LINE_NUMBER)
    for syslog in _SYSLOG:
        match = take(syslog)
        if match:
            fmt = Format.SYSLOG
            facility = KERNEL_FACILITY if match["prog"] == "kernel" else USER_FACILITY
            level = _SEVERITY_WORDS.get((match.groupdict().get("sev") or "").lower())
            break
    prio = take(_PRIO)
    if prio:
        fmt, facility, level = Format.DMESG, int(prio[1]) >> 3, int(prio[1]) & 7
    named = take(_DMESG_X)
    if named:
        fmt, facility = Format.DMESG, _FACILITY_NAMES.index(named[1])
        level = _SEVERITY_WORDS[named[2]]
    stamp = take(_MONOTONIC)
    if stamp:
        fmt, usec = Format.DMESG if fmt is Format.PLAIN else fmt, _usec(stamp)
    elif take(_OTHER_STAMP):
        fmt = Format.DMESG if fmt is Format.PLAIN else fmt
    called = take(_CALLER)
    if called:
        caller = called[1]
    text, truncated = _cap(line[pos:].strip())
    return KmsgRecord(
        text=text,
        format=fmt,
        facility=facility,
        level=level,
        usec=usec,
        caller=caller,
        truncated=truncated,
    )


def parse_line(line: bytes | str) -> ParseResult:
    """Parses one line of a saved kernel log, whatever its format (detected per line)."""
    if len(line) > LINE_LIMIT:
        return _malformed("line too long", line)
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return _malformed("invalid UTF-8", line)
    line = line.rstrip("\r\n")
    if "\x00" in line:
        return _malformed("NUL byte in line", line)
    header = _KMSG_HEADER.match(line) if line[:1].isdigit() else None
    if header:
        return _kmsg_record(header, line[header.end() :].encode(), {})
    return _parse_text(line)
