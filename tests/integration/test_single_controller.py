"""One controller per address and per data directory, with real controller processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lab.localcluster import LocalCluster, free_port

# A second controller that is (wrongly) let start keeps serving: give up on it then.
REFUSAL_SECONDS = 20


def _controller(listen: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "controller", "--insecure", "--listen", listen]
    try:
        return subprocess.run(
            [*argv, "--data-dir", str(data_dir)],
            capture_output=True,
            text=True,
            timeout=REFUSAL_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the second controller started and served: {exc.stderr!r}") from None


def test_second_controller_on_the_same_address_is_refused(cluster: LocalCluster, tmp_path):
    """gRPC's SO_REUSEPORT let a second controller bind the same address and take a share
    of the connections; now it exits 2 saying the address is in use. Fails before the fix
    (the second controller serves)."""
    first = cluster.start_controller()
    result = _controller(cluster.address, tmp_path / "other-data")
    assert result.returncode == 2, result.stderr
    assert f"error: cannot listen on {cluster.address}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert first.alive()
    cluster.wait_serving(first)


def test_second_controller_on_the_same_data_dir_is_refused(cluster: LocalCluster):
    """Two controllers on one database both ran failovers from it; now the second exits 2
    naming the data directory and the holder's pid. Fails before the fix."""
    first = cluster.start_controller()
    data_dir = cluster.workdir / "controller-data"
    result = _controller(f"127.0.0.1:{free_port()}", data_dir)
    assert result.returncode == 2, result.stderr
    assert (
        f"error: data directory {data_dir} is in use by another controller (pid {first.pid};"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    cluster.wait_serving(first)


def test_the_lock_goes_with_its_holder_even_on_a_crash(cluster: LocalCluster):
    """A killed controller leaves no stale lock: the next one starts on the same data."""
    first = cluster.start_controller()
    first.kill()
    second = cluster.start_controller()
    cluster.wait_serving(second)


def test_an_address_grpc_cannot_bind_is_a_clear_error(tmp_path):
    """`--insecure --listen 127.1:PORT` passes the loopback check (the C library reads
    127.1 as 127.0.0.1) but gRPC cannot resolve it: that was a traceback, now exit 2
    naming the address. Fails before the fix."""
    listen = f"127.1:{free_port()}"
    result = _controller(listen, tmp_path / "data")
    assert result.returncode == 2, result.stderr
    assert f"error: cannot listen on {listen}: gRPC cannot resolve or bind" in result.stderr
    assert "Traceback" not in result.stderr
