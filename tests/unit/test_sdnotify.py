"""sd_notify against a datagram socket the test binds, as systemd would."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hangwatch.sdnotify import Notifier, monotonic_usec, watchdog_interval


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def receive(sock: socket.socket) -> list[str]:
    """Every message waiting on the socket."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        yield sock, str(path)


def test_plain_socket_gets_ready_status_and_stopping(listener):
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    n.ready("starting up")
    n.status("2 mounts OK")
    n.status("2 mounts OK")  # unchanged: not sent again
    n.status("1 OK,\n1 LOCKED")
    n.stopping()
    assert receive(sock) == [
        "READY=1\nSTATUS=starting up",
        "STATUS=2 mounts OK",
        "STATUS=1 OK, 1 LOCKED",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_abstract_socket():
    name = f"hangwatch-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).send("READY=1")
        assert receive(sock) == ["READY=1"]


def test_watchdog_pings_at_most_every_half_interval(listener):
    sock, path = listener
    clock = Clock()
    n = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"}, pid=42, clock=clock)
    assert n.watchdog_interval == 2.0
    sent = []
    for _ in range(20):  # 5 s in steps of 0.25 s
        n.watchdog()
        sent += [clock.now for _ in receive(sock)]
        clock.now += 0.25
    assert sent == [100.0, 102.0, 104.0]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "1000000"}, 0.5),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "42"}, 0.5),
        ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "43"}, None),  # someone else's watchdog
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
    ],
)
def test_watchdog_interval(environ, expected):
    assert watchdog_interval(environ, 42) == expected


def test_other_pids_watchdog_sends_nothing(listener):
    sock, path = listener
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    n = Notifier(env, pid=os.getpid())
    n.watchdog()
    assert receive(sock) == []


def test_reload_is_acknowledged_with_monotonic_time(listener):
    sock, path = listener
    before = monotonic_usec()
    Notifier({"NOTIFY_SOCKET": path}).reload(lambda: "reloaded")
    after = monotonic_usec()
    reloading, ready = receive(sock)
    assert ready == "READY=1\nSTATUS=reloaded"
    first, second = reloading.split("\n")
    assert first == "RELOADING=1"
    key, value = second.split("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after
    assert abs(int(value) / 1e6 - time.monotonic()) < 5


def test_unset_socket_is_a_no_op():
    n = Notifier({"WATCHDOG_USEC": "1000000"})
    assert n.address is None
    assert n.watchdog_interval is None
    assert not n.send("READY=1")
    n.ready("x")
    n.watchdog()


def test_relative_socket_path_is_refused_with_a_log(caplog):
    with caplog.at_level(logging.ERROR, "hangwatch.sdnotify"):
        n = Notifier({"NOTIFY_SOCKET": "run/notify"})
    assert n.address is None
    assert "neither an absolute path nor @abstract" in caplog.text


def test_send_errors_are_logged_once_then_recovery_logged(tmp_path, caplog):
    path = tmp_path / "notify"
    n = Notifier({"NOTIFY_SOCKET": str(path)})
    with caplog.at_level(logging.INFO, "hangwatch.sdnotify"):
        assert not n.send("WATCHDOG=1")
        assert not n.send("WATCHDOG=1")
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1
        assert "cannot notify systemd" in errors[0].getMessage()
        assert "WATCHDOG=1" in errors[0].getMessage()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            assert n.send("READY=1")
            assert sock.recv(100) == b"READY=1"
        assert "works again" in caplog.records[-1].getMessage()


def test_full_socket_does_not_block(listener, caplog):
    _, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    start = time.monotonic()
    results = [n.send("STATUS=" + "x" * 1000) for _ in range(5000)]
    assert time.monotonic() - start < 5
    assert not all(results)  # the receiver never read: the queue filled up
    assert "cannot notify systemd" in caplog.text
