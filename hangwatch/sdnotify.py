"""sd_notify(3) for Type=notify units: one datagram to $NOTIFY_SOCKET per message.

An own implementation because systemd-python needs libsystemd-dev to build and the
`sdnotify` package swallows every error; the protocol is declared stable. Outside
systemd (NOTIFY_SOCKET unset) every call is a no-op, so the programs need no mode.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: what systemd expects in MONOTONIC_USEC=."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def socket_address(value: str) -> str | None:
    """The address to send to: an absolute path, or `@name` for the abstract namespace."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    if value:
        log.error(
            "NOTIFY_SOCKET=%r is neither an absolute path nor @abstract: not notifying systemd",
            value,
        )
    return None


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), or None for no watchdog.

    $WATCHDOG_PID names the process systemd watches; a child that inherited the
    variables must stay quiet, or it would keep a wedged parent alive.
    """
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    watched = environ.get("WATCHDOG_PID", "")
    if watched and watched != str(pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        value = 0
    if value <= 0:
        log.error("WATCHDOG_USEC=%r is not a positive integer: not pinging the watchdog", usec)
        return None
    return value / 2_000_000


class Notifier:
    """What a daemon tells systemd: ready, status, watchdog pings, reloading, stopping.

    Sending never blocks (a full socket buffer is an error, logged), so the agent's
    loop cannot hang on systemd. A failure is logged once until sending works again.
    """

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        pid: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        env = os.environ if environ is None else environ
        self.address = socket_address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = (
            watchdog_interval(env, os.getpid() if pid is None else pid) if self.address else None
        )
        self._clock = clock
        self._last_ping: float | None = None
        self._status: str | None = None
        self._error: str | None = None

    def send(self, *assignments: str) -> bool:
        """Sends `KEY=VALUE` lines as one message; False if not sent."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK) as sock:
                sock.sendto(message, self.address)
        except OSError as exc:
            problem = exc.strerror or str(exc)
            if problem != self._error:
                log.error(
                    "cannot notify systemd at %s (%s): %s",
                    self.address.replace("\0", "@"),
                    assignments[0],
                    problem,
                )
            self._error = problem
            return False
        if self._error is not None:
            log.info("notifying systemd works again")
            self._error = None
        return True

    def ready(self, status: str) -> None:
        self._status = _one_line(status)
        self.send("READY=1", f"STATUS={self._status}")

    def status(self, text: str) -> None:
        """Sends STATUS= only when it changed: callers may call it on every loop tick."""
        line = _one_line(text)
        if line != self._status:
            self._status = line
            self.send(f"STATUS={line}")

    def watchdog(self) -> None:
        """Pings at most once per interval; call it from the loop that proves liveness."""
        if self.watchdog_interval is None:
            return
        now = self._clock()
        if self._last_ping is None or now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.send("WATCHDOG=1")

    def stopping(self) -> None:
        self._status = "stopping"
        self.send("STOPPING=1", "STATUS=stopping")

    def reload(self, reread: Callable[[], str]) -> None:
        """SIGHUP handler (ExecReload=kill -HUP): tells systemd a reload started, runs
        `reread` (what the program re-reads; it returns the status line), then READY=1.

        SIGHUP's default action would kill the daemon; this keeps it running and lets
        systemd see a reload that started and finished.
        """
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")
        self._status = _one_line(reread())
        self.send("READY=1", f"STATUS={self._status}")


def _one_line(text: str) -> str:
    return " ".join(text.split())
