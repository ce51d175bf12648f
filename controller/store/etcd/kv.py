"""etcd v3 through its JSON gateway (etcd3gw): several members, transactions, and
optimistic read-check-write.

etcd3gw talks to one member. `EtcdKV` holds a client per configured member and sends
each request to the member that last answered, moving to the next one on a connection
error, a timeout or etcd's "unavailable" (a member without quorum). When every member
failed it raises `StoreUnavailable` naming each member and its error: a call never
hangs longer than one timeout per member.

A retried write is safe: every write here is a transaction whose comparisons fail when
its reads are out of date, so a request that did land the first time (its answer lost
to a timeout) fails them the second time instead of applying twice. The caller then
sees its own write as someone else's (an event id already stored, a StaleFailover
for its own step), which the next pass over the same state resolves.

`atomically` is the read-check-write loop every store mutation uses (the pattern of
etcd's own STM): the reads of one attempt are taken at one revision and recorded with
their mod_revision; the commit compares each of them, plus the leader key when the
write is fenced, and an attempt whose reads went stale runs again from fresh reads.
"""

from __future__ import annotations

import base64
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import etcd3gw
from etcd3gw import exceptions as gw

from hangwatch.errors import HangwatchError, NotLeader, StoreUnavailable

T = TypeVar("T")

# etcd's own default for --max-txn-ops: operations in one comparison or branch list.
DEFAULT_MAX_TXN_OPS = 128
# Conflicting writers (controllers, or the store thread and a migration) are rare:
# this many attempts with a short random pause covers bursts of them.
ATTEMPTS = 50


@dataclass(frozen=True)
class Entry:
    """One key as etcd returned it."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


class Fence(Protocol):
    """Leadership as fenced writes see it: the leader key and the term this controller
    holds now (None: not leader)."""

    @property
    def key(self) -> str: ...

    @property
    def term(self) -> int | None: ...


def encode(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def prefix_end(prefix: str) -> str:
    """The range end that covers every key starting with `prefix`."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return raw.decode()


def entries(response: dict[str, Any]) -> list[Entry]:
    """The keys of a range response (a plain one or one inside a transaction)."""
    return [
        Entry(
            key=base64.b64decode(kv["key"]).decode(),
            value=base64.b64decode(kv.get("value", "")),
            create_revision=int(kv.get("create_revision", 0)),
            mod_revision=int(kv.get("mod_revision", 0)),
        )
        for kv in response.get("kvs", [])
    ]


@dataclass
class Txn:
    """One etcd transaction being built: comparisons, and what runs on success and on
    failure (reads that explain the failure)."""

    compare: list[dict[str, Any]] = field(default_factory=list)
    success: list[dict[str, Any]] = field(default_factory=list)
    failure: list[dict[str, Any]] = field(default_factory=list)

    def unchanged(self, key: str, mod_revision: int) -> None:
        """The key is as it was read (mod_revision 0: it did not exist)."""
        self.compare.append(
            {"key": encode(key), "target": "MOD", "result": "EQUAL", "mod_revision": mod_revision}
        )

    def created_at(self, key: str, create_revision: int) -> None:
        self.compare.append(
            {
                "key": encode(key),
                "target": "CREATE",
                "result": "EQUAL",
                "create_revision": create_revision,
            }
        )

    def value_is(self, key: str, value: str | None) -> None:
        """The key holds `value` (None: it does not exist)."""
        if value is None:
            self.created_at(key, 0)
        else:
            self.compare.append(
                {"key": encode(key), "target": "VALUE", "result": "EQUAL", "value": encode(value)}
            )

    def put(self, key: str, value: bytes | str, lease: int = 0) -> None:
        put: dict[str, Any] = {"key": encode(key), "value": encode(value)}
        if lease:
            put["lease"] = lease
        self.success.append({"request_put": put})

    def delete(self, key: str) -> None:
        self.success.append({"request_delete_range": {"key": encode(key)}})

    def none_changed_under(self, prefix: str, revision: int) -> None:
        """No key under `prefix` was written (nor created) after `revision`."""
        self.compare.append(
            {
                "key": encode(prefix),
                "range_end": encode(prefix_end(prefix)),
                "target": "MOD",
                "result": "LESS",
                "mod_revision": revision + 1,
            }
        )

    def read_on_failure(self, key: str) -> None:
        self.failure.append({"request_range": {"key": encode(key)}})

    def size(self) -> int:
        """The longest of its three lists, which etcd's max_txn_ops bounds."""
        return max(len(self.compare), len(self.success), len(self.failure))

    def body(self) -> dict[str, Any]:
        return {"compare": self.compare, "success": self.success, "failure": self.failure}


