"""Ids: time-ordered unique ids (ULIDs) for events and failovers, and host ids.

A ULID sorts by creation time and carries 80 random bits, so ids made on different
hosts, or on one host across reboots, do not collide and need no coordination.
"""

from __future__ import annotations

import hashlib
import os
import re
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
# A host id is a DNS name's worth of plain characters: it names the host in client
# certificates, file names and every SRE's terminal.
HOST_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
HOST_ID_RULE = "letters, digits, '.', '_', '-'; at most 253 characters"
# An event kind: UPPER_SNAKE_CASE, at most 64 characters (a metric label and a rule key).
KIND_RE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*$")
KIND_MAX = 64


def is_kind(value: str) -> bool:
    return len(value) <= KIND_MAX and KIND_RE.match(value) is not None


def new_ulid(now: float | None = None) -> str:
    """A 26-character Crockford base32 ULID: 48 bits of milliseconds, 80 random bits."""
    return _ulid(time.time() if now is None else now, os.urandom(10))


def derived_ulid(at: float, name: str) -> str:
    """A ULID of time `at` whose 80 other bits come from `name`: whoever derives it from
    the same facts gets the same id (a record made again after a crash is the same)."""
    return _ulid(at, hashlib.sha256(name.encode()).digest()[:10])


def _ulid(at: float, tail: bytes) -> str:
    value = (int(at * 1000) << 80) | int.from_bytes(tail, "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def is_ulid(text: str) -> bool:
    return bool(ULID_RE.match(text))


def host_id_problem(value: str) -> str | None:
    """Why `value` is not a host id, or None when it is one."""
    return (
        None if HOST_ID_RE.fullmatch(value) else f"{value[:80]!r} is not a host id ({HOST_ID_RULE})"
    )
