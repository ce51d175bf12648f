"""Telling the world: the event bus behind WatchEvents, and webhook delivery."""
