"""The agent's link to the controller: channel, registration and heartbeats, event delivery,
commands."""
