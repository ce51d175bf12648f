"""Opens the store the config names, with the leadership that goes with it: the one
place that knows both backends (SQLite: one controller, always leader; etcd: an
election among the controllers, and the leader compacts)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from controller.config import ControllerConfig, StoreSettings
from controller.leadership import Leadership, SoleLeader
from controller.store.etcd.compaction import Compactor
from controller.store.etcd.election import Election
from controller.store.etcd.keys import Keys
from controller.store.etcd.kv import EtcdKV
from controller.store.etcd.store import EtcdStore
from controller.store.interface import Store
from controller.store.sqlite.datadir import DataDirLock
from controller.store.sqlite.store import SQLiteStore


@dataclass
class OpenStore:
    store: Store
    leadership: Leadership
    _stops: list[Callable[[], None]] = field(default_factory=list)
    # Run once the store is closed (the data dir's lock goes last).
    _after: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stops campaigning (a leader resigns at once) and closes the store."""
        for stop in self._stops:
            stop()
        self.store.close()
        for after in self._after:
            after()


def connect(settings: StoreSettings) -> EtcdKV:
    """A connection to the etcd members the settings name."""
    return EtcdKV(
        settings.endpoints,
        timeout=settings.timeout_seconds,
        ca_file=settings.ca_file,
        cert_file=settings.cert_file,
        key_file=settings.key_file,
        max_txn_ops=settings.max_txn_ops,
    )


def open_store(config: ControllerConfig) -> OpenStore:
    settings = config.store
    if settings.backend == "sqlite":
        data_dir = Path(config.data_dir)
        # One controller per data dir: a second one stops here, before opening the file.
        lock = DataDirLock(data_dir)
        try:
            store = SQLiteStore(data_dir / "controller.db")
        except BaseException:
            lock.release()
            raise
        return OpenStore(store, SoleLeader(), _after=[lock.release])
    # The election and the compactor run on threads of their own: each has its own
    # connection, so a slow store call never delays a keepalive.
    election = Election(
        connect(settings),
        Keys(settings.prefix).leader,
        f"{socket.gethostname()} {config.listen}",
        ttl=settings.leader_ttl_seconds,
        renew_deadline=settings.leader_renew_deadline_seconds,
    )
    compactor = Compactor(
        connect(settings),
        election,
        settings.compact_keep_revisions,
        settings.compact_interval_seconds,
    )
    election.start()
    compactor.start()
    etcd = EtcdStore(connect(settings), settings.prefix, election)
    return OpenStore(etcd, election, [compactor.stop, election.stop])
