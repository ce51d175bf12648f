"""hangwatchctl's connection to the controller, and gRPC errors as exit codes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc

from hangwatch.addresses import parse_address, require_loopback_for_insecure
from hangwatch.cliutil import EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE, fail
from hangwatch.errors import AddressError
from hangwatch.grpcopts import ACTOR_HEADER, channel_options
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc

UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
USAGE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE}


@dataclass
class Target:
    address: str
    insecure: bool
    timeout: float
    # Who is asking, for the audit log (over plaintext nothing proves it; with
    # mutual TLS the controller takes the name from the certificate instead).
    actor: str = ""
    _stub: admin_grpc.AdminServiceStub | None = None

    def call(self, method: str, request: Any) -> Any:
        """One AdminService call; a failure exits with the documented code."""
        stub = self._stub = self._stub or self.stub()
        metadata = ((ACTOR_HEADER, self.actor),) if self.actor else ()
        with rpc_errors(self.address):
            return getattr(stub, method)(request, timeout=self.timeout, metadata=metadata)

    def stub(self) -> admin_grpc.AdminServiceStub:
        try:
            address = parse_address(self.address)
            if not self.insecure:
                fail(
                    "no TLS credentials are configured: pass --insecure to talk plaintext "
                    "to a controller on a loopback address"
                )
            require_loopback_for_insecure(address, "controller address")
        except AddressError as exc:
            fail(str(exc))
        channel = grpc.insecure_channel(self.address, options=channel_options())
        return admin_grpc.AdminServiceStub(channel)


def exit_for(exc: grpc.RpcError, address: str) -> NoReturn:
    code = exc.code()
    details = (exc.details() or "").splitlines()[0:1]
    detail = details[0] if details else code.name
    if code in UNREACHABLE:
        fail(f"controller unreachable at {address}: {detail}", EXIT_UNREACHABLE)
    if code in USAGE:
        fail(detail, EXIT_USAGE)
    fail(f"{detail} ({code.name})", EXIT_REFUSED)


@contextlib.contextmanager
def rpc_errors(address: str) -> Iterator[None]:
    """Turns a failed call into a one-line message and the documented exit code."""
    try:
        yield
    except grpc.RpcError as exc:
        exit_for(exc, address)
