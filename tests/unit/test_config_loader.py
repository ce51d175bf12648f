"""The typed TOML loader on its own."""

from __future__ import annotations

import dataclasses

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


def test_testing_section_is_refused_unless_allowed(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('[testing]\nkernel_release_override = "6.1.0-fake"\n')
    with pytest.raises(ConfigError) as refused:
        cfg.load(AgentConfig, path)
    message = str(refused.value)
    assert str(path) in message and "[testing]" in message and "--allow-testing" in message
    allowed = cfg.load(AgentConfig, path, allow_testing=True)
    assert allowed.testing.kernel_release_override == "6.1.0-fake"


def test_a_program_without_testing_knobs_calls_it_an_unknown_key(tmp_path):
    path = tmp_path / "controller.toml"
    path.write_text("[testing]\n")
    with pytest.raises(ConfigError, match="unknown key 'testing'"):
        cfg.load(ControllerConfig, path, allow_testing=True)


def test_dump_shows_testing_knobs_only_when_set(tmp_path):
    assert "[testing]" not in cfg.dump(AgentConfig())
    path = tmp_path / "agent.toml"
    path.write_text("[testing]\nsynthetic_events = 5\n")
    shown = cfg.dump(cfg.load(AgentConfig, path, allow_testing=True))
    assert "[testing]\nsynthetic_events = 5\n" in shown


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


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        (
            "[liveness]\nheartbeat_interval_seconds = inf\n",
            "liveness.heartbeat_interval_seconds",
            "finite",
        ),
        ("[liveness]\nstale_after_seconds = nan\n", "liveness.stale_after_seconds", "finite"),
        ("[liveness]\nstale_after_seconds = -inf\n", "liveness.stale_after_seconds", "finite"),
        ("[failover]\nwindow_seconds = 1e400\n", "failover.window_seconds", "finite"),
        (
            "[failover]\nmax_concurrent = 36893488147419103232\n",
            "failover.max_concurrent",
            "64-bit",
        ),
        (
            "[failover]\nwindow_seconds = 36893488147419103232\n",
            "failover.window_seconds",
            "64-bit",
        ),
        ("[failover]\nwindow_seconds = 1e300\n", "failover.window_seconds", "at most"),
        ("[failover]\nmax_group_percent = 150\n", "failover.max_group_percent", "at most 100"),
        (
            "[liveness]\nheartbeat_interval_seconds = 7\n",
            "liveness.heartbeat_interval_seconds",
            "smaller than stale_after_seconds",
        ),
    ],
)
def test_numbers_out_of_range_are_refused_naming_the_key(tmp_path, text, key, words):
    """Non-finite floats, integers beyond 64 bits and values past a setting's bound were
    accepted (`heartbeat_interval_seconds = inf` then failed every Register with an
    OverflowError); now the loader refuses them, naming the key. Fails before the fix."""
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"key '{key}'") as caught:
        cfg.load(ControllerConfig, path)
    assert words in str(caught.value)


def test_finite_list_items_are_checked_too(tmp_path):
    """The checks reach values inside lists and tables, not only top-level keys."""

    @dataclasses.dataclass(frozen=True)
    class Limits:
        steps: list[float] = cfg.setting([], "steps")

    path = tmp_path / "c.toml"
    path.write_text("steps = [1.0, nan]\n")
    with pytest.raises(ConfigError, match=r"key 'steps\[1\]': must be a finite number"):
        cfg.load(Limits, path)
