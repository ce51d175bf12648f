"""Who is calling: the name and role every authorisation and audit entry uses.

With mutual TLS the name comes from the client certificate. Over plaintext
(loopback only, labs and tests) there is no proof of anything: the caller may
name itself with the `x-hangwatch-actor` metadata and is given the admin role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hangwatch.grpcopts import ACTOR_HEADER

_ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


@dataclass(frozen=True)
class Caller:
    name: str
    role: str


def caller(context: Any) -> Caller:
    for key, value in context.invocation_metadata() or ():
        if key == ACTOR_HEADER and isinstance(value, str) and _ACTOR.match(value):
            return Caller(value, "admin")
    return Caller("anonymous", "admin")
