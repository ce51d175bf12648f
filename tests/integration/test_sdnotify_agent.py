"""The real agent (and controller) processes talk sd_notify to a socket the test listens on,
as systemd would."""

from __future__ import annotations

import itertools
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterkit import FAST_AGENT

from lab.localcluster import LocalCluster, Proc, free_port, wait_for

WATCHDOG_USEC = 1_000_000  # pings expected every 0.5 s


class NotifySocket:
    """Records every datagram with the monotonic time it arrived (read on a thread, so the
    times are the arrival times whatever the test is doing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._closed.set()
        self._reader.join()
        self.sock.close()

    def wait(self, line: str, timeout: float) -> float:
        """When the first message holding `line` arrived."""

        def seen() -> float | None:
            return next((t for t, m in list(self.messages) if line in m.split("\n")), None)

        return float(wait_for(seen, timeout, f"{line!r} on the notify socket"))

    def pings(self) -> list[float]:
        return [t for t, m in list(self.messages) if m == "WATCHDOG=1"]

    def statuses(self) -> list[str]:
        return [
            line.removeprefix("STATUS=")
            for _, m in list(self.messages)
            for line in m.split("\n")
            if line.startswith("STATUS=")
        ]


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.close()


def start_agent(cluster: LocalCluster, tmp_path: Path, notify: NotifySocket, **testing: float):
    cluster.start_controller()
    return cluster.start_agent(
        "sd1",
        [tmp_path],
        {**FAST_AGENT, "testing": testing},
        env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)},
    )


def test_ready_status_watchdog_and_stopping(cluster, tmp_path, notify):
    agent = start_agent(cluster, tmp_path, notify)
    ready_at = notify.wait("READY=1", 30)
    assert notify.messages[0][1].startswith("READY=1\n"), "nothing may come before READY=1"
    wait_for(
        lambda: any(s.endswith("controller connected") for s in notify.statuses()),
        15,
        "a STATUS= saying the controller is connected",
    )
    assert any(s.startswith("mounts: 1 OK") for s in notify.statuses()), notify.statuses()
    time.sleep(3)
    pings = [t for t in notify.pings() if t >= ready_at]
    assert len(pings) >= 4, pings
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # Half of WATCHDOG_USEC, give or take one 0.25 s evaluation tick and some scheduling.
    assert all(0.4 <= g <= 0.5 + 0.25 + 0.5 for g in gaps), gaps

    # ExecReload= sends SIGHUP: acknowledged, and the agent keeps running.
    agent.signal(signal.SIGHUP)
    notify.wait("RELOADING=1", 10)
    assert agent.alive()

    agent.signal(signal.SIGTERM)
    notify.wait("STOPPING=1", 10)
    assert agent.popen.wait(10) == 0


def test_wedged_main_loop_stops_the_watchdog_pings(cluster, tmp_path, notify):
    agent = start_agent(cluster, tmp_path, notify, wedge_main_loop_after_seconds=3.0)
    notify.wait("READY=1", 30)
    wait_for(lambda: len(notify.pings()) >= 2, 10, "watchdog pings before the wedge")
    wait_for(lambda: "wedging the main loop" in agent.log_text(), 15, "the agent to wedge")
    wedged_at = time.monotonic()
    time.sleep(3)  # six ping intervals
    assert agent.alive()
    late = [t for t in notify.pings() if t > wedged_at]
    assert late == [], f"{len(late)} pings after the loop wedged"
    agent.kill()  # SIGTERM cannot reach a wedged loop; systemd would SIGABRT it


def test_controller_ready_watchdog_reload_and_stopping(tmp_path, notify):
    port = free_port()
    argv = [sys.executable, "-m", "controller", "--listen", f"127.0.0.1:{port}"]
    argv += ["--data-dir", str(tmp_path / "data"), "--insecure"]
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    controller = Proc("controller", argv, tmp_path / "controller.log", env=env).start()
    try:
        notify.wait("READY=1", 30)
        assert notify.messages[0][1] == f"READY=1\nSTATUS=serving on 127.0.0.1:{port}"
        wait_for(lambda: len(notify.pings()) >= 3, 5, "three watchdog pings")

        controller.signal(signal.SIGHUP)
        notify.wait("RELOADING=1", 10)
        assert controller.alive()

        controller.signal(signal.SIGTERM)
        notify.wait("STOPPING=1", 10)
        assert controller.popen.wait(10) == 0
    finally:
        controller.stop()
