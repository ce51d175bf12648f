"""The typed TOML loader on its own."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig
from controller.config import ControllerConfig
from hangwatch import config as cfg
from hangwatch.errors import ConfigError


def test_defaults_without_file():
    c = cfg.load(ControllerConfig, None)
    assert c.liveness.stale_after_seconds == 6.0
    assert c.insecure is False


def test_flags_override_file(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('host_id = "from-file"\n[heartbeat]\ninterval_seconds = 3\n')
    c = cfg.load(
        AgentConfig,
        path,
        {"host_id": ("from-flag", "--host-id"), "state_dir": (None, "--state-dir")},
    )
    assert c.host_id == "from-flag"
    assert c.heartbeat.interval_seconds == 3.0
    assert c.state_dir == "/var/lib/hangwatch"


def test_int_is_not_a_bool(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text("insecure = 1\n")
    with pytest.raises(ConfigError, match=r"a\.toml: key 'insecure': expected true or false"):
        cfg.load(ControllerConfig, path)


def test_table_where_value_expected(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text("[listen]\nx = 1\n")
    with pytest.raises(ConfigError, match="key 'listen': expected a string, got a table"):
        cfg.load(ControllerConfig, path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        cfg.load(ControllerConfig, tmp_path / "missing.toml")


def test_dump_round_trips(tmp_path):
    c = cfg.load(AgentConfig, None, {"mounts": (["/srv/a"], "--mount")})
    path = tmp_path / "dumped.toml"
    path.write_text(cfg.dump(c))
    assert cfg.load(AgentConfig, path) == c


def test_array_entries_are_named_in_errors(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[[groups]]\nname = "mail-b"\nmembers = ["h1"]\nmounts = ["/srv/mail"]\n')
    with pytest.raises(ConfigError) as info:
        cfg.load(ControllerConfig, path)
    assert str(info.value) == (
        f"{path}: groups[0] ('mail-b'): key 'members': a group needs at least two members"
    )


def test_parse_names_its_source():
    with pytest.raises(ConfigError, match=r"^packaged\.toml: key 'insecure': expected true"):
        cfg.parse(ControllerConfig, "insecure = 1\n", "packaged.toml")
    assert cfg.parse(ControllerConfig, "insecure = true\n", "packaged.toml").insecure
