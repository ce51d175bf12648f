"""Upgrade plans: the pure planner and the driver on the controller."""
