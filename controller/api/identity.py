"""Who is calling: the name and role every authorisation and audit entry uses.

With mutual TLS the caller is what its client certificate proves: an agent is
the host of its DNS SANs, a person or tool is NAME from its URI SAN
`hangwatch://user/NAME`, with a role from `[access]` or the certificate's OU. The
SANs are used, never the CN (gRPC checks the chain, not what the CN says), and a
URI SAN can never pass for a host. Over plaintext (loopback only, labs and tests)
there is no proof of anything: the caller may name itself with the
`x-hangwatch-actor` metadata and is given the admin role.

`controller.api.access` identifies every call before its handler runs; handlers ask
`caller(context)`.
"""

from __future__ import annotations

import contextvars
import functools
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from controller.config import AccessSettings
from hangwatch.grpcopts import ACTOR_HEADER
from hangwatch.roles import PEOPLE_ROLES, USER_URI_PREFIX

_ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
AGENT = "agent"


@dataclass(frozen=True)
class Caller:
    name: str
    role: str
    # Host ids an agent's certificate proves (its DNS SANs); empty for anyone else.
    hosts: frozenset[str] = frozenset()


# The controller itself, for what it does on its own: policy approvals, failover steps,
# upgrade drains.
SYSTEM = Caller("hangwatch", "system")

_current: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def caller(context: Any) -> Caller:
    """The caller of the call being handled, as `controller.api.access` identified it."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("caller() outside a call identified by controller.api.access") from None


def set_caller(who: Caller) -> None:
    """Makes `who` the caller for the rest of the current task: grpc.aio runs each call
    in a task of its own, whose context ends with it."""
    _current.set(who)


class Identify:
    """Turns a call's context into a Caller: by certificate with TLS (`access` given),
    by metadata over plaintext (`access` None)."""

    def __init__(self, access: AccessSettings | None) -> None:
        self._access = access

    def __call__(self, context: Any) -> Caller:
        if self._access is None:
            return _plaintext(context)
        pem = (context.auth_context() or {}).get("x509_pem_cert")
        if not pem:
            # Client certificates are required: only a misconfigured server gets here.
            return Caller("anonymous", "none")
        names = _names(pem[0])
        if names.user:
            return Caller(names.user, self._role(names.user, names.ou))
        if names.hosts:
            return Caller(sorted(names.hosts)[0], AGENT, names.hosts)
        return Caller(names.cn or "unnamed certificate", "none")

    def _role(self, name: str, ou: str) -> str:
        access = self._access
        assert access is not None
        if name in access.roles:
            return access.roles[name]
        if access.certificate_roles and ou in PEOPLE_ROLES:
            return ou
        return access.default_role


def _plaintext(context: Any) -> Caller:
    for key, value in context.invocation_metadata() or ():
        if key == ACTOR_HEADER and isinstance(value, str) and _ACTOR.match(value):
            return Caller(value, "admin")
    return Caller("anonymous", "admin")


@dataclass(frozen=True)
class _Names:
    user: str
    hosts: frozenset[str]
    ou: str
    cn: str


@functools.lru_cache(maxsize=1024)
def _names(pem: bytes) -> _Names:
    """What a (verified) client certificate says; cached, an agent calls every second."""
    cert = x509.load_pem_x509_certificate(pem)
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        uris: list[str] = []
        dns: list[str] = []
    else:
        uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
        dns = sans.get_values_for_type(x509.DNSName)
    users = [u.removeprefix(USER_URI_PREFIX) for u in uris if u.startswith(USER_URI_PREFIX)]

    def first(oid: x509.ObjectIdentifier) -> str:
        found = cert.subject.get_attributes_for_oid(oid)
        return str(found[0].value) if found else ""

    return _Names(
        users[0] if users else "",
        frozenset(dns),
        first(NameOID.ORGANIZATIONAL_UNIT_NAME),
        first(NameOID.COMMON_NAME),
    )
