"""A controller reduced to its leadership, as a process of its own (the tests pause it
with SIGSTOP): wins the election, says its term, then on each line of stdin tries one
leader-only write with the term it checked before it was paused."""

from __future__ import annotations

import sys

from storekit import PinnedTerm

from controller.store.etcd.election import Election
from controller.store.etcd.kv import EtcdKV
from controller.store.etcd.store import EtcdStore
from hangwatch.errors import NotLeader


def main() -> None:
    endpoints, prefix, name = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    election = Election(EtcdKV(endpoints, timeout=2), prefix + "leader", name, ttl=2,
                        renew_deadline=1.5)  # fmt: skip
    election.start()
    term = election.wait_term(30)
    print(f"term {term}", flush=True)
    store = EtcdStore(EtcdKV(endpoints, timeout=2), prefix, PinnedTerm(election.key, term))
    for line in sys.stdin:
        try:
            store.set_auto_blocked_until("mail", float(line))
            print("wrote", flush=True)
        except NotLeader as exc:
            print(f"refused: {exc}; leader now: {election.term is not None}", flush=True)


if __name__ == "__main__":
    main()
