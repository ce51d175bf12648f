"""Readers of /proc and /sys for the agent.

Each reader takes its root ("/proc", "/sys") as a parameter and keeps the parsing
pure, so unit tests run on fixture snapshots and integration tests on the real
files. Nothing here touches a monitored filesystem: /proc and /sys are virtual.
"""
