"""What every part of the etcd store shares: the connection, the key layout, the fence."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from controller.store.condition import StoreCondition
from controller.store.etcd.keys import Keys
from controller.store.etcd.kv import EtcdKV, Fence, Reads, Txn

T = TypeVar("T")


class EtcdBase:
    def __init__(self, kv: EtcdKV, prefix: str, fence: Fence | None = None) -> None:
        """`fence`: the election whose leadership fenced writes require; None writes
        without (a migration into an empty prefix, a single-controller setup)."""
        self._kv = kv
        self._keys = Keys(prefix)
        self._fence = fence
        # etcd refuses writes when its own quota is exhausted, not for a local disk:
        # it answers errors, which surface as StoreUnavailable, so this stays "not full".
        self.condition = StoreCondition(f"etcd {prefix}")

    def _change(self, build: Callable[[Reads, Txn], T]) -> T:
        """A write anyone may make (an agent's, a person's)."""
        return self._kv.atomically(build)

    def _leader_change(self, build: Callable[[Reads, Txn], T]) -> T:
        """A write only the leader makes: refused unless leadership holds in the term
        this controller saw, checked by etcd in the same transaction."""
        return self._kv.atomically(build, self._fence)

    @property
    def term(self) -> int:
        """The term fenced writes record (0 without a fence)."""
        term = None if self._fence is None else self._fence.term
        return term or 0

    def close(self) -> None:
        self._kv.close()
