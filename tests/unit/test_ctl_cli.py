"""hangwatchctl against a real controller (one process for the module), in process with
click's CliRunner: -o anywhere, JSON from every command, maintenance in view, --since
times and durations, times with their zone, completion, and help that helps."""

from __future__ import annotations

import datetime
import json
import re
import time
from collections.abc import Iterator

import click
import grpc
import pytest
from click.testing import CliRunner, Result

from hangwatch import pbtime
from hangwatch.ids import new_ulid
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from hangwatchctl.cli import main
from lab.localcluster import LocalCluster

HOSTS = ("h1", "h2")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    workdir = tmp_path_factory.mktemp("ctl")
    c = LocalCluster(
        workdir,
        {
            "groups": [
                {
                    "name": "mail",
                    "members": list(HOSTS),
                    "mounts": ["/srv/mail"],
                    "primary": "h1",
                }
            ]
        },
    )
    c.start_controller()
    with grpc.insecure_channel(c.address) as channel:
        stub = agent_grpc.AgentServiceStub(channel)
        for host in HOSTS:
            stub.Register(agent_pb.RegisterRequest(host_id=host, boot_id="b"), timeout=10)
    yield c
    c.stop()


def ctl(cluster: LocalCluster, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        main,
        ["--controller", cluster.address, "--insecure", "--as", "tester", *args],
        prog_name="hangwatchctl",
        env=env,
    )


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def report(cluster: LocalCluster, count: int, kind: str) -> None:
    """Events over AgentService, as an agent sends them; stored when the call returns."""
    events = [
        pb.Event(
            id=new_ulid(),
            host_id="h2",
            host_seq=int(time.time() * 1e6) + i,
            kind=kind,
            severity=pb.SEVERITY_WARNING,
            occurred_at=pbtime.timestamp(time.time()),
            summary=f"{kind.lower()} {i}",
        )
        for i in range(count)
    ]
    with grpc.insecure_channel(cluster.address) as channel:
        agent_grpc.AgentServiceStub(channel).ReportEvents(
            agent_pb.ReportEventsRequest(host_id="h2", events=events), timeout=10
        )


def test_output_option_before_or_after_the_command(cluster):
    before = json.loads(ok(ctl(cluster, "-o", "json", "hosts")))
    after = json.loads(ok(ctl(cluster, "hosts", "-o", "json")))
    assert [h["host_id"] for h in after["hosts"]] == [h["host_id"] for h in before["hosts"]]
    assert {"h1", "h2"} <= {h["host_id"] for h in after["hosts"]}
    # After the command wins.
    assert ok(ctl(cluster, "-o", "json", "hosts", "-o", "table")).startswith("HOST ")
    assert json.loads(ok(ctl(cluster, "host", "show", "h1", "--output", "json")))["host_id"] == "h1"


