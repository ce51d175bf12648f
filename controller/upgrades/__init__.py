"""Upgrade plans: the pure planner, its JSON codec, and the driver on the controller."""
