"""Pages of a listing: page_size, page_token, next_page_token, and a byte budget.

A page token carries the sort key of the last record a page held, and a fingerprint
of the request it answered: a token is only good for the same query (page_size may
change between pages). Store queries are "records after this key, at most n", which
any backend can answer with an index.

A page stops short of PAGE_BYTES: many large records split over several pages, and a
single record larger than that (stored before ingest limits existed) is left out with
a logged reason, so no record breaks a listing for everyone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf.message import Message

from hangwatch.errors import Invalid
from hangwatch.grpcopts import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

PAGE_BYTES = MAX_MESSAGE_BYTES // 2
# What each record adds to a response besides itself (tag and length).
_FRAMING = 8
_INTEGER = 2**63

# A record's sort key: a few strings and numbers, as the store orders by them.
Key = tuple[str | int | float, ...]


class Pager:
    """One page of one listing, from its request's page_size and page_token."""

    def __init__(
        self, request: Any, default: int, maximum: int, key: Sequence[type] = (str,)
    ) -> None:
        """`request` is a List request (it has page_size and page_token); `key` gives the
        types of the sort key its records are paged by."""
        if request.page_size > maximum:
            raise Invalid("page_size", f"{request.page_size} is above the limit {maximum}")
        self.size: int = request.page_size or default
        self._query = _fingerprint(request)
        token: str = request.page_token
        self.after: Key | None = _decode(token, self._query, tuple(key)) if token else None

    def beyond(self, key: Key) -> bool:
        """Whether a record of a listing in ascending key order belongs after the token
        (for listings the handler pages in memory)."""
        return self.after is None or key > self.after

    def fill(self, records: Iterable[tuple[Key, Message]]) -> tuple[list[Any], str]:
        """The page and its next_page_token: records in order, cut at `size` and at
        PAGE_BYTES. Give it one record more than `size` if there is one, so the token
        is set exactly when something is left."""
        page: list[Any] = []
        used = 0
        more = False
        last: Key | None = None
        for key, record in records:
            if len(page) == self.size:
                more = True
                break
            size = record.ByteSize() + _FRAMING
            if size > PAGE_BYTES:
                log.error(
                    "a %s record (%s) is %d bytes, more than a page holds: left out",
                    record.DESCRIPTOR.name,
                    ", ".join(str(k) for k in key)[:200],
                    size,
                )
                last = key
                continue
            if used + size > PAGE_BYTES:
                more = True
                break
            page.append(record)
            used += size
            last = key
        token = _encode(last, self._query) if more and last is not None else ""
        return page, token


def _fingerprint(request: Message) -> str:
    query = type(request)()
    query.CopyFrom(request)
    query.ClearField("page_size")
    query.ClearField("page_token")
    return hashlib.sha256(query.SerializeToString(deterministic=True)).hexdigest()[:16]


def _encode(key: Key, query: str) -> str:
    raw = json.dumps({"after": list(key), "query": query}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode(token: str, query: str, types: tuple[type, ...]) -> Key:
    problem = "is not a page token of this listing"
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error, UnicodeError):
        raise Invalid("page_token", problem) from None
    if not isinstance(data, dict) or data.get("query") != query:
        raise Invalid(
            "page_token",
            f"{problem}: repeat the request that returned it, changing only page_token",
        )
    after = data.get("after")
    if not isinstance(after, list) or len(after) != len(types):
        raise Invalid("page_token", problem)
    for value, kind in zip(after, types, strict=True):
        fits = type(value) is kind or (kind is float and type(value) is int)
        if not fits or (isinstance(value, int) and not -_INTEGER <= value < _INTEGER):
            raise Invalid("page_token", problem)
    return tuple(after)
