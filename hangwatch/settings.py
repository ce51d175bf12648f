"""Setting sections that every hangwatch program shares."""

from __future__ import annotations

from dataclasses import dataclass

from hangwatch.addresses import parse_address
from hangwatch.config import Check, one_of, setting
from hangwatch.errors import AddressError


@dataclass(frozen=True)
class LogSettings:
    format: str = setting(
        "human", "human (readable) or json (one object a line)", one_of("human", "json")
    )
    level: str = setting(
        "info", "debug, info, warning or error", one_of("debug", "info", "warning", "error")
    )


def address_check(allow_port_zero: bool = False, optional: bool = False) -> Check:
    """A config check for HOST:PORT values (`optional`: empty means "not at all")."""

    def check(value: str) -> str | None:
        if optional and not value:
            return None
        try:
            parse_address(value, allow_port_zero=allow_port_zero)
        except AddressError as exc:
            return str(exc)
        return None

    return check
