"""The hangwatch agent: watches one storage host for filesystem lockups."""
