"""Incidents: the timeline of one lockup on one group, for people inside and customers outside."""
