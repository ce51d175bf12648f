"""Network addresses as the programs take them, and the loopback rule for plaintext.

Plaintext gRPC is allowed only with an explicit --insecure and only on loopback: a
lab convenience must never carry commands that can power machines off across a
network.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from hangwatch.errors import AddressError


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str, *, allow_port_zero: bool = False) -> Address:
    """Parses HOST:PORT or [V6]:PORT."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise AddressError(f"address {text!r}: expected [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise AddressError(f"address {text!r}: expected HOST:PORT")
        if ":" in host:
            raise AddressError(f"address {text!r}: write IPv6 addresses as [ADDR]:PORT")
    if not port_text.isdigit():
        raise AddressError(f"address {text!r}: port {port_text!r} is not a number")
    port = int(port_text)
    low = 0 if allow_port_zero else 1
    if not low <= port <= 65535:
        raise AddressError(f"address {text!r}: port {port} is out of range {low}-65535")
    return Address(host, port)


def is_loopback(host: str) -> bool:
    """True when every address the host name resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos
    )


def require_loopback_for_insecure(address: Address, what: str) -> None:
    """Refuses plaintext anywhere but loopback."""
    if not is_loopback(address.host):
        raise AddressError(
            f"{what} {address}: --insecure (plaintext) is only allowed on loopback addresses"
        )
