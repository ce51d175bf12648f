"""The etcd v3 store: any number of controllers share one cluster state.

kv: the etcd connection (etcd3gw over the JSON gateway, several members) and the
read-check-write loop; keys: the key layout and value encoding; events: the event
log and why its cursor is gapless across controllers; audit: the hash chain;
failovers, ops, webhooks, upgrades: the rest of the Store interface; store: hosts,
and the whole; election: the leader lease and its term, the fencing token every
leader-only write is conditional on; compaction: trimming etcd's history.
"""
