"""The agent's side of failover: commands checked against epochs, and the hooks they run."""
