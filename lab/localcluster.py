"""A controller and agents as local processes on loopback: for the demo, tests and benches.

Every process is started with the running Python (`-m controller`, `-m agent`), so
it works from a source tree and from an installed package alike. Plaintext
(--insecure) unless `pki` names a CA directory (lab.pki): then everything
speaks mutual TLS with certificates issued from it on demand.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
import tomli_w
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lab.pki import Issued, init_ca, issue


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05
) -> object:
    """Polls `predicate` until it returns something truthy; raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Proc:
    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    # Added to (or overriding) the inherited environment.
    env: Mapping[str, str] = field(default_factory=dict)

    def start(self) -> Proc:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL and reap: a crash, as far as the process can tell."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.popen.wait()

    def kill_group(self, timeout: float = 10.0) -> None:
        """SIGKILL the process and its children (its session), as systemd kills a unit's
        cgroup, and wait until none of them is left."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()

        def gone() -> bool:
            # Killed orphans linger as zombies until init reaps them: those count as gone.
            for proc in psutil.process_iter():
                with contextlib.suppress(psutil.Error, ProcessLookupError):
                    if os.getpgid(proc.pid) == self.pid and proc.status() != psutil.STATUS_ZOMBIE:
                        return False
            return True

        wait_for(gone, timeout, f"the processes of {self.name} to exit")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.popen is None:
            return None
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGTERM)
            try:
                return self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class LocalCluster:
    workdir: Path
    controller_config: Mapping[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    procs: list[Proc] = field(default_factory=list)
    pki: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def certificate(self, role: str, name: str) -> Issued:
        """The key and certificate of NAME in `pki`, issued the first time it is asked for."""
        assert self.pki is not None
        if not (self.pki / "ca.crt").exists():
            init_ca(self.pki)
        issued = Issued(self.pki / f"{role}-{name}.key", self.pki / f"{role}-{name}.crt")
        if not issued.cert_path.exists():
            issued = issue(self.pki, role, name)
        return issued

    def tls_config(self, role: str, name: str) -> dict[str, str]:
        """ca_file, cert_file and key_file for a config file."""
        assert self.pki is not None
        issued = self.certificate(role, name)
        return {
            "ca_file": str(self.pki / "ca.crt"),
            "cert_file": str(issued.cert_path),
            "key_file": str(issued.key_path),
        }

    def channel(self, role: str = "admin", name: str = "cluster-admin") -> grpc.Channel:
        """A client channel to the controller: plaintext, or TLS as NAME with ROLE."""
        if self.pki is None:
            return grpc.insecure_channel(self.address)
        files = self.tls_config(role, name)
        credentials = grpc.ssl_channel_credentials(
            *(Path(files[k]).read_bytes() for k in ("ca_file", "key_file", "cert_file"))
        )
        return grpc.secure_channel(self.address, credentials)

    def _proc(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Proc:
        proc = Proc(name, list(argv), self.workdir / f"{name}.log", env=env or {})
        self.procs.append(proc)
        return proc.start()

    def start_controller(self, wait: bool = True) -> Proc:
        config = self.workdir / "controller.toml"
        settings = dict(self.controller_config)
        if self.pki is not None:
            settings["tls"] = self.tls_config("controller", "controller")
        config.write_text(tomli_w.dumps(settings))
        proc = self._proc(
            "controller",
            [
                sys.executable,
                "-m",
                "controller",
                "--listen",
                self.address,
                "--data-dir",
                str(self.workdir / "controller-data"),
                "--config",
                str(config),
                *self._plaintext(),
            ],
        )
        if wait:
            self.wait_serving(proc)
        return proc

    def wait_serving(self, proc: Proc, timeout: float = 20.0) -> None:
        def serving() -> bool:
            if not proc.alive():
                raise RuntimeError(f"controller exited:\n{proc.log_text()}")
            with self.channel() as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=1.0
                    )
                except grpc.RpcError:
                    return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        wait_for(serving, timeout, f"the controller to serve on {self.address}", 0.1)

    def start_agent(
        self,
        host_id: str,
        mounts: Sequence[str | Path],
        config: Mapping[str, Any] | None = None,
        state_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        prefix: Sequence[str] = (),
        controller: str | None = None,
    ) -> Proc:
        """Starts an agent; its config file and log live in the workdir, its state in
        `state_dir` (default: the workdir too); `env` adds to the inherited environment.
        `prefix` runs it under a command (e.g. `ip netns exec NS`); `controller` replaces
        the controller's address (e.g. a relay's)."""
        home = self.workdir / f"agent-{host_id}"
        home.mkdir(parents=True, exist_ok=True)
        state = state_dir or home
        config_path = home / "agent.toml"
        settings = dict(config or {})
        if self.pki is not None:
            settings["controller"] = {
                **self.tls_config("agent", host_id),
                **settings.get("controller", {}),
            }
        config_path.write_text(tomli_w.dumps(settings))
        argv = [
            sys.executable,
            "-m",
            "agent",
            "--controller",
            controller or self.address,
            *self._plaintext(),
            "--host-id",
            host_id,
            "--state-dir",
            str(state),
            "--config",
            str(config_path),
        ]
        if "testing" in settings:
            argv.append("--allow-testing")
        for mount in mounts:
            argv += ["--mount", str(mount)]
        return self._proc(f"agent-{host_id}", [*prefix, *argv], env)

    def start_process(self, name: str, argv: Sequence[str]) -> Proc:
        """Starts a helper process (a relay, a load generator) stopped with the cluster."""
        return self._proc(name, argv)

    def ctl_argv(self, *args: str) -> list[str]:
        """The command line of `hangwatchctl ARGS` against this cluster's controller."""
        return [
            sys.executable,
            "-m",
            "hangwatchctl",
            "--controller",
            self.address,
            *self.ctl_transport(),
            *args,
        ]

    def ctl_transport(self, role: str = "admin", name: str = "cluster-admin") -> list[str]:
        """hangwatchctl's flags to reach this controller: --insecure, or TLS as NAME."""
        if self.pki is None:
            return ["--insecure"]
        files = self.tls_config(role, name)
        return ["--ca", files["ca_file"], "--cert", files["cert_file"], "--key", files["key_file"]]

    def _plaintext(self) -> list[str]:
        return ["--insecure"] if self.pki is None else []

    def ctl(self, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.ctl_argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
