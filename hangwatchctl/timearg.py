"""Times on hangwatchctl's command line and in its tables: UTC unless --local.

Tables show `2026-12-01 14:24:11Z` (or `...+01:00` with --local), which every time
option accepts back. A time without an offset is read in the same zone as the
tables show. Durations are a number and a unit: `90s`, `10m`, `2h`, `1d`.
"""

from __future__ import annotations

import datetime
import re
import time
from collections.abc import Callable

import click

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+)([smhd])$")


def duration(text: str) -> float | None:
    """Seconds in '10m'; None when `text` is not a duration."""
    found = _DURATION.match(text)
    return int(found[1]) * UNITS[found[2]] if found else None


def parse_time(text: str, local: bool) -> float:
    """An ISO 8601 time; without an offset, in the tables' zone. Raises ValueError."""
    parsed = datetime.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        # A naive datetime's astimezone() reads it as this machine's local time.
        parsed = parsed.astimezone() if local else parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def show(seconds: float, local: bool) -> str:
    """A time as tables show it, with its zone."""
    at = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    text = (at.astimezone() if local else at).isoformat(" ", "seconds")
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


def local_time(ctx: click.Context | None) -> bool:
    """Whether --local was given (tables and time options follow it)."""
    return bool(ctx is not None and ctx.meta.get("local_time"))


Callback = Callable[[click.Context, click.Parameter, str | None], float | None]


def time_option(past: bool) -> Callback:
    """An option callback: an ISO 8601 time, or a duration from now, earlier (`10m`,
    for --since) or later (`+30m`, for --at and --until); seconds since the epoch."""

    def convert(ctx: click.Context, param: click.Parameter, text: str | None) -> float | None:
        if text is None:
            return None
        now = time.time()
        span = duration(text if past else text.removeprefix("+"))
        if span is not None and (past or text.startswith("+")):
            return now - span if past else now + span
        try:
            return parse_time(text, local_time(ctx))
        except ValueError:
            example = "10m, 2h" if past else "+30m, +2h"
            raise click.BadParameter(
                f"{text!r} is neither an ISO 8601 time nor a duration ({example})", ctx, param
            ) from None

    return convert
