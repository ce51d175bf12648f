"""hangwatchctl's connection to the controller, and gRPC errors as exit codes.

A certificate the controller refuses fails as UNAVAILABLE, like a controller that
is down; `exit_for` repeats the TLS handshake to tell the two apart and exits
EXIT_CERTIFICATE saying "certificate refused" instead of "unreachable".
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import grpc

from hangwatch import tls
from hangwatch.addresses import parse_address
from hangwatch.cliutil import EXIT_CERTIFICATE, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, fail
from hangwatch.errors import AddressError
from hangwatch.grpcopts import ACTOR_HEADER, channel_options
from hangwatch.printable import escape
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc

UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
USAGE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE}
# The page size hangwatchctl asks for: every List call allows it.
MAX_PAGE = 1000
FLAGS = ("--ca (HANGWATCH_CA)", "--cert (HANGWATCH_CERT)", "--key (HANGWATCH_KEY)")


def config_dir() -> Path:
    """Where the CA, certificate and key are looked for when no flag names them."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "hangwatch"


@dataclass
class Listing:
    """What `Target.pages` found."""

    records: list[Any]
    # Whether the listing goes on past the records asked for.
    more: bool
    # The last page's answer (for what a listing says besides its records).
    last: Any


@dataclass
class Target:
    address: str
    insecure: bool
    timeout: float
    # Who is asking, for the audit log (over plaintext nothing proves it; with
    # mutual TLS the controller takes the name from the certificate instead).
    actor: str = ""
    ca: str = ""
    cert: str = ""
    key: str = ""
    _stub: admin_grpc.AdminServiceStub | None = None

    @property
    def tls_files(self) -> tls.TlsFiles:
        return tls.TlsFiles(self.ca, self.cert, self.key, FLAGS)

    def call(self, method: str, request: Any) -> Any:
        """One AdminService call; a failure exits with the documented code."""
        stub = self._stub = self._stub or self.stub()
        metadata = ((ACTOR_HEADER, self.actor),) if self.actor else ()
        with rpc_errors(self):
            return getattr(stub, method)(request, timeout=self.timeout, metadata=metadata)

    def pages(self, method: str, request: Any, field: str, limit: int = 0) -> Listing:
        """Every record of a List call, page after page, or the first `limit` of them."""
        records: list[Any] = []
        while True:
            request.page_size = min(limit - len(records), MAX_PAGE) if limit else 0
            response = self.call(method, request)
            records.extend(getattr(response, field))
            if not response.next_page_token or (limit and len(records) >= limit):
                return Listing(records, bool(response.next_page_token), response)
            request.page_token = response.next_page_token

    def stub(self) -> admin_grpc.AdminServiceStub:
        try:
            material = tls.tls_or_loopback(
                parse_address(self.address), None if self.insecure else self.tls_files
            )
        except (AddressError, tls.TlsError) as exc:
            fail(str(exc))
        if material is None:
            channel = grpc.insecure_channel(self.address, options=channel_options())
        else:
            channel = grpc.secure_channel(
                self.address, tls.channel_credentials(material), options=channel_options()
            )
        return admin_grpc.AdminServiceStub(channel)


def exit_for(exc: grpc.RpcError, target: Target) -> NoReturn:
    code = exc.code()
    details = (exc.details() or "").splitlines()[0:1]
    detail = escape(details[0]) if details else code.name
    if code in UNREACHABLE:
        if code == grpc.StatusCode.UNAVAILABLE and not target.insecure:
            why = tls.diagnose(parse_address(target.address), target.tls_files, "", target.timeout)
            if why:
                fail(
                    f"{tls.REFUSED} by the controller at {target.address}: {why}", EXIT_CERTIFICATE
                )
        fail(f"controller unreachable at {target.address}: {detail}", EXIT_UNREACHABLE)
    if code in USAGE:
        fail(detail, EXIT_USAGE)
    fail(f"{detail} ({code.name})", EXIT_REFUSED)


@contextlib.contextmanager
def rpc_errors(target: Target) -> Iterator[None]:
    """Turns a failed call into a one-line message and the documented exit code."""
    try:
        yield
    except grpc.RpcError as exc:
        exit_for(exc, target)
