"""What the agent, the controller and hangwatchctl share: the v1 API, configuration,
logging, TLS and addresses, ids and times."""

__version__ = "0.1.0"
