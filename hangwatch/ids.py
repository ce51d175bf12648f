"""Time-ordered unique ids (ULIDs) for events and failovers.

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
