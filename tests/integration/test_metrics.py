"""Both programs serve /metrics with the series an SRE's dashboards need, exactly the
families docs/metrics.md lists, under names promtool accepts; the dashboard and the
alert rules ask for nothing else. One TLS cluster for the module: a controller with a
group and an unreachable webhook sink, two agents."""

from __future__ import annotations

import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from clusterkit import FAST_AGENT, FAST_CONTROLLER, SYNTHETIC, burst_agent, stored_count
from metricdocs import PROGRAMS, documented, expressions, metric_names, promtool
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from lab.localcluster import LocalCluster, Proc, free_port, wait_for


class Scraped:
    """A program's /metrics: the text, and its families by name."""

    def __init__(self, port: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            self.text = answer.read().decode()
        self.families = {m.name: m for m in text_string_to_metric_families(self.text)}

    def __getitem__(self, name: str) -> Metric:
        return self.families[name]

    def values(self, name: str, **labels: str) -> list[float]:
        """Values of the family's plain samples (not buckets) with these labels."""
        metric = self.families[name]
        return [
            s.value
            for s in metric.samples
            if s.name in (name, name + "_total", name + "_count")
            and all(s.labels.get(k) == v for k, v in labels.items())
        ]


class Setup:
    def __init__(self, cluster: LocalCluster, ports: dict[str, int], agents: dict[str, Proc]):
        self.cluster = cluster
        self.ports = ports
        self.agents = agents
        self.mount = ""

    def scrape(self, program: str) -> Scraped:
        return Scraped(self.ports[program])


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    workdir = tmp_path_factory.mktemp("metrics")
    mount = workdir / "srv"
    mount.mkdir()
    ports = {"controller": free_port(), "agent": free_port(), "old1": free_port()}
    cluster = LocalCluster(
        workdir,
        {
            **FAST_CONTROLLER,
            "metrics": {"listen": f"127.0.0.1:{ports['controller']}"},
            "groups": [
                {"name": "mail", "members": ["m1", "m2"], "mounts": [str(mount)], "primary": "m1"}
            ],
            # A sink nobody listens on: its failures show per sink.
            "webhooks": [
                {
                    "name": "nowhere",
                    "kind": "slack",
                    "events": "all",
                    "url": f"http://127.0.0.1:{free_port()}/",
                    "backoff_base_seconds": 0.1,
                    "backoff_cap_seconds": 0.2,
                }
            ],
        },
        pki=workdir / "pki",
    )
    try:
        cluster.start_controller()
        agents = {
            "m1": cluster.start_agent(
                "m1",
                [mount],
                {**burst_agent(20, 100), "metrics": {"listen": f"127.0.0.1:{ports['agent']}"}},
            ),
            "old1": cluster.start_agent(
                "old1", [mount], {**FAST_AGENT, "metrics": {"listen": f"127.0.0.1:{ports['old1']}"}}
            ),
        }
        s = Setup(cluster, ports, agents)
        s.mount = str(mount)
        wait_for(lambda: stored_count(cluster) == 20, 30, "the burst to be stored")
        wait_for(
            lambda: s.scrape("agent").values("hangwatch_probe_duration_seconds", mount=s.mount),
            30,
            "a probe to be measured",
        )
        wait_for(
            lambda: (
                s.scrape("controller").values(
                    "hangwatch_webhook_delivery_failures", sink="nowhere"
                )[0]
                > 0
            ),
            30,
            "a failed webhook attempt",
        )
        wait_for(
            lambda: (
                s.scrape("controller").values(
                    "hangwatch_host_liveness", host="old1", liveness="HEALTHY"
                )
                == [1.0]
            ),
            30,
            "old1 to heartbeat",
        )
        wait_for(
            lambda: s.scrape("controller").values("hangwatch_agents_connected") == [2.0],
            30,
            "both command streams to open",
        )
        yield s
    finally:
        cluster.stop()


def test_the_controller_exports_the_cluster_as_it_sees_it(setup: Setup) -> None:
    c = setup.scrape("controller")
    assert c.values("hangwatch_build_info", program="controller") == [1.0]
    assert c.values("hangwatch_events_ingested", kind=SYNTHETIC, severity="info") == [20.0]
    (age,) = c.values("hangwatch_host_heartbeat_age_seconds", host="m1")
    assert 0 <= age < 5
    assert c.values("hangwatch_host_liveness", host="m1", liveness="HEALTHY") == [1.0]
    # m2 is a member of mail whose agent never registered: down.
    assert c.values("hangwatch_host_liveness", host="m2", liveness="UNREACHABLE") == [1.0]
    health = c.values("hangwatch_host_mount_health", host="m1", mount=setup.mount, state="OK")
    assert health == [1.0]
    assert c.values("hangwatch_agents_connected") == [2.0]
    assert c.values("hangwatch_group_info", group="mail", mode="manual", primary="m1") == [1.0]
    assert c.values("hangwatch_failovers", group="mail", state="FAILED") == [0.0]
    assert c.values("hangwatch_maintenance", scope="group", target="mail") == [0.0]
    assert c.values("hangwatch_automation_enabled") == [1.0]
    handled = c.values(
        "hangwatch_grpc_server_handled", method="AgentService/ReportEvents", code="OK"
    )
    assert handled and handled[0] >= 1
    assert c["hangwatch_grpc_server_handling_seconds"].type == "histogram"
    assert c.values("hangwatch_grpc_server_streams_open", method="AgentService/Commands") == [2.0]
    for name in ("deliveries", "dead_letters", "dead_letters_stored", "queue_events"):
        assert c.values(f"hangwatch_webhook_{name}", sink="nowhere"), name
    assert c.values("hangwatch_webhook_lag_events", sink="nowhere")
    (own,) = c.values("hangwatch_certificate_expires_in_seconds", certificate="own")
    (ca,) = c.values("hangwatch_certificate_expires_in_seconds", certificate="ca")
    assert 0 < own < ca
    (cpu,) = c.values("process_cpu_seconds")
    assert cpu > 0


def test_the_agent_exports_its_own_view(setup: Setup) -> None:
    a = setup.scrape("agent")
    assert a.values("hangwatch_build_info", program="agent") == [1.0]
    health = {s.labels["state"]: s.value for s in a["hangwatch_mount_health"].samples}
    assert health == {"OK": 1.0, "SUSPECT": 0.0, "LOCKED": 0.0, "RECOVERING": 0.0}
    probes = a["hangwatch_probe_duration_seconds"]
    assert probes.type == "histogram"
    assert {s.labels.get("le") for s in probes.samples if s.name.endswith("_bucket")} >= {"+Inf"}
    assert a.values("hangwatch_events", kind=SYNTHETIC, severity="info") == [20.0]
    assert a["hangwatch_lockup_detection_seconds"].type == "histogram"
    assert a.values("hangwatch_controller_connected") == [1.0]
    beats = a.values("hangwatch_grpc_client_handled", method="AgentService/Heartbeat", code="OK")
    assert beats and beats[0] >= 1
    (own,) = a.values("hangwatch_certificate_expires_in_seconds", certificate="own")
    assert own > 0
    ticks = {
        s.labels["source"]: s.value for s in a["hangwatch_source_last_tick_age_seconds"].samples
    }
    assert "probe" in ticks and all(v >= 0 for v in ticks.values())
    (rss,) = a.values("process_resident_memory_bytes")
    assert rss > 1_000_000
    # The scrape adds host and cluster labels: the agent's own series carry none.
    assert not any("host" in s.labels for m in a.families.values() for s in m.samples)


def test_docs_metrics_md_lists_exactly_what_each_program_exports(setup: Setup) -> None:
    docs = documented()
    for program in PROGRAMS:
        scraped = setup.scrape(program).families
        expected = {name for name, d in docs.items() if program in d.programs}
        assert set(scraped) - expected == set(), f"{program} exports, docs/metrics.md lacks"
        assert expected - set(scraped) == set(), f"docs/metrics.md lists, {program} lacks"
        for name, family in scraped.items():
            assert family.type == docs[name].type, name
            labels = {k for s in family.samples for k in s.labels} - {"le"}
            if family.samples:
                assert labels == docs[name].labels, name


def test_promtool_accepts_both_programs_metrics(setup: Setup) -> None:
    for program in PROGRAMS:
        checked = subprocess.run(
            [promtool(), "check", "metrics"],
            input=setup.scrape(program).text,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert checked.returncode == 0, f"{program}: {checked.stdout}{checked.stderr}"


def test_the_dashboard_and_the_rules_name_only_exported_metrics(setup: Setup) -> None:
    exported = set()
    for program in PROGRAMS:
        for family in setup.scrape(program).families.values():
            exported.add(family.name)
            exported |= {family.name + suffix for suffix in ("_total", "_bucket", "_count", "_sum")}
    missing = {}
    for where, expr in expressions():
        for name in metric_names(expr) - exported:
            missing[name] = where
    assert not missing, f"named by monitoring/ but exported by neither program: {missing}"


def test_a_removed_host_leaves_no_series(setup: Setup) -> None:
    setup.agents["old1"].stop()
    removed = setup.cluster.ctl("host", "remove", "old1", "--reason", "retired")
    assert removed.returncode == 0, removed.stderr
    after = setup.scrape("controller")
    left = [s for m in after.families.values() for s in m.samples if "old1" in s.labels.values()]
    assert left == []
    assert after.values("hangwatch_host_liveness", host="m1", liveness="HEALTHY") == [1.0]
    refused = setup.cluster.ctl("host", "remove", "m1", "--reason", "no")
    assert refused.returncode == 1 and "mail (its primary)" in refused.stderr


def test_metrics_off_when_listen_is_empty(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, {**FAST_CONTROLLER, "metrics": {"listen": ""}})
    try:
        proc = cluster.start_controller()
        assert "metrics on" not in proc.log_text()
    finally:
        cluster.stop()
