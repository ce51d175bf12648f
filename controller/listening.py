"""Binding the controller's port: exclusively, and with a clear refusal when it cannot.

gRPC sets SO_REUSEPORT by default, so a second controller on the same address binds
too and the kernel spreads new connections between the two. The option below turns
that off; a port in use then fails the bind. gRPC reports any bind failure as a bare
RuntimeError, so the refusal says why after asking the system the same question.
"""

from __future__ import annotations

import errno
import socket

import grpc

from hangwatch.addresses import Address
from hangwatch.errors import StartupError

EXCLUSIVE_PORT = [("grpc.so_reuseport", 0)]


def listen(
    server: grpc.aio.Server, address: Address, credentials: grpc.ServerCredentials | None
) -> int:
    """Adds the port (plaintext without credentials); returns it, or raises StartupError."""
    try:
        if credentials is None:
            return server.add_insecure_port(str(address))
        return server.add_secure_port(str(address), credentials)
    except RuntimeError:
        raise StartupError(f"cannot listen on {address}: {_why_not(address)}") from None


def _why_not(address: Address) -> str:
    try:
        infos = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return f"cannot resolve {address.host!r} ({exc.strerror})"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return f"{exc.strerror}: another process (a controller?) listens there"
                return str(exc.strerror)
    return (
        f"gRPC cannot resolve or bind {address.host!r}; write it as a full IP address "
        "(e.g. 127.0.0.1) or a name DNS knows"
    )
