"""A network namespace joined to this machine by a veth pair, for network-fault tests.

The pair carries a private /30 that is routed nowhere else: this side holds the
first address, the namespace the second. Everything is deleted on the way out,
even when the test fails.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.localcluster import LocalCluster, Proc, free_port, wait_for


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=10)


@dataclass(frozen=True)
class VethNamespace:
    name: str
    host_if: str  # this side of the pair
    ns_if: str  # the namespace's side
    host_ip: str
    ns_ip: str

    @property
    def prefix(self) -> list[str]:
        """Runs a command inside the namespace when put before it."""
        return ["ip", "netns", "exec", self.name]

    def set_link(self, up: bool) -> None:
        """Cuts or restores the link (this side of the pair; the peer loses carrier)."""
        ip("link", "set", self.host_if, "up" if up else "down")


def namespaces() -> list[str]:
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]


@contextlib.contextmanager
def veth_namespace(subnet: str = "10.200.0.0/30") -> Iterator[VethNamespace]:
    net = ipaddress.ip_network(subnet)
    host_ip, ns_ip = (str(a) for a in net.hosts())
    in_use = ip("-4", "-o", "addr", "show", "to", subnet).stdout.strip()
    if in_use:
        raise RuntimeError(f"{subnet} is already in use on this machine: {in_use}")
    tag = os.getpid() % 100_000
    ns = VethNamespace(f"hwtest{tag}", f"hwh{tag}", f"hwn{tag}", host_ip, ns_ip)
    try:
        ip("netns", "add", ns.name)
        ip("link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
        ip("link", "set", ns.ns_if, "netns", ns.name)
        ip("addr", "add", f"{host_ip}/{net.prefixlen}", "dev", ns.host_if)
        ip("link", "set", ns.host_if, "up")
        inside = ["-n", ns.name]
        ip(*inside, "addr", "add", f"{ns_ip}/{net.prefixlen}", "dev", ns.ns_if)
        ip(*inside, "link", "set", ns.ns_if, "up")
        ip(*inside, "link", "set", "lo", "up")
        yield ns
    finally:
        # Deleting one end of a veth pair deletes both; the namespace goes once its
        # processes have (the caller kills them first).
        ip("link", "del", ns.host_if, check=False)
        ip("netns", "del", ns.name, check=False)
        left = [n for n in namespaces() if n == ns.name]
        link = ip("link", "show", ns.host_if, check=False)
        assert not left and link.returncode != 0, f"namespace or veth left behind: {ns}"


RELAY = str(Path(__file__).resolve().parent / "tcprelay.py")


def start_relays(cluster: LocalCluster, ns: VethNamespace) -> int:
    """Relays ns loopback -> veth -> 127.0.0.1 controller; returns the ns-side port."""
    veth_port = free_port()
    procs: list[Proc] = [
        cluster.start_process(
            "relay-host",
            [sys.executable, RELAY, ns.host_ip, str(veth_port), "127.0.0.1", str(cluster.port)],
        ),
        cluster.start_process(
            "relay-ns",
            [*ns.prefix, sys.executable, RELAY, "127.0.0.1", "7443", ns.host_ip, str(veth_port)],
        ),
    ]
    for proc in procs:
        wait_for(lambda p=proc: "relaying" in p.log_text(), 10, f"{proc.name} to listen")
    return 7443
