"""Shared parts of hangwatch: the v1 API, configuration, logging, and the CLI."""

__version__ = "0.1.0"
