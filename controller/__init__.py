"""The hangwatch controller: the cluster's picture, failover and notification."""
