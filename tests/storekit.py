"""Stores of either backend for tests that hold to the Store interface: several
instances on the same data stand for several controllers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from etcdkit import EtcdCluster

from controller.store.etcd.election import Election
from controller.store.etcd.kv import EtcdKV
from controller.store.etcd.store import EtcdStore
from controller.store.interface import Store
from controller.store.sqlite.store import SQLiteStore

BACKENDS = ("sqlite", "etcd")


@dataclass
class PinnedTerm:
    """Leadership as a writer saw it when it last checked (before a pause, say): the
    fence of a write whose local check passed but whose term may be over."""

    key: str
    term: int | None


class Stores:
    """Opens stores of one backend on one set of data. With etcd, each has its own
    connection and all write as the leader of a real election on the cluster."""

    def __init__(self, backend: str, tmp_path: Path, etcd: EtcdCluster | None = None) -> None:
        self.backend = backend
        self._path = tmp_path / "controller.db"
        self._etcd = etcd
        self.prefix = f"/test-{uuid.uuid4().hex[:12]}/"
        self._opened: list[Store] = []
        self.election: Election | None = None
        if etcd is not None:
            self.election = Election(
                self.kv(), self.prefix + "leader", "test", ttl=5, renew_deadline=3.0
            )
            self.election.start()
            assert self.election.wait_term(20) is not None, "the test never became leader"

    def kv(self) -> EtcdKV:
        assert self._etcd is not None
        return EtcdKV(self._etcd.endpoints, timeout=3.0)

    def open(self) -> Store:
        store: Store
        if self.backend == "sqlite":
            store = SQLiteStore(self._path)
        else:
            store = EtcdStore(self.kv(), self.prefix, self.election)
        self._opened.append(store)
        return store

    def close(self) -> None:
        for store in self._opened:
            store.close()
        if self.election is not None:
            self.election.stop()
