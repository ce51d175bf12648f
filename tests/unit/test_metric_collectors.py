"""The collectors behind both programs' /metrics: what each series says, from plain
state (cluster views, transitions, certificates) and from a real gRPC server."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.core import Metric

from agent.health import HealthEngine, HealthSettings, State
from agent.lockuptimer import LockupTimer
from agent.signals import Kind, Severity, Signal
from controller.failover.machine import Failover
from controller.failover.model import (
    ClusterState,
    FailoverState,
    GroupView,
    HostView,
    Trigger,
)
from controller.metrics import IngestMetrics, StoreView, group_metrics, host_metrics
from controller.rpcmetrics import ServerMetrics
from hangwatch import pbtime, tls
from hangwatch.grpcmetrics import CallCounts
from hangwatch.tlsmetrics import CertificateExpiry
from hangwatch.v1 import types_pb2 as pb
from lab.pki import init_ca, issue


def samples(metrics: Any) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{family: {sorted label pairs: value}} of what a collector yields."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in metrics:
        assert isinstance(family, Metric)
        series = out.setdefault(family.name, {})
        for s in family.samples:
            series[tuple(sorted(s.labels.items()))] = s.value
    return out


def cluster(**overrides: Any) -> ClusterState:
    base: dict[str, Any] = {
        "now": 1000.0,
        "groups": (
            GroupView("mail", ("m1", "m2", "m3"), ("/srv",), "auto", "m1", 4, 1600.0),
            GroupView("web", ("w1",), ("/www",), "manual", "w1", 1, None, maintenance=True),
        ),
        "hosts": {
            "m1": HostView("m1", "HEALTHY", 0.5, {"/srv": "LOCKED"}),
            "m2": HostView("m2", "UNREACHABLE", 99.0, {"/srv": "OK"}, needs_clear=True),
            "w1": HostView("w1", "STALE", 3.0, {}, maintenance=True),
        },
        "automation": False,
    }
    return ClusterState(**{**base, **overrides})


def proposal(group: str, state: FailoverState, created_at: float) -> Failover:
    return Failover(
        id=f"{group}-{created_at}",
        group=group,
        state=state,
        trigger=Trigger.LOCKUP,
        from_host="m1",
        to_host="m2",
        reason="lockup",
        proposed_by="hangwatch",
        created_at=created_at,
    )


def label(**pairs: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(pairs.items()))


def test_hosts_liveness_and_mount_health_as_the_controller_sees_them():
    found = samples(host_metrics(cluster()))
    live = found["hangwatch_host_liveness"]
    assert live[label(host="m1", liveness="HEALTHY")] == 1.0
    assert live[label(host="m2", liveness="UNREACHABLE")] == 1.0
    assert live[label(host="w1", liveness="STALE")] == 1.0
    assert sum(live.values()) == 4  # m1, m2, w1 and m3, a member that never registered
    assert live[label(host="m3", liveness="UNREACHABLE")] == 1.0
    health = found["hangwatch_host_mount_health"]
    assert health[label(host="m1", mount="/srv", state="LOCKED")] == 1.0
    assert health[label(host="m1", mount="/srv", state="OK")] == 0.0
    assert health[label(host="m2", mount="/srv", state="OK")] == 1.0
    assert len(health) == 8  # two mounts, four states each
    assert found["hangwatch_host_heartbeat_age_seconds"][label(host="m2")] == 99.0
    assert found["hangwatch_host_needs_clear"] == {
        label(host="m1"): 0.0,
        label(host="m2"): 1.0,
        label(host="w1"): 0.0,
    }


def test_groups_maintenance_automation_and_failovers():
    view = StoreView(
        cluster(),
        [proposal("mail", FailoverState.PROPOSED, 400.0)],
        {("mail", "PROPOSED"): 1, ("mail", "COMPLETED"): 3, ("gone", "FAILED"): 1},
        {},
    )
    found = samples(group_metrics(view))
    assert found["hangwatch_automation_enabled"] == {(): 0.0}
    assert found["hangwatch_maintenance"] == {
        label(scope="cluster", target=""): 0.0,
        label(scope="group", target="mail"): 0.0,
        label(scope="group", target="web"): 1.0,
        label(scope="host", target="m1"): 0.0,
        label(scope="host", target="m2"): 0.0,
        label(scope="host", target="w1"): 1.0,
    }
    assert found["hangwatch_group_info"] == {
        label(group="mail", mode="auto", primary="m1"): 1.0,
        label(group="web", mode="manual", primary="w1"): 1.0,
    }
    assert found["hangwatch_group_anti_flap_block_seconds"] == {
        label(group="mail"): 600.0,
        label(group="web"): 0.0,
    }
    counts = found["hangwatch_failovers"]
    # Every state of every group: a group's first failure changes a series, not adds one.
    assert len(counts) == 3 * len(FailoverState)
    assert counts[label(group="mail", state="COMPLETED")] == 3.0
    assert counts[label(group="web", state="FAILED")] == 0.0
    assert counts[label(group="gone", state="FAILED")] == 1.0
    assert found["hangwatch_failover_open_age_seconds"] == {
        label(group="mail", state="PROPOSED"): 600.0
    }


def test_an_expired_anti_flap_block_reads_zero():
    state = cluster(now=2000.0)
    found = samples(group_metrics(StoreView(state, [], {}, {})))
    assert found["hangwatch_group_anti_flap_block_seconds"][label(group="mail")] == 0.0


def test_confirmed_lockups_are_timed_from_confirmation_to_storage():
    ingest = IngestMetrics()
    late = pb.Event(
        kind="LOCKUP_CONFIRMED",
        severity=pb.SEVERITY_CRITICAL,
        occurred_at=pbtime.timestamp(100.0),
        received_at=pbtime.timestamp(103.0),
    )
    skewed = pb.Event(
        kind="LOCKUP_CONFIRMED",
        occurred_at=pbtime.timestamp(100.0),
        received_at=pbtime.timestamp(99.0),
    )
    other = pb.Event(kind="PROBE_SLOW", occurred_at=pbtime.timestamp(1.0))
    ingest.count([late, skewed, other])
    found = samples(ingest.collect())
    delivery = found["hangwatch_lockup_delivery_seconds"]
    assert delivery[label(le="2.5")] == 1.0  # the skewed clock counts as no delay
    assert delivery[label(le="5.0")] == 2.0
    ingested = found["hangwatch_events_ingested"]
    assert ingested[label(kind="LOCKUP_CONFIRMED", severity="critical")] == 1.0


def signal(kind: str, at: float, **attributes: str) -> Signal:
    return Signal(
        kind=kind,
        severity=Severity.WARNING,
        at=at,
        source="probe",
        summary=kind,
        mount="/srv",
        attributes=attributes,
    )


def test_detection_is_timed_from_the_first_sign_to_confirmation():
    engine = HealthEngine({"/srv": True}, HealthSettings(), now=0.0)
    timer = LockupTimer()
    took = []

    def at(now: float, *signals: Signal) -> None:
        for s in signals:
            engine.observe(s)
        for t in engine.evaluate(now):
            result = timer.observe(t)
            if result is not None:
                took.append((t.after, result))

    at(10.0, signal(Kind.DEVICE_PROGRESS, 10.0, since_completion_s="0"))
    at(12.0, signal(Kind.PROBE_STUCK, 12.0, stuck_since="11.0"))
    assert engine.state("/srv") is State.SUSPECT
    at(14.0, signal(Kind.DEVICE_NO_PROGRESS, 14.0, since_completion_s="4"))
    at(16.0)
    assert engine.state("/srv") is State.LOCKED
    assert took == [(State.LOCKED, 4.0)]
    found = samples(timer.collect())["hangwatch_lockup_detection_seconds"]
    assert found[label(le="4.0")] == 1.0 and found[label(le="2.0")] == 0.0


def test_cert_and_ca_expiry_in_seconds_from_the_material_in_use(tmp_path: Path):
    init_ca(tmp_path)
    now = dt.datetime.now(dt.UTC)
    leaf = issue(tmp_path, "agent", "m1", days=10, now=now)
    files = tls.TlsFiles(
        str(tmp_path / "ca.crt"), str(leaf.cert_path), str(leaf.key_path), ("a", "b", "c")
    )
    material = tls.load(files)
    held: list[tls.TlsMaterial | None] = [material]
    later = now + dt.timedelta(days=2)
    found = samples(CertificateExpiry(lambda: held[0], lambda: later).collect())
    expiry = found["hangwatch_certificate_expires_in_seconds"]
    own = [v for k, v in expiry.items() if ("certificate", "own") in k]
    ca = [v for k, v in expiry.items() if ("certificate", "ca") in k]
    assert own == [pytest.approx(8 * 86400, abs=120)]
    assert len(ca) == 1 and ca[0] > own[0]
    assert any(("subject", "CN=hangwatch lab CA,O=hangwatch") in k for k in expiry), expiry
    held[0] = None  # plaintext: no certificates, no series
    assert samples(CertificateExpiry(lambda: held[0]).collect()) == {
        "hangwatch_certificate_expires_in_seconds": {}
    }


def test_call_counts_by_method_and_code_name():
    calls = CallCounts("client")
    calls.count("AgentService/Heartbeat", grpc.StatusCode.OK)
    calls.count("AgentService/Heartbeat", grpc.StatusCode.UNAVAILABLE)
    calls.count("AgentService/Heartbeat", grpc.StatusCode.UNAVAILABLE)
    found = samples(calls.collect())["hangwatch_grpc_client_handled"]
    assert found[label(code="UNAVAILABLE", method="AgentService/Heartbeat")] == 2.0


class Health(health_pb2_grpc.HealthServicer):
    """A real servicer whose answers the test picks by the request's service name."""

    async def Check(self, request: Any, context: Any) -> Any:
        if request.service == "refuse":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")
        if request.service == "crash":
            raise RuntimeError("bug")
        return health_pb2.HealthCheckResponse()

    async def Watch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for _ in range(3):
            yield health_pb2.HealthCheckResponse()
        await asyncio.Event().wait()  # open until the client goes


