"""What this host is: its inventory and the monitored mounts' descriptions."""
