"""Records read back from a store that cannot be shown are skipped, one at a time.

Ingest holds every message to `hangwatch.limits`, so what is stored now always has a
JSON view; a record stored before those checks may not (a Duration whose seconds and
nanos differ in sign). One such record must not stop every listing, watcher and
webhook that reads past it: each store backend asks `readable` of what it decodes and
leaves out, with a logged reason, what is not.
"""

from __future__ import annotations

import logging

from google.protobuf.message import Message

from hangwatch import limits
from hangwatch.errors import Invalid

log = logging.getLogger(__name__)

# Records already logged: a record is read again on every pass of a watcher.
_LOGGED: set[str] = set()
MAX_LOGGED = 10_000


def readable(message: Message, what: str) -> bool:
    """True when `message` can be shown; else logs (once) why `what` is left out."""
    try:
        limits.check_times(message)
    except Invalid as exc:
        if what not in _LOGGED and len(_LOGGED) < MAX_LOGGED:
            _LOGGED.add(what)
            log.error("%s is left out: %s (stored before ingest checked it)", what, exc)
        return False
    return True