def test_the_server_counts_every_call_by_method_and_code():
    metrics = ServerMetrics()

    async def run() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        server = grpc.aio.server(interceptors=[metrics])
        health_pb2_grpc.add_HealthServicer_to_server(Health(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                await stub.Check(health_pb2.HealthCheckRequest())
                for name in ("refuse", "crash"):
                    with pytest.raises(grpc.aio.AioRpcError):
                        await stub.Check(health_pb2.HealthCheckRequest(service=name))
                watch = stub.Watch(health_pb2.HealthCheckRequest())
                for _ in range(3):
                    await watch.read()
                opened = samples(metrics.collect())["hangwatch_grpc_server_streams_open"]
                watch.cancel()
                assert opened == {label(method="Health/Watch"): 1.0}
                for _ in range(100):  # the server sees the cancellation a moment later
                    if metrics.calls.get("Health/Watch", grpc.StatusCode.CANCELLED):
                        break
                    await asyncio.sleep(0.02)
        finally:
            await server.stop(None)
        return samples(metrics.collect())

    found = asyncio.run(run())
    handled = found["hangwatch_grpc_server_handled"]
    assert handled == {
        label(code="OK", method="Health/Check"): 1.0,
        label(code="PERMISSION_DENIED", method="Health/Check"): 1.0,
        label(code="UNKNOWN", method="Health/Check"): 1.0,
        label(code="CANCELLED", method="Health/Watch"): 1.0,
    }
    assert found["hangwatch_grpc_server_stream_messages_sent"] == {
        label(method="Health/Watch"): 3.0
    }
    assert found["hangwatch_grpc_server_streams_open"] == {label(method="Health/Watch"): 0.0}
    assert (
        found["hangwatch_grpc_server_handling_seconds"][label(le="+Inf", method="Health/Check")]
        == 3.0
    )
