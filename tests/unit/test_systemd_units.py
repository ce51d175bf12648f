"""The systemd units, tmpfiles/sysusers snippets and example configs in systemd/.

The units are parsed and checked for what the agent needs (and must not lose), and
verified by the real `systemd-analyze` offline, in a scratch root holding the
distribution's units and stand-ins for the programs (verify needs every Exec*=
binary to exist).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.config import AgentConfig
from controller.config import ControllerConfig
from hangwatch import config as cfg

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
AGENT = SYSTEMD / "hangwatch-agent.service"
CONTROLLER = SYSTEMD / "hangwatch-controller.service"
MOUNTS_DROPIN = SYSTEMD / "examples" / "hangwatch-agent.service.d" / "mounts.conf"
UNITS = [AGENT, CONTROLLER]
# Recorded in docs/operations.md; `--threshold` is on a 0-100 scale (exposure x 10).
EXPOSURE_LIMIT = {AGENT.name: 30, CONTROLLER.name: 15}

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(path: Path) -> Unit:
    """Sections of (key, value) in file order; keys may repeat, as in systemd."""
    sections: Unit = {}
    current = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        assert not line.endswith("\\"), f"{path.name}:{number}: keep directives on one line"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        assert current is not None, f"{path.name}:{number}: directive outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}:{number}: not KEY=VALUE: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: Unit, section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def one(unit: Unit, section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= appears {len(found)} times"
    return found[0]


def words(unit: Unit, section: str, key: str) -> set[str]:
    return {w for v in values(unit, section, key) for w in v.split()}


@pytest.fixture(params=UNITS, ids=lambda p: p.name)
def unit(request: pytest.FixtureRequest) -> Unit:
    return parse_unit(request.param)


def test_service_basics(unit):
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "WatchdogSec") == "30s"
    assert one(unit, "Service", "Restart") == "always"
    assert one(unit, "Service", "ExecReload") == "kill -HUP $MAINPID"
    assert one(unit, "Unit", "StartLimitIntervalSec") == "10min"
    assert 3 <= int(one(unit, "Unit", "StartLimitBurst")) <= 20
    assert values(unit, "Install", "WantedBy") == ["multi-user.target"]


def test_hardening_common_to_both(unit):
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "SystemCallArchitectures": "native",
    }.items():
        assert one(unit, "Service", key) == value, key
    # Nothing but the state dir is writable in the unit itself.
    assert values(unit, "Service", "ReadWritePaths") == []
    assert values(unit, "Service", "StateDirectory")


def test_exec_start_runs_the_venv_at_the_fixed_prefix():
    agent, controller = parse_unit(AGENT), parse_unit(CONTROLLER)
    assert one(agent, "Service", "ExecStart") == (
        "/opt/hangwatch/bin/hangwatch-agent --config /etc/hangwatch/agent.toml --log-format json"
    )
    assert one(controller, "Service", "ExecStart") == (
        "/opt/hangwatch/bin/hangwatch-controller --config /etc/hangwatch/controller.toml "
        "--log-format json"
    )


def test_a_config_error_is_not_restarted(unit):
    # The programs exit 2 on a bad config or flag; restarting cannot fix that.
    assert one(unit, "Service", "RestartPreventExitStatus") == "2"


def test_documentation_points_to_the_installed_docs_and_the_project(unit):
    docs = values(unit, "Unit", "Documentation")
    assert "file:/opt/hangwatch/share/doc/hangwatch/operations.md" in docs
    project = tomllib.loads((SYSTEMD.parent / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Documentation"] in docs


def test_controller_gets_its_sink_secrets_as_credentials():
    controller = parse_unit(CONTROLLER)
    assert values(controller, "Service", "LoadCredential") == ["secrets:/etc/hangwatch/secrets"]
    # systemd does not create the directory: the tmpfiles snippet does, root only.
    tmpfiles = (SYSTEMD / "hangwatch.tmpfiles.conf").read_text()
    assert re.search(r"^d\s+/etc/hangwatch/secrets\s+0700\s+root\s+root\s", tmpfiles, re.M)


def test_agent_keeps_its_senses():
    agent = parse_unit(AGENT)
    # Each of these blinds the agent (see FIELD-NOTES: systemd).
    assert values(agent, "Service", "ProtectKernelLogs") in ([], ["no"])
    assert values(agent, "Service", "PrivateDevices") in ([], ["no"])
    assert values(agent, "Service", "ProcSubset") in ([], ["all"])
    assert values(agent, "Service", "ProtectProc") in ([], ["default"])
    assert one(agent, "Service", "DevicePolicy") == "closed"
    assert "/dev/kmsg r" in values(agent, "Service", "DeviceAllow")
    assert words(agent, "Service", "RestrictAddressFamilies") == {
        "AF_UNIX",
        "AF_INET",
        "AF_INET6",
        "AF_NETLINK",
    }
    # CAP_SYSLOG for /dev/kmsg; CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH for the
    # wchan, fd and cwd of other users' D-state tasks (checked with setpriv).
    assert words(agent, "Service", "CapabilityBoundingSet") == {
        "CAP_SYSLOG",
        "CAP_SYS_PTRACE",
        "CAP_DAC_READ_SEARCH",
    }
    assert values(agent, "Service", "User") in ([], ["root"])


def test_controller_is_unprivileged():
    controller = parse_unit(CONTROLLER)
    user = one(controller, "Service", "User")
    assert user not in ("", "root", "0")
    assert values(controller, "Service", "CapabilityBoundingSet") == [""]
    assert values(controller, "Service", "AmbientCapabilities") == [""]
    assert one(controller, "Service", "PrivateDevices") == "yes"
    assert one(controller, "Service", "ProtectKernelLogs") == "yes"
    sysusers = (SYSTEMD / "hangwatch.sysusers.conf").read_text()
    assert re.search(rf"^u\s+{user}\s", sysusers, re.M), "the controller's user is not declared"


def test_mounts_dropin_makes_mounts_writable_but_optional():
    dropin = parse_unit(MOUNTS_DROPIN)
    paths = values(dropin, "Service", "ReadWritePaths")
    assert paths
    # "-": a missing mount must not stop the agent from starting (and reporting it).
    assert all(p.startswith("-/") for p in paths)


def test_tmpfiles_match_state_dirs_and_defaults():
    lines = [
        line.split()
        for line in (SYSTEMD / "hangwatch.tmpfiles.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    dirs = {fields[1]: fields for fields in lines}
    assert all(fields[0] == "d" for fields in lines)
    assert {mode for _, _, mode, *_ in lines} == {"0700"}
    agent, controller = parse_unit(AGENT), parse_unit(CONTROLLER)
    assert AgentConfig().state_dir == "/var/lib/" + one(agent, "Service", "StateDirectory")
    assert ControllerConfig().data_dir == "/var/lib/" + one(controller, "Service", "StateDirectory")
    agent_dir, controller_dir = dirs[AgentConfig().state_dir], dirs[ControllerConfig().data_dir]
    assert agent_dir[2:5] == ["0700", "root", "root"]
    assert controller_dir[2] == "0700"
    assert controller_dir[3] == one(controller, "Service", "User")


# The example configs: every documented key, with its default, commented out.


def test_example_configs_are_generated_from_the_settings():
    script = SYSTEMD.parent / "scripts" / "gen-example-configs"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("example", "cls"),
    [("agent.toml", AgentConfig), ("controller.toml", ControllerConfig)],
)
def test_example_config_uncommented_is_the_defaults(tmp_path, example, cls):
    text = (SYSTEMD / "examples" / example).read_text()
    lines = [
        line[2:] if re.fullmatch(r"# [a-z_]+ = .*", line) else line for line in text.splitlines()
    ]
    assert sum(line != raw for line, raw in zip(lines, text.splitlines(), strict=True)) >= 5
    path = tmp_path / example
    # The hostname default is shown as a placeholder.
    path.write_text("\n".join(line for line in lines if not line.startswith("host_id = ")))
    assert dataclasses.asdict(cfg.load(cls, path)) == dataclasses.asdict(cls())


# The real systemd-analyze.


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    units = next(
        (p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()),
        None,
    )
    if found and units:
        return found
    reason = "systemd-analyze is not installed" if not found else "no system unit directory"
    if os.environ.get("HANGWATCH_REQUIRE_ROOT_TESTS") == "1":
        pytest.fail(f"required (HANGWATCH_REQUIRE_ROOT_TESTS=1): {reason}", pytrace=False)
    pytest.skip(reason)


def scratch_root(tmp_path: Path, unit: Path, dropins: Sequence[Path] = ()) -> Path:
    """A root with the distribution's units, `unit` installed, and a stand-in for each
    program its Exec*= lines run."""
    root = tmp_path / "root"
    system_units = Path("/usr/lib/systemd/system")
    if not system_units.is_dir():
        system_units = Path("/lib/systemd/system")
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    installed = root / "etc/systemd/system"
    installed.mkdir(parents=True)
    shutil.copy(unit, installed / unit.name)
    if dropins:
        dropin_dir = installed / f"{unit.name}.d"
        dropin_dir.mkdir()
        for dropin in dropins:
            shutil.copy(dropin, dropin_dir / dropin.name)
    for section in parse_unit(unit).values():
        for key, value in section:
            if key.startswith("Exec"):
                program = value.split()[0].lstrip("-@:+!")
                stand_in = root / (program.lstrip("/") if "/" in program else f"usr/bin/{program}")
                stand_in.parent.mkdir(parents=True, exist_ok=True)
                stand_in.write_text("#!/bin/sh\n")
                stand_in.chmod(0o755)
    return root


def verify(tmp_path: Path, unit: Path, dropins: Sequence[Path] = ()):
    root = scratch_root(tmp_path, unit, dropins)
    return subprocess.run(
        [systemd_analyze(), "verify", f"--root={root}", "--man=no", unit.name],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify(tmp_path, path):
    result = verify(tmp_path, path, [MOUNTS_DROPIN] if path == AGENT else [])
    # Unknown or misspelt directives are only warnings: any output fails the test.
    assert result.returncode == 0 and not result.stderr.strip() and not result.stdout.strip(), (
        result.stderr + result.stdout
    )


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        # systemd 252 has no Type=notify-reload (253+): a warning, exit status 0.
        ("Type=notify\n", "Type=notify-reload\n", "Failed to parse service type"),
        ("ExecStart=/opt/hangwatch/bin/", "ExecStart=relative/", "Neither a valid executable"),
    ],
)
def test_verify_catches_a_broken_unit(tmp_path, old, new, complaint):
    broken = tmp_path / "hangwatch-agent.service"
    broken.write_text(AGENT.read_text().replace(old, new))
    result = verify(tmp_path, broken)
    assert complaint in result.stderr


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_exposure_stays_within_the_recorded_limit(path):
    limit = EXPOSURE_LIMIT[path.name]
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=true", f"--threshold={limit}", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert score, result.stdout + result.stderr
    assert result.returncode == 0, f"exposure {score.group(1)} is above {limit / 10}"


def test_controller_keeps_proc_stat_for_its_process_metrics():
    # ProcSubset=pid hides /proc/stat; prometheus_client's ProcessCollector then
    # exports no process_* series at all (it needs the boot time there).
    assert values(parse_unit(CONTROLLER), "Service", "ProcSubset") in ([], ["all"])
