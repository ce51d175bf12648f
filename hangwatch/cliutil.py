"""What the three programs' command lines share: config loading, errors, exit codes."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from hangwatch import config as cfg
from hangwatch.errors import HangwatchError

T = TypeVar("T")

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
# The controller refused the TLS handshake: our certificate (expired, another CA) or
# theirs; retrying will not help, unlike EXIT_UNREACHABLE.
EXIT_CERTIFICATE = 4


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Prints one line to stderr and exits: no traceback for an expected failure."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def load_config(cls: type[T], path: str | None, overrides: Mapping[str, tuple[Any, str]]) -> T:
    try:
        return cfg.load(cls, Path(path) if path else None, overrides)
    except HangwatchError as exc:
        fail(str(exc))


def print_config(config: Any) -> None:
    click.echo(cfg.dump(config), nl=False)
