"""Bad configuration: exit 2, a message naming the file (or flag) and the key, nothing started."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = [
    # (program, file contents, words the message must contain)
    ("controller", 'listen = "127.0.0.1:7443"\nlisten_port = 1\n', ["unknown key 'listen_port'"]),
    (
        "controller",
        '[liveness]\nstale_after_seconds = "six"\n',
        ["key 'liveness.stale_after_seconds'", "expected a number, got a string"],
    ),
    ("controller", 'listen = "localhost"\n', ["key 'listen'", "expected HOST:PORT"]),
    (
        "controller",
        "[liveness]\nstale_after_seconds = 20.0\n",
        ["key 'liveness.unreachable_after_seconds'", "greater than stale_after_seconds"],
    ),
    ("controller", '[log]\nformat = "xml"\n', ["key 'log.format'", "human, json"]),
    ("agent", 'mounts = ["relative/path"]\n', ["key 'mounts'", "not an absolute path"]),
    (
        "agent",
        '[controller]\naddress = "host:99999"\n',
        ["key 'controller.address'", "out of range"],
    ),
    (
        "agent",
        "[heartbeat]\ninterval_seconds = -1\n",
        ["key 'heartbeat.interval_seconds'", "greater than 0"],
    ),
    ("agent", "host_id = [\n", ["not valid TOML"]),
    (
        "agent",
        '[testing]\nkernel_release_override = "6.1.0-fake"\n',
        ["section [testing]", "--allow-testing"],
    ),
    (
        "controller",
        '[[webhooks]]\nname = "pd"\nkind = "pagerduty"\nurl = "https://pd.example/"\n'
        'routing_key_file = "/nonexistent/pd-routing-key"\n',
        [
            "key 'webhooks[0].routing_key_file'",
            "cannot read /nonexistent/pd-routing-key: No such file or directory",
        ],
    ),
    # Non-finite and 64-bit-overflowing numbers used to start (and then fail every
    # Register with an OverflowError, or overflow protobuf fields later).
    (
        "controller",
        "[liveness]\nheartbeat_interval_seconds = inf\n",
        ["key 'liveness.heartbeat_interval_seconds'", "finite"],
    ),
    (
        "controller",
        "[failover]\nmax_concurrent = 99999999999999999999\n",
        ["key 'failover.max_concurrent'", "64-bit"],
    ),
    ("agent", "[probe]\ninterval_seconds = nan\n", ["key 'probe.interval_seconds'", "finite"]),
    # A host id with control characters used to start and retry Register forever.
    ("agent", 'host_id = "mail\\u001b[2J"\n', ["key 'host_id'", "is not a host id"]),
]


@pytest.mark.parametrize(("program", "text", "words"), CASES)
def test_bad_config_file_exits_2_naming_file_and_key(tmp_path, program, text, words):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    data = tmp_path / "data"
    argv = [sys.executable, "-m", program, "--config", str(config), "--insecure"]
    argv += ["--data-dir", str(data)] if program == "controller" else ["--state-dir", str(data)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2, result.stderr
    assert str(config) in result.stderr
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.stderr
    assert not data.exists(), "nothing may start on a bad config"


def test_bad_flag_value_names_the_flag(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller",
            "--listen",
            "nonsense",
            "--insecure",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--listen: key 'listen'" in result.stderr


@pytest.mark.parametrize("program", ["controller", "agent", "hangwatchctl"])
def test_plaintext_refused_off_loopback(tmp_path, program):
    if program == "controller":
        argv = ["--listen", "0.0.0.0:7443", "--data-dir", str(tmp_path), "--insecure"]
    elif program == "agent":
        argv = [
            "--controller",
            "192.0.2.1:7443",
            "--mount",
            "/",
            "--state-dir",
            str(tmp_path),
            "--insecure",
        ]
    else:
        argv = ["--controller", "192.0.2.1:7443", "--insecure", "hosts"]
    result = subprocess.run(
        [sys.executable, "-m", program, *argv], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "only allowed on loopback" in result.stderr


@pytest.mark.parametrize("program", ["controller", "agent"])
def test_plaintext_never_a_default(tmp_path, program):
    argv = (
        ["--data-dir", str(tmp_path)]
        if program == "controller"
        else ["--mount", "/", "--state-dir", str(tmp_path)]
    )
    result = subprocess.run(
        [sys.executable, "-m", program, *argv], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "--insecure" in result.stderr


def _run(program: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", program, *argv], capture_output=True, text=True, timeout=30
    )


@pytest.mark.parametrize("host_id", ["bad host", "x" * 254, "-leading-dash", "tab\there"])
def test_agent_host_id_flag_is_validated_at_start(tmp_path, host_id):
    """An agent whose host id the controller would refuse used to start and retry
    Register forever; now it exits 2 naming the flag and key. Fails before the fix."""
    state = tmp_path / "state"
    argv = ["--host-id", host_id, "--mount", "/", "--state-dir", str(state), "--insecure"]
    result = _run("agent", *argv, "--controller", "127.0.0.1:1")
    assert result.returncode == 2, result.stderr
    assert "--host-id: key 'host_id'" in result.stderr
    assert "is not a host id" in result.stderr
    assert "Traceback" not in result.stderr
    assert not state.exists()


def test_print_config_shows_effective_values(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[liveness]\nstale_after_seconds = 4\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller",
            "--config",
            str(config),
            "--listen",
            "127.0.0.1:9999",
            "--print-config",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert 'listen = "127.0.0.1:9999"' in result.stdout
    assert "stale_after_seconds = 4.0" in result.stdout
    assert "unreachable_after_seconds = 15.0" in result.stdout
