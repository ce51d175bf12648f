"""Mutual TLS end to end: a controller and agents as processes on loopback, with
certificates from lab.pki. Identities are proven, roles enforced, refusals
audited, refused certificates named as such, and certificates rotate on SIGHUP."""

from __future__ import annotations

import datetime as dt
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from clusterkit import FAST_CONTROLLER
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import types_pb2 as pb
from lab import pki
from lab.localcluster import LocalCluster, wait_for

AGENT = {
    "heartbeat": {"interval_seconds": 0.3},
    "reconnect": {"initial_backoff_seconds": 0.1, "max_backoff_seconds": 2.0},
}


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path, dict(FAST_CONTROLLER), pki=tmp_path / "pki")
    c.start_controller()
    yield c
    c.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for proc in c.procs:
            print(f"----- {proc.name} log -----\n{proc.log_text()[-4000:]}")


def admin(cluster: LocalCluster) -> admin_grpc.AdminServiceStub:
    return admin_grpc.AdminServiceStub(cluster.channel())


def hosts(cluster: LocalCluster) -> dict[str, admin_pb.Host]:
    response = admin(cluster).ListHosts(admin_pb.ListHostsRequest(), timeout=5)
    return {h.host_id: h for h in response.hosts}


def refusals(cluster: LocalCluster) -> list[admin_pb.AuditEntry]:
    entries = admin(cluster).ListAudit(admin_pb.ListAuditRequest(), timeout=5).entries
    return [e for e in entries if not e.allowed]


def ctl(
    cluster: LocalCluster, transport: list[str], *args: str
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "hangwatchctl", "--controller", cluster.address]
    return subprocess.run([*argv, *transport, *args], capture_output=True, text=True, timeout=60)


def tls_flags(ca: Path, issued: pki.Issued) -> list[str]:
    return ["--ca", str(ca), "--cert", str(issued.cert_path), "--key", str(issued.key_path)]


def test_agent_connects_and_is_known_by_its_certificate(cluster):
    cluster.start_agent("web1", ["/tmp"], AGENT)
    wait_for(lambda: "web1" in hosts(cluster), 20, "web1 to register over mutual TLS")
    result = cluster.ctl("hosts")
    assert result.returncode == 0, result.stderr
    assert "web1" in result.stdout


def test_agent_with_another_hosts_certificate_is_refused_and_audited(cluster):
    stolen = cluster.tls_config("agent", "web1")
    cluster.start_agent("web2", ["/tmp"], {**AGENT, "controller": stolen})

    def refused() -> list[admin_pb.AuditEntry]:
        return [e for e in refusals(cluster) if e.target == "web2"]

    entry = wait_for(refused, 20, "the refusal of web2 in the audit log")[0]  # type: ignore[index]
    assert entry.actor == "web1"
    assert entry.role == "agent"
    assert entry.action == "Register"
    assert "certificate is for web1" in entry.detail
    assert "web2" not in hosts(cluster)
    verified = admin(cluster).VerifyAudit(admin_pb.VerifyAuditRequest(), timeout=5)
    assert verified.ok


def test_a_person_certificate_cannot_act_as_an_agent(cluster):
    files = cluster.tls_config("admin", "root")
    cluster.start_agent("web3", ["/tmp"], {**AGENT, "controller": files})
    wait_for(
        lambda: any("not an agent's" in e.detail for e in refusals(cluster)),
        20,
        "the refusal of a person's certificate on AgentService",
    )
    assert "web3" not in hosts(cluster)


def test_a_viewer_cannot_approve_and_the_refusal_is_audited(cluster):
    viewer = cluster.ctl_transport("viewer", "vic")
    result = ctl(cluster, viewer, "hosts")
    assert result.returncode == 0, result.stderr
    failover_id = new_ulid()
    result = ctl(cluster, viewer, "failover", "approve", failover_id, "--reason", "looks right")
    assert result.returncode == 1
    assert "PERMISSION_DENIED" in result.stderr
    assert "ApproveFailover needs approver" in result.stderr
    (entry,) = refusals(cluster)
    assert (entry.actor, entry.role, entry.action) == ("vic", "viewer", "ApproveFailover")
    # An approver gets past the gate (and then finds no such failover).
    approver = cluster.ctl_transport("approver", "ann")
    result = ctl(cluster, approver, "failover", "approve", failover_id, "--reason", "ok")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr


def test_access_roles_override_the_certificate(tmp_path):
    config = {**FAST_CONTROLLER, "access": {"roles": {"vic": "approver", "root": "none"}}}
    c = LocalCluster(tmp_path, config, pki=tmp_path / "pki")
    try:
        c.start_controller()
        promoted = ctl(c, c.ctl_transport("viewer", "vic"), "automation", "off", "--reason", "x")
        assert promoted.returncode == 0, promoted.stderr
        demoted = ctl(c, c.ctl_transport("admin", "root"), "hosts")
        assert demoted.returncode == 1
        assert "root has the role 'none'" in demoted.stderr
    finally:
        c.stop()


