"""The embedded store: one SQLite file, one module per group of tables."""
