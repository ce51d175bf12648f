"""The daemons' command lines: --version, the default config file, the [testing] gate."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import hangwatch
from agent import cli as agent_cli
from controller import cli as controller_cli

PROGRAMS = [
    (agent_cli, "hangwatch-agent", "/etc/hangwatch/agent.toml"),
    (controller_cli, "hangwatch-controller", "/etc/hangwatch/controller.toml"),
]


@pytest.mark.parametrize(("module", "program", "default"), PROGRAMS)
def test_version_and_help_name_the_default_config(module, program, default):
    runner = CliRunner()
    version = runner.invoke(module.main, ["--version"])
    assert version.exit_code == 0
    assert version.output == f"{program} {hangwatch.__version__}\n"
    shown = runner.invoke(module.main, ["--help"], terminal_width=200)
    assert f"[default: {default}, when it exists]" in shown.output
    assert "the file it came from" in shown.output


@pytest.mark.parametrize(("module", "program", "default"), PROGRAMS)
def test_the_default_config_is_read_when_present_and_no_config_is_given(
    tmp_path, monkeypatch, module, program, default
):
    path = tmp_path / "site.toml"
    monkeypatch.setattr(module, "DEFAULT_CONFIG", path)
    runner = CliRunner()
    missing = runner.invoke(module.main, ["--print-config"])
    assert missing.exit_code == 0, missing.output
    assert missing.output.startswith(f"# no config file ({path} does not exist)")
    path.write_text("[log]\nlevel = 'debug'\n")
    found = runner.invoke(module.main, ["--print-config"])
    assert found.exit_code == 0, found.output
    assert found.output.startswith(f"# config file: {path} (flags override it)\n")
    assert 'level = "debug"' in found.output
    # --config wins over the default file.
    other = tmp_path / "other.toml"
    other.write_text("[log]\nlevel = 'error'\n")
    given = runner.invoke(module.main, ["--config", str(other), "--print-config"])
    assert given.output.startswith(f"# config file: {other} ")
    assert 'level = "error"' in given.output


def test_the_agent_takes_testing_knobs_only_with_the_flag(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("[testing]\nsynthetic_events = 3\n")
    runner = CliRunner()
    refused = runner.invoke(agent_cli.main, ["--config", str(path), "--print-config"])
    assert refused.exit_code == 2
    assert f"error: {path}: section [testing]" in refused.output
    assert "--allow-testing" in refused.output
    allowed = runner.invoke(
        agent_cli.main, ["--config", str(path), "--allow-testing", "--print-config"]
    )
    assert allowed.exit_code == 0, allowed.output
    assert "[testing]\nsynthetic_events = 3\n" in allowed.output
