"""The exceptions hangwatch raises on purpose, one tree so callers catch by meaning.

HangwatchError
├── ConfigError        a config file, flag or environment value is wrong (exit 2)
├── AddressError       an address is malformed or not allowed (exit 2)
└── StartupError       the program cannot start: its address or data directory is
                       held by another process, or its data is damaged (exit 2)
"""


class HangwatchError(Exception):
    """Base of every error hangwatch raises deliberately."""


class ConfigError(HangwatchError):
    """A configuration value is wrong; the message names where and which key."""


class AddressError(ConfigError):
    """An address cannot be parsed or is not allowed for this transport."""


class StartupError(HangwatchError):
    """The program cannot start with what it was given; the message says what to do."""
