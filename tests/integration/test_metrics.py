"""Both programs serve /metrics over HTTP with the series an SRE's dashboards need."""

from __future__ import annotations

from pathlib import Path

from clusterkit import FAST_CONTROLLER, SYNTHETIC, Admin, burst_agent, scrape, stored_count
from prometheus_client.metrics_core import Metric

from lab.localcluster import LocalCluster, free_port, wait_for


def labelled(metric: Metric, **labels: str) -> list[float]:
    return [
        s.value
        for s in metric.samples
        if s.name in (metric.name, metric.name + "_total", metric.name + "_count")
        and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def test_controller_and_agent_export_their_own_view(
    cluster: LocalCluster, admin: Admin, tmp_path: Path
) -> None:
    controller_port, agent_port = free_port(), free_port()
    cluster.controller_config = {
        **FAST_CONTROLLER,
        "metrics": {"listen": f"127.0.0.1:{controller_port}"},
        # A sink nobody listens on: its failures show per sink.
        "webhooks": [
            {
                "name": "nowhere",
                "kind": "slack",
                "url": f"http://127.0.0.1:{free_port()}/",
                "backoff_base_seconds": 0.1,
                "backoff_cap_seconds": 0.2,
            }
        ],
    }
    cluster.start_controller()
    cluster.start_agent(
        "m1",
        [tmp_path],
        {**burst_agent(20, 100), "metrics": {"listen": f"127.0.0.1:{agent_port}"}},
    )
    wait_for(lambda: stored_count(cluster) == 20, 30, "the burst to be stored")
    wait_for(
        lambda: labelled(
            scrape(agent_port)["hangwatch_probe_duration_seconds"], mount=str(tmp_path)
        ),
        30,
        "a probe to be measured",
    )
    wait_for(
        lambda: (
            labelled(
                scrape(controller_port)["hangwatch_webhook_delivery_failures"], sink="nowhere"
            )[0]
            > 0
        ),
        30,
        "a failed webhook attempt",
    )

    c = scrape(controller_port)
    assert labelled(c["hangwatch_build_info"], program="controller") == [1.0]
    assert labelled(c["hangwatch_events_ingested"], kind=SYNTHETIC, severity="info") == [20.0]
    (age,) = labelled(c["hangwatch_host_heartbeat_age_seconds"], host="m1")
    assert 0 <= age < 5
    assert labelled(c["hangwatch_rpc_duration_seconds"], method="AgentService/ReportEvents")[0] >= 1
    assert c["hangwatch_rpc_duration_seconds"].type == "histogram"
    for name in ("deliveries", "dead_letters", "queue_events", "lag_events"):
        assert labelled(c[f"hangwatch_webhook_{name}"], sink="nowhere"), name
    assert c["hangwatch_failovers"].type == "gauge"

    a = scrape(agent_port)
    assert labelled(a["hangwatch_build_info"], program="agent") == [1.0]
    mount = str(tmp_path)
    health = {s.labels["state"]: s.value for s in a["hangwatch_mount_health"].samples}
    assert health == {"OK": 1.0, "SUSPECT": 0.0, "LOCKED": 0.0, "RECOVERING": 0.0}
    probes = a["hangwatch_probe_duration_seconds"]
    assert probes.type == "histogram"
    assert {s.labels.get("le") for s in probes.samples if s.name.endswith("_bucket")} >= {"+Inf"}
    assert labelled(a["hangwatch_events"], kind=SYNTHETIC, severity="info") == [20.0]
    for name in (
        "hangwatch_spool_events",
        "hangwatch_outbox_events",
        "hangwatch_spool_dropped_events",
        "hangwatch_outbox_dropped_events",
        "hangwatch_command_results",
    ):
        assert name in a, name
    ticks = {
        s.labels["source"]: s.value for s in a["hangwatch_source_last_tick_age_seconds"].samples
    }
    assert "probe" in ticks and all(v >= 0 for v in ticks.values())
    if Path("/dev/kmsg").exists():
        for name in ("records", "records_lost", "records_malformed"):
            assert f"hangwatch_kmsg_{name}" in a, name
    # The scrape adds host and cluster labels: the agent's own series carry none.
    assert not any("host" in s.labels for m in a.values() for s in m.samples), mount
