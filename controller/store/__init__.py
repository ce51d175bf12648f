"""What the controller keeps: the store interface, and its SQLite implementation."""