def test_every_command_takes_output_after_it():
    def leaves(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from leaves(sub, f"{path} {name}")
        else:
            yield path, command

    for path, command in leaves(main, "hangwatchctl"):
        outputs = [p for p in command.params if "-o" in getattr(p, "opts", ())]
        assert len(outputs) == 1, path
        if isinstance(outputs[0].type, click.Path):
            continue  # the command writes a file, -o names it (incident evidence -o FILE)
        assert {"table", "json"} <= set(getattr(outputs[0].type, "choices", ())), path


def test_maintenance_is_json_listable_and_shown_on_its_hosts(cluster):
    started = json.loads(
        ok(
            ctl(
                cluster,
                *("maintenance", "on", "--group", "mail", "--reason", "kernel rollout"),
                *("--until", "+2h", "-o", "json"),
            )
        )
    )
    assert started["scope"] == "MAINTENANCE_SCOPE_GROUP" and started["target"] == "mail"
    assert started["set_by"] == "tester" and started["until"].endswith("Z")
    try:
        listed = ok(ctl(cluster, "maintenance", "list"))
        assert re.search(
            r"^group mail\s+tester\s+\S+ \S+Z\s+\S+ \S+Z\s+kernel rollout$", listed, re.M
        )
        windows = json.loads(ok(ctl(cluster, "maintenance", "list", "-o", "json")))["windows"]
        assert [w["target"] for w in windows] == ["mail"]
        table = ok(ctl(cluster, "hosts"))
        assert "MAINTENANCE" in table.splitlines()[0]
        assert re.search(r"^h1 .*\bgroup mail\b", table, re.M)
        shown = ok(ctl(cluster, "host", "show", "h2"))
        assert re.search(
            r"^Maintenance: group mail \(by tester, \S+ \S+Z: kernel rollout\)$", shown, re.M
        )
    finally:
        ended = ok(
            ctl(cluster, "maintenance", "off", "--group", "mail", "--reason", "done", "-o", "json")
        )
        assert json.loads(ended)["enabled"] is False
    assert ok(ctl(cluster, "maintenance", "list")).strip() == "SCOPE  BY  SINCE  UNTIL  REASON"
    assert re.search(r"^Maintenance: none$", ok(ctl(cluster, "host", "show", "h2")), re.M)


def test_maintenance_off_takes_no_until(cluster):
    refused = ctl(cluster, "maintenance", "off", "--cluster", "--reason", "x", "--until", "+1h")
    assert refused.exit_code == 2
    assert "No such option" in refused.output and "--until" in refused.output


def test_automation_host_clear_and_ack_answer_in_json(cluster):
    off = json.loads(ok(ctl(cluster, "automation", "off", "--reason", "drill", "-o", "json")))
    assert off == {"enabled": False}
    on = json.loads(ok(ctl(cluster, "-o", "json", "automation", "on", "--reason", "drill over")))
    assert on == {"enabled": True}
    cleared = json.loads(ok(ctl(cluster, "host", "clear", "h2", "--reason", "fixed", "-o", "json")))
    assert cleared["host_id"] == "h2" and cleared["needs_clear"] is False
    acked = json.loads(ok(ctl(cluster, "failover", "ack", "mail", "--reason", "r", "-o", "json")))
    assert acked["name"] == "mail"
    assert ok(ctl(cluster, "host", "clear", "h2", "--reason", "fixed")) == "h2 cleared\n"


def test_host_remove_forgets_a_retired_host_and_refuses_a_group_member(cluster):
    with grpc.insecure_channel(cluster.address) as channel:
        agent_grpc.AgentServiceStub(channel).Register(
            agent_pb.RegisterRequest(host_id="old1", boot_id="b"), timeout=10
        )
    assert "old1" in ok(ctl(cluster, "hosts"))
    for host, how in (("h1", "mail (its primary)"), ("h2", "mail (a member)")):
        refused = ctl(cluster, "host", "remove", host, "--reason", "retired")
        assert refused.exit_code == 1, refused.output
        assert f"is in group {how}" in refused.output
    assert ok(ctl(cluster, "host", "remove", "old1", "--reason", "retired")) == "old1 removed\n"
    hosts = ok(ctl(cluster, "hosts", "-o", "json"))
    assert {h["host_id"] for h in json.loads(hosts)["hosts"]} == set(HOSTS)
    gone = ctl(cluster, "host", "remove", "old1", "--reason", "again")
    assert gone.exit_code == 1 and "no host 'old1'" in gone.output
    assert ctl(cluster, "host", "remove", "h2").exit_code == 2  # --reason is required
    entries = json.loads(ok(ctl(cluster, "audit", "-o", "json")))["entries"]
    mine = [(e["action"], e["target"], e["allowed"]) for e in entries if "remove" in e["action"]]
    assert mine == [
        ("host remove", "h1", False),
        ("host remove", "h2", False),
        ("host remove", "old1", True),
    ]


def test_events_since_a_time_a_duration_or_a_cursor(cluster):
    report(cluster, 3, "EARLY_KIND")
    between = time.time()  # after the first batch was stored, before the second
    report(cluster, 2, "LATE_KIND")

    def kinds(*args: str) -> list[str]:
        found = json.loads(ok(ctl(cluster, "events", "--host", "h2", *args, "-o", "json")))
        return [e["kind"] for e in found["events"]]

    iso = datetime.datetime.fromtimestamp(between, datetime.UTC).isoformat()
    assert kinds("--since", iso) == ["LATE_KIND"] * 2
    assert kinds("--since", "1h")[-5:] == ["EARLY_KIND"] * 3 + ["LATE_KIND"] * 2
    assert kinds("--since", "1h", "--limit", "1") == kinds("--limit", "1000")[:1]
    cursors = [e["cursor"] for e in json.loads(ok(ctl(cluster, "-o", "json", "events")))["events"]]
    assert kinds("--cursor", cursors[-2]) == ["LATE_KIND"]
    # The newest, without either.
    assert kinds("--limit", "2") == ["LATE_KIND"] * 2

    both = ctl(cluster, "events", "--since", "10m", "--cursor", "1")
    assert both.exit_code == 2 and "--since TIME or --cursor N, not both" in both.output
    bad = ctl(cluster, "events", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "'yesterday' is neither an ISO 8601 time nor a duration (10m, 2h)" in bad.output


def test_table_times_carry_their_zone(cluster, monkeypatch):
    report(cluster, 1, "ZONED_KIND")
    utc = ok(ctl(cluster, "events", "--kind", "ZONED_KIND"))
    assert re.search(r"\s\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+h2\s", utc)
    monkeypatch.setenv("TZ", "XYZ-5:30")  # POSIX: five and a half hours east of UTC
    time.tzset()
    try:
        local = ok(ctl(cluster, "--local", "events", "--kind", "ZONED_KIND"))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert re.search(r"\s\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+05:30\s+h2\s", local)


def test_shell_completion_as_documented(cluster):
    script = CliRunner().invoke(
        main, [], prog_name="hangwatchctl", env={"_HANGWATCHCTL_COMPLETE": "bash_source"}
    )
    assert script.exit_code == 0 and "_hangwatchctl_completion" in script.output
    words = CliRunner().invoke(
        main,
        [],
        prog_name="hangwatchctl",
        env={
            "_HANGWATCHCTL_COMPLETE": "bash_complete",
            "COMP_WORDS": "hangwatchctl maintenance l",
            "COMP_CWORD": "2",
        },
    )
    assert "plain,list" in words.output.split()
    assert "_HANGWATCHCTL_COMPLETE=bash_source" in ok(CliRunner().invoke(main, ["--help"]))


def test_every_option_and_command_says_what_it_does():
    def walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, command
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                yield from walk(sub, f"{path} {name}")

    for path, command in walk(main, "hangwatchctl"):
        assert len(command.get_short_help_str(200)) >= 25, path
        for param in command.params:
            if isinstance(param, click.Option):
                assert len(param.help or "") >= 15, f"{path} {param.opts}"


def test_upgrade_mark_lists_states_in_the_case_of_every_other_choice():
    result = CliRunner().invoke(main, ["upgrade", "mark", "--help"], terminal_width=200)
    assert "[pending|upgrading|done|failed|skipped]" in result.output
    assert "upgrading: you started the upgrade" in result.output


def test_times_are_read_in_the_zone_they_are_shown_in(monkeypatch):
    from hangwatchctl import timearg

    assert timearg.show(0, local=False) == "1970-01-01 00:00:00Z"
    assert timearg.parse_time("1970-01-01 00:00:00", local=False) == 0
    assert timearg.parse_time("1970-01-01T00:00:00Z", local=False) == 0
    monkeypatch.setenv("TZ", "XYZ-5:30")
    time.tzset()
    try:
        assert timearg.show(0, local=True) == "1970-01-01 05:30:00+05:30"
        assert timearg.parse_time("1970-01-01 05:30:00", local=True) == 0
        assert timearg.parse_time(timearg.show(86400.0, local=True), local=False) == 86400.0
    finally:
        monkeypatch.undo()
        time.tzset()
    assert [timearg.duration(t) for t in ("90s", "10m", "2h", "1d", "2x", "m")] == [
        90,
        600,
        7200,
        86400,
        None,
        None,
    ]


def test_switchover_at_refuses_what_is_no_time(cluster):
    bad = ctl(cluster, "switchover", "mail", "--to", "h2", "--at", "tomorrow")
    assert bad.exit_code == 2
    assert "'tomorrow' is neither an ISO 8601 time nor a duration (+30m, +2h)" in bad.output
