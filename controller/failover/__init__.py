"""Failover: the pure engine and state machine, the cluster snapshot they read, the
ledger that writes every change to a failover, and the coordinator loop that drives them."""