class EtcdKV:
    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
        max_txn_ops: int = DEFAULT_MAX_TXN_OPS,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one etcd endpoint is needed")
        self.endpoints = tuple(endpoints)
        self.max_txn_ops = max_txn_ops
        self._clients = []
        for endpoint in endpoints:
            url = urlsplit(endpoint)
            self._clients.append(
                etcd3gw.client(
                    host=url.hostname or "",
                    port=url.port or 2379,
                    protocol=url.scheme,
                    ca_cert=ca_file or None,
                    cert_cert=cert_file or None,
                    cert_key=key_file or None,
                    timeout=timeout,
                    # etcd 3.4 serves the gateway at /v3/; naming it saves the /version
                    # round trip etcd3gw would otherwise make to find out.
                    api_path="/v3/",
                )
            )
        self._current = 0

    def close(self) -> None:
        for client in self._clients:
            client.session.close()

    # Requests.

    def request(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POSTs to /v3/`path` on the first member that answers."""
        errors = []
        for step in range(len(self._clients)):
            index = (self._current + step) % len(self._clients)
            client = self._clients[index]
            try:
                result: dict[str, Any] = client.post(client.get_url(path), json=body)
            except (gw.ConnectionFailedError, gw.ConnectionTimeoutError) as exc:
                errors.append(f"{self.endpoints[index]}: {_reason(exc)}")
                continue
            except gw.Etcd3Exception as exc:
                raise HangwatchError(f"etcd refused {path}: {_reason(exc)}") from None
            self._current = index
            return result
        raise StoreUnavailable("no etcd member answered: " + "; ".join(errors))

    def txn(self, txn: Txn) -> dict[str, Any]:
        return self.request("kv/txn", txn.body())

    def put(self, key: str, value: bytes | str) -> None:
        """An unconditional write (of a value only its one writer changes)."""
        self.request("kv/put", {"key": encode(key), "value": encode(value)})

    def delete(self, key: str) -> None:
        self.request("kv/deleterange", {"key": encode(key)})

    def get(self, key: str, revision: int = 0) -> Entry | None:
        found = entries(self.request("kv/range", _range(key, revision=revision)))
        return found[0] if found else None

    def get_many(self, keys: Iterable[str], revision: int = 0) -> tuple[dict[str, Entry], int]:
        """The keys that exist among `keys`, read at one revision, and that revision."""
        keys = list(keys)
        found: dict[str, Entry] = {}
        for start in range(0, len(keys), self.max_txn_ops):
            txn = Txn()
            for key in keys[start : start + self.max_txn_ops]:
                txn.success.append({"request_range": _range(key, revision=revision)})
            response = self.txn(txn)
            revision = revision or int(response["header"]["revision"])
            for item in response.get("responses", []):
                for entry in entries(item["response_range"]):
                    found[entry.key] = entry
        return found, revision

    def scan(
        self,
        prefix: str,
        *,
        start: str = "",
        end: str = "",
        limit: int = 0,
        descending: bool = False,
    ) -> list[Entry]:
        """Keys under `prefix` from `start` on and before `end` (default: all), in key
        order or its reverse, at most `limit` of them (0: all)."""
        body = _range(start or prefix, end or prefix_end(prefix))
        if limit:
            body["limit"] = limit
        if descending:
            body["sort_order"] = 2  # DESCEND
            body["sort_target"] = 0  # KEY
        return entries(self.request("kv/range", body))

    def scan_together(self, prefixes: Sequence[str]) -> list[list[Entry]]:
        """Every key under each prefix, all read at one revision."""
        txn = Txn()
        for prefix in prefixes:
            txn.success.append({"request_range": _range(prefix, prefix_end(prefix))})
        response = self.txn(txn)
        return [entries(item["response_range"]) for item in response.get("responses", [])]

    def count(self, prefix: str) -> int:
        body = _range(prefix, prefix_end(prefix))
        body["count_only"] = True
        return int(self.request("kv/range", body).get("count", 0))

    def revision(self) -> int:
        body = _range("\0")
        body["count_only"] = True
        return int(self.request("kv/range", body)["header"]["revision"])

    # Read-check-write.

    def atomically(self, build: Callable[[Reads, Txn], T], fence: Fence | None = None) -> T:
        """Runs `build` (reads through Reads, writes into Txn) and commits its writes if
        nothing it read changed meanwhile and, with a fence, leadership still holds in
        the term the writer saw; otherwise reads and builds again. `build` may raise to
        refuse (nothing is written)."""
        for attempt in range(ATTEMPTS):
            term = None
            if fence is not None:
                term = fence.term
                if term is None:
                    raise NotLeader("this controller is not the leader")
            reads = Reads(self)
            txn = Txn()
            result = build(reads, txn)
            if not txn.success:
                return result
            for key, mod_revision in reads.seen.items():
                txn.unchanged(key, mod_revision)
            for prefix in reads.scanned:
                txn.none_changed_under(prefix, reads.revision)
            if fence is not None and term is not None:
                txn.created_at(fence.key, term)
                txn.read_on_failure(fence.key)
            if txn.size() > self.max_txn_ops:
                raise HangwatchError(
                    f"one store change needs {txn.size()} operations, more than "
                    f"etcd's max_txn_ops ({self.max_txn_ops})"
                )
            response = self.txn(txn)
            if response.get("succeeded"):
                return result
            if fence is not None:
                leader = entries(response["responses"][0]["response_range"])
                if not leader or leader[0].create_revision != term:
                    raise NotLeader(f"leadership of term {term} has ended")
            time.sleep(random.uniform(0, min(0.05, 0.002 * 2**attempt)))
        raise StoreUnavailable(f"a store change conflicted {ATTEMPTS} times in a row")


class Reads:
    """What one attempt read, all at the revision of its first read; each key read is
    compared at commit (mod_revision unchanged, or still absent)."""

    def __init__(self, kv: EtcdKV) -> None:
        self._kv = kv
        self.revision = 0
        self.seen: dict[str, int] = {}
        self.scanned: list[str] = []
        self._found: dict[str, Entry] = {}

    def scan(self, prefix: str) -> list[Entry]:
        """Every key under `prefix`, at this attempt's revision; at commit none of them
        may have been written, and none added, since."""
        if not self.revision:
            self.revision = self._kv.revision()
        body = _range(prefix, prefix_end(prefix), self.revision)
        self.scanned.append(prefix)
        return entries(self._kv.request("kv/range", body))

    def get(self, key: str) -> Entry | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        """The keys that exist among `keys` (each read once per attempt)."""
        keys = list(dict.fromkeys(keys))
        missing = [k for k in keys if k not in self.seen]
        if missing:
            found, self.revision = self._kv.get_many(missing, self.revision)
            self._found.update(found)
            for key in missing:
                self.seen[key] = found[key].mod_revision if key in found else 0
        return {k: self._found[k] for k in keys if k in self._found}


def failure_reads(response: dict[str, Any]) -> dict[str, Entry]:
    """The keys a failed transaction's failure branch read, by key (absent: missing)."""
    found = {}
    for item in response.get("responses", []):
        for entry in entries(item.get("response_range", {})):
            found[entry.key] = entry
    return found


def _range(key: str, range_end: str = "", revision: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = {"key": encode(key)}
    if range_end:
        body["range_end"] = encode(range_end)
    if revision:
        body["revision"] = revision
    return body


def _reason(exc: gw.Etcd3Exception) -> str:
    """The gist of a failed request: urllib3's retry wrapper buries it in a long text."""
    text = (exc.detail_text or "").strip() or " ".join(str(a) for a in exc.args)
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if errno:
        return errno.group(0)
    if isinstance(exc, gw.ConnectionTimeoutError) or "timed out" in text:
        return "timed out"
    return text[:300] or type(exc).__name__