def test_unknown_ca_and_expired_certificates_are_refused_by_name(cluster, tmp_path):
    ca = cluster.pki / "ca.crt"
    other = tmp_path / "other-ca"
    pki.init_ca(other)
    stranger = pki.issue(other, "admin", "mallory")
    result = ctl(cluster, tls_flags(ca, stranger), "hosts")
    assert result.returncode == 4, result.stderr
    assert "certificate refused" in result.stderr
    assert "unreachable" not in result.stderr

    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = pki.issue(cluster.pki, "admin", "old", days=1, now=past)
    result = ctl(cluster, tls_flags(ca, expired), "hosts")
    assert result.returncode == 4, result.stderr
    assert "certificate refused" in result.stderr
    assert "expired on" in result.stderr

    # A controller that is really down is still "unreachable".
    port = cluster.port
    cluster.stop()
    good = cluster.certificate("admin", "cluster-admin")
    result = ctl(cluster, tls_flags(ca, good), "hosts")
    assert result.returncode == 3, result.stderr
    assert f"unreachable at 127.0.0.1:{port}" in result.stderr


def test_agent_with_an_expired_certificate_says_so_and_backs_off(cluster, tmp_path):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    expired = pki.issue(cluster.pki, "agent", "web4", days=1, now=past)
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(0.5)
    files = {
        "ca_file": str(cluster.pki / "ca.crt"),
        "cert_file": str(expired.cert_path),
        "key_file": str(expired.key_path),
    }
    agent = cluster.start_agent(
        "web4", ["/tmp"], {**AGENT, "controller": files}, env={"NOTIFY_SOCKET": str(notify_path)}
    )
    statuses: list[str] = []

    def refused_status() -> bool:
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            return False
        statuses.extend(line for line in message.split("\n") if line.startswith("STATUS="))
        return any("certificate refused" in s for s in statuses)

    try:
        wait_for(refused_status, 30, "STATUS= naming the refused certificate")
    finally:
        notify.close()
    assert any("expired on" in s for s in statuses)
    wait_for(lambda: agent.log_text().count("retrying in") >= 4, 30, "several retries")
    log = agent.log_text()
    assert re.search(r"ERROR .*certificate refused by the controller at .*expired on", log)
    waits = [float(w) for w in re.findall(r"certificate refused.*retrying in ([0-9.]+)s", log)]
    assert waits, log
    # Once it is known to be a refused certificate, every wait is the longest one.
    assert all(w == AGENT["reconnect"]["max_backoff_seconds"] for w in waits), waits
    assert "web4" not in hosts(cluster)


def test_plaintext_cannot_talk_to_a_tls_controller(cluster):
    with grpc.insecure_channel(cluster.address) as channel, pytest.raises(grpc.RpcError) as refused:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    result = ctl(cluster, ["--insecure"], "hosts")
    assert result.returncode == 3


def test_tls_files_are_required_without_insecure(tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    controller = subprocess.run(
        [sys.executable, "-m", "controller", "--config", str(empty)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert controller.returncode == 2
    assert "[tls] ca_file is not set" in controller.stderr
    agent = subprocess.run(
        [sys.executable, "-m", "agent", "--config", str(empty), "--mount", "/tmp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert agent.returncode == 2
    assert "[controller] ca_file is not set" in agent.stderr
    ctl_run = subprocess.run(
        [sys.executable, "-m", "hangwatchctl", "hosts"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(tmp_path / "nothing")},
    )
    assert ctl_run.returncode == 2
    assert "--ca (HANGWATCH_CA)" in ctl_run.stderr
    assert "cannot read" in ctl_run.stderr
    remote = subprocess.run(
        [
            sys.executable,
            "-m",
            "hangwatchctl",
            "--insecure",
            "--controller",
            "192.0.2.1:1",
            "hosts",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert remote.returncode == 2
    assert "only allowed on loopback" in remote.stderr


def served_serial(cluster: LocalCluster) -> int:
    """The serial of the certificate the controller presents to a new connection."""
    files = cluster.tls_config("admin", "cluster-admin")
    context = ssl.create_default_context(cafile=files["ca_file"])
    context.load_cert_chain(files["cert_file"], files["key_file"])
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", cluster.port), 5) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_certificates_rotate_on_sighup_and_agents_stay_connected(cluster):
    agent = cluster.start_agent("web5", ["/tmp"], AGENT)
    wait_for(lambda: "web5" in hosts(cluster), 20, "web5 to register")
    controller = cluster.procs[0]
    before = served_serial(cluster)
    registered = hosts(cluster)["web5"].registered_at.ToSeconds()

    pki.issue(cluster.pki, "controller", "controller", force=True)
    pki.issue(cluster.pki, "agent", "web5", force=True)
    controller.signal(signal.SIGHUP)
    agent.signal(signal.SIGHUP)
    wait_for(lambda: served_serial(cluster) != before, 10, "the new controller certificate")
    wait_for(lambda: "certificates re-read" in agent.log_text(), 10, "the agent's reload")

    # Heartbeats carry on through the rotation and after it, on the new channel.
    end = time.monotonic() + 4
    while time.monotonic() < end:
        host = hosts(cluster)["web5"]
        assert host.liveness == pb.LIVENESS_HEALTHY, host
        time.sleep(0.3)
    assert controller.alive() and agent.alive()
    assert "SIGHUP: new connections get" in controller.log_text()
    # A reload is not a reconnect from scratch: the host kept its registration.
    assert hosts(cluster)["web5"].registered_at.ToSeconds() == registered


def test_a_broken_reload_keeps_the_old_certificates(cluster):
    before = served_serial(cluster)
    (cluster.pki / "controller-controller.key").write_text("garbage")
    controller = cluster.procs[0]
    controller.signal(signal.SIGHUP)
    wait_for(lambda: "keeping the certificates in use" in controller.log_text(), 10, "the refusal")
    assert served_serial(cluster) == before
    assert controller.alive()
