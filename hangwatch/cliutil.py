"""What the three programs' command lines share: config loading, errors, exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from hangwatch import __version__
from hangwatch import config as cfg
from hangwatch.errors import HangwatchError

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

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


def version_option(program: str) -> Callable[[F], F]:
    """--version, from hangwatch.__version__ (which the package metadata takes too)."""
    return click.version_option(__version__, prog_name=program, message="%(prog)s %(version)s")


def program_options(insecure_help: str) -> Callable[[F], F]:
    """--config, --insecure, --log-format and --print-config, as both daemons take them."""
    options = [
        click.option(
            "--config",
            "config_path",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help="TOML config file; flags override it.",
        ),
        click.option("--insecure", is_flag=True, default=None, help=insecure_help),
        click.option(
            "--log-format",
            type=click.Choice(["human", "json"]),
            default=None,
            help="Log format on stderr [default: human].",
        ),
        click.option(
            "--print-config",
            "print_only",
            is_flag=True,
            help="Print the effective config and exit.",
        ),
    ]

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate
