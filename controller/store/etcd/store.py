"""The shared store: controllers that share one etcd cluster (key layout in .keys,
the event cursor in .events, leadership in .election); hosts here, the rest in mixins."""

from __future__ import annotations

from controller.store.etcd import values
from controller.store.etcd.failovers import FailoverKeys
from controller.store.etcd.keys import load, unmessage
from controller.store.etcd.kv import Entry, Reads, Txn
from controller.store.etcd.ops import OpsKeys
from controller.store.etcd.suspects import SuspectKeys
from controller.store.etcd.webhooks import WebhookKeys
from controller.store.interface import HostRecord
from hangwatch.v1 import agent_service_pb2 as agent_pb


class EtcdStore(FailoverKeys, OpsKeys, WebhookKeys, SuspectKeys):
    def register_host(self, request: agent_pb.RegisterRequest, now: float) -> None:
        """Creates or refreshes a host; a new kernel ends its 'needs clear' mark.

        A host a failover moved away from stays ineligible until a person clears it,
        or until it comes back on a different kernel (the clean start that sbd uses).
        """

        def build(reads: Reads, txn: Txn) -> None:
            keys = self._keys
            before = reads.get(keys.host(request.host_id))
            txn.put(keys.host(request.host_id), values.host(request, now))
            txn.put(keys.boot(request.host_id), request.boot_id)
            if before is not None:
                old = agent_pb.RegisterRequest.FromString(
                    unmessage(load(before.value)["registration"])
                )
                if old.inventory.kernel_release != request.inventory.kernel_release:
                    txn.delete(keys.needs_clear(request.host_id))

        self._change(build)

    def record_heartbeat(self, request: agent_pb.HeartbeatRequest, now: float) -> bool:
        """One round trip: written only while the host's registered boot is this one."""
        keys = self._keys
        txn = Txn()
        txn.value_is(keys.boot(request.host_id), request.boot_id)
        txn.put(keys.heartbeat(request.host_id), values.heartbeat(request, now))
        return bool(self._kv.txn(txn).get("succeeded"))

    def get_host(self, host_id: str) -> HostRecord | None:
        keys = self._keys
        found, _ = self._kv.get_many(
            [keys.host(host_id), keys.heartbeat(host_id), keys.needs_clear(host_id)]
        )
        if keys.host(host_id) not in found:
            return None
        return _host(
            found[keys.host(host_id)],
            found.get(keys.heartbeat(host_id)),
            found.get(keys.needs_clear(host_id)),
        )

    def remove_host(self, host_id: str) -> bool:
        """Deletes the host's keys at once; a heartbeat after it finds no boot to match
        and asks the agent to register again."""

        def build(reads: Reads, txn: Txn) -> bool:
            keys = self._keys
            if reads.get(keys.host(host_id)) is None:
                return False
            for key in (
                keys.host(host_id),
                keys.boot(host_id),
                keys.heartbeat(host_id),
                keys.needs_clear(host_id),
            ):
                txn.delete(key)
            return True

        return self._change(build)

    def list_hosts(self, after: str = "", limit: int | None = None) -> list[HostRecord]:
        keys = self._keys
        hosts, heartbeats, clears = self._kv.scan_together(
            [keys.hosts, keys.heartbeats, keys.needs_clears]
        )
        beats = {_name(e, keys.heartbeats): e for e in heartbeats}
        marks = {_name(e, keys.needs_clears): e for e in clears}
        records = [
            _host(e, beats.get(_name(e, keys.hosts)), marks.get(_name(e, keys.hosts)))
            for e in hosts
        ]
        found = sorted((r for r in records if r.host_id > after), key=lambda r: r.host_id)
        return found if limit is None else found[:limit]


def _name(entry: Entry, prefix: str) -> str:
    return entry.key[len(prefix) :]


def _host(entry: Entry, heartbeat: Entry | None, needs_clear: Entry | None) -> HostRecord:
    host = load(entry.value)
    beat = None if heartbeat is None else load(heartbeat.value)
    return HostRecord(
        host_id=host["host_id"],
        boot_id=host["boot_id"],
        agent_version=host["agent_version"],
        registered_at=host["registered_at"],
        last_heartbeat_at=None if beat is None else beat["at"],
        registration=agent_pb.RegisterRequest.FromString(unmessage(host["registration"])),
        last_heartbeat=(
            None if beat is None else agent_pb.HeartbeatRequest.FromString(unmessage(beat["body"]))
        ),
        needs_clear="" if needs_clear is None else needs_clear.value.decode(),
    )
