"""A real etcd cluster for tests: three `etcd` members (Debian's etcd-server) on
loopback ports, data in the test's temporary directory, killed by pid at the end."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ETCD = "etcd"


def require_etcd() -> str:
    """The etcd binary; skips without it, or fails when root tests are required (CI
    installs etcd-server through scripts/test)."""
    path = shutil.which(ETCD) or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
    if path:
        return path
    reason = "etcd is not installed (Debian package etcd-server)"
    if os.environ.get("HANGWATCH_REQUIRE_ROOT_TESTS") == "1":
        pytest.fail(f"etcd tests required (HANGWATCH_REQUIRE_ROOT_TESTS=1): {reason}")
    pytest.skip(reason)


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


class EtcdCluster:
    def __init__(self, workdir: Path, size: int = 3) -> None:
        self.binary = require_etcd()
        ports = free_ports(2 * size)
        self.members = [
            Member(
                f"m{i}",
                ports[2 * i],
                ports[2 * i + 1],
                workdir / f"etcd-m{i}",
                workdir / f"etcd-m{i}.log",
            )
            for i in range(size)
        ]
        self.initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        self.token = f"hangwatch-test-{os.getpid()}-{ports[0]}"

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def start(self, timeout: float = 30.0) -> None:
        for member in self.members:
            self.start_member(member)
        self.wait_healthy(timeout)

    def start_member(self, member: Member) -> None:
        log = member.log_path.open("ab")
        member.proc = subprocess.Popen(
            [
                self.binary,
                "--name", member.name,
                "--data-dir", str(member.data_dir),
                "--listen-client-urls", member.endpoint,
                "--advertise-client-urls", member.endpoint,
                "--listen-peer-urls", member.peer_url,
                "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", self.initial,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", self.token,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()

    def healthy(self, member: Member) -> bool:
        try:
            with urllib.request.urlopen(member.endpoint + "/health", timeout=1) as answer:
                return bool(json.load(answer).get("health") == "true")
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 30.0, members: list[Member] | None = None) -> None:
        deadline = time.monotonic() + timeout
        waiting = [m for m in (members or self.members) if m.proc is not None]
        while waiting:
            for member in waiting:
                assert member.proc is not None
                if member.proc.poll() is not None:
                    raise RuntimeError(f"etcd {member.name} exited:\n{self.log_tail(member)}")
            waiting = [m for m in waiting if not self.healthy(m)]
            if waiting and time.monotonic() > deadline:
                names = ", ".join(m.name for m in waiting)
                raise RuntimeError(f"etcd {names} not healthy after {timeout} s")
            time.sleep(0.1)

    def kill(self, member: Member) -> None:
        """SIGKILL, as a crashed machine would stop it."""
        if member.proc is not None and member.proc.poll() is None:
            member.proc.send_signal(signal.SIGKILL)
            member.proc.wait(10)
        member.proc = None

    def restart(self, member: Member) -> None:
        """Starts a killed member again on its data directory."""
        self.start_member(member)

    def stop(self) -> None:
        for member in self.members:
            self.kill(member)

    def log_tail(self, member: Member, size: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return member.log_path.read_text(errors="replace")[-size:]
        return ""


@contextlib.contextmanager
def etcd_cluster(workdir: Path, size: int = 3) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(workdir, size)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
