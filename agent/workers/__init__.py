"""Child processes that touch disks for the agent (probes, spool, state files), so that the
agent itself never waits on one."""
