"""Failover: pure decisions and state machine, and the coordinator that carries them out."""
