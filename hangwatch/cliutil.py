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


def config_file(given: str | None, default: Path) -> Path | None:
    """The file to read: --config, else the default path when it exists, else none."""
    if given:
        return Path(given)
    return default if default.exists() else None


def load_settings(
    cls: type[T],
    given: str | None,
    default: Path,
    overrides: Mapping[str, tuple[Any, str]],
    print_only: bool,
    allow_testing: bool = False,
) -> tuple[T, Path | None]:
    """A daemon's config and the file it came from (--config, else `default` when it
    exists); a bad one exits 2. With --print-config it prints them and exits 0."""
    path = config_file(given, default)
    try:
        config = cfg.load(cls, path, overrides, allow_testing)
    except HangwatchError as exc:
        fail(str(exc))
    if print_only:
        if path is None:
            click.echo(f"# no config file ({default} does not exist): defaults and flags")
        else:
            click.echo(f"# config file: {path} (flags override it)")
        click.echo(cfg.dump(config), nl=False)
        sys.exit(EXIT_OK)
    return config, path


def version_option(program: str) -> Callable[[F], F]:
    """--version, from hangwatch.__version__ (which the package metadata takes too)."""
    return click.version_option(__version__, prog_name=program, message="%(prog)s %(version)s")


def program_options(insecure_help: str, default_config: Path) -> Callable[[F], F]:
    """--config, --insecure, --log-format and --print-config, as both daemons take them."""
    options = [
        click.option(
            "--config",
            "config_path",
            metavar="FILE",
            type=click.Path(dir_okay=False),
            help=f"TOML config file; flags override it [default: {default_config}, "
            "when it exists].",
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
            help="Print the effective config (every key, defaults included) and the "
            "file it came from, then exit.",
        ),
    ]

    def decorate(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate
