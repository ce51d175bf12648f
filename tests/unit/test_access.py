"""The access gate: the role table covers the whole API, identities come from the
certificate's SANs, and the limits hold."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from agent.config import ControllerSettings
from controller.api.access import (
    ADMIN_ROLES,
    ADMIN_SERVICE,
    AGENT_HOSTS,
    AGENT_SERVICE,
    AccessGate,
    Undecodable,
    allows,
    audited,
    host_of,
)
from controller.api.identity import Caller, Identify
from controller.api.ratelimit import TokenBuckets
from controller.api.refusals import RefusalLog
from controller.config import ACCESS_ROLES, AccessSettings, LimitSettings, TlsSettings
from hangwatch import tls
from hangwatch.addresses import Address
from hangwatch.errors import AddressError, HangwatchError, PermissionDenied
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb
from lab import pki


def methods(module: object, service: str) -> set[str]:
    return set(module.DESCRIPTOR.services_by_name[service].methods_by_name)  # type: ignore[attr-defined]


def test_every_admin_method_has_a_role_and_nothing_else_does():
    assert set(ADMIN_ROLES) == methods(admin_pb, "AdminService")
    assert set(ADMIN_ROLES.values()) <= set(ACCESS_ROLES) - {"none"}


def test_every_agent_method_names_the_host_it_speaks_for():
    assert set(AGENT_HOSTS) == methods(agent_pb, "AgentService")
    request = agent_pb.ReportCommandResultRequest(result=pb.CommandResult(host_id="h1"))
    assert host_of("ReportCommandResult", request) == "h1"


@pytest.mark.parametrize(
    ("role", "needed", "allowed"),
    [
        ("viewer", "viewer", True),
        ("viewer", "operator", False),
        ("operator", "approver", False),
        ("approver", "operator", True),
        ("admin", "approver", True),
        ("none", "viewer", False),
        ("agent", "viewer", False),
    ],
)
def test_roles_are_ordered(role, needed, allowed):
    assert allows(role, needed) is allowed


def gate(tls_on: bool = True, rate: float = 1.0, burst: int = 2) -> AccessGate:
    async def audit(*_: object) -> None:
        raise AssertionError("check() never audits")

    limits = LimitSettings(agent_calls_per_second=rate, agent_burst=burst)
    return AccessGate(Identify(AccessSettings() if tls_on else None), tls_on, limits, audit)


def refusal(
    g: AccessGate, service: str, method: str, who: Caller, request: object
) -> HangwatchError:
    with pytest.raises(HangwatchError) as caught:
        g.check(service, method, who, request)
    return caught.value


def test_viewer_may_read_but_not_approve():
    g = gate()
    vic = Caller("vic", "viewer")
    g.check(ADMIN_SERVICE, "ListHosts", vic, admin_pb.ListHostsRequest())
    refused = refusal(g, ADMIN_SERVICE, "ApproveFailover", vic, admin_pb.ApproveFailoverRequest())
    assert grpc.StatusCode[refused.code] == grpc.StatusCode.PERMISSION_DENIED
    assert audited(refused)
    assert "ApproveFailover needs approver" in str(refused)


def test_forgetting_a_host_needs_an_approver():
    g = gate()
    request = admin_pb.RemoveHostRequest(host_id="old1", reason="retired")
    refused = refusal(g, ADMIN_SERVICE, "RemoveHost", Caller("olga", "operator"), request)
    assert grpc.StatusCode[refused.code] == grpc.StatusCode.PERMISSION_DENIED
    assert audited(refused) and "RemoveHost needs approver" in str(refused)
    g.check(ADMIN_SERVICE, "RemoveHost", Caller("ann", "approver"), request)


def test_an_agent_speaks_only_for_the_hosts_its_certificate_names():
    g = gate()
    web1 = Caller("web1", "agent", frozenset({"web1"}))
    g.check(AGENT_SERVICE, "Commands", web1, agent_pb.CommandsRequest(host_id="web1"))
    refused = refusal(g, AGENT_SERVICE, "Commands", web1, agent_pb.CommandsRequest(host_id="web2"))
    assert grpc.StatusCode[refused.code] == grpc.StatusCode.PERMISSION_DENIED
    assert str(refused).startswith("host_id: 'web2' refused")
    person = Caller("web1", "admin")
    refused = refusal(
        g, AGENT_SERVICE, "Commands", person, agent_pb.CommandsRequest(host_id="web1")
    )
    assert "is not an agent's" in str(refused)
    # An agent is nobody on the AdminService.
    refused = refusal(g, ADMIN_SERVICE, "ListHosts", web1, admin_pb.ListHostsRequest())
    assert grpc.StatusCode[refused.code] == grpc.StatusCode.PERMISSION_DENIED


def test_plaintext_proves_no_host_and_checks_none():
    gate(tls_on=False).check(
        AGENT_SERVICE,
        "Commands",
        Caller("anonymous", "admin"),
        agent_pb.CommandsRequest(host_id="x"),
    )


def test_undecodable_and_oversized_requests_are_invalid_and_not_audited():
    g = gate()
    root = Caller("root", "admin")
    refused = refusal(g, ADMIN_SERVICE, "GetHost", root, Undecodable("bad UTF-8"))
    assert (grpc.StatusCode[refused.code], audited(refused)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        False,
    )
    assert str(refused) == "request: bad UTF-8"
    huge = admin_pb.GetHostRequest(host_id="x" * 257)
    refused = refusal(g, ADMIN_SERVICE, "GetHost", root, huge)
    assert grpc.StatusCode[refused.code] == grpc.StatusCode.INVALID_ARGUMENT
    assert str(refused).startswith("host_id: is 257 characters long, the limit for identifier")


def test_heartbeats_are_rate_limited_per_host():
    g = gate(rate=0.001, burst=2)
    web1 = Caller("web1", "agent", frozenset({"web1"}))
    web2 = Caller("web2", "agent", frozenset({"web2"}))
    beat1 = agent_pb.HeartbeatRequest(host_id="web1", boot_id="b")
    g.check(AGENT_SERVICE, "Heartbeat", web1, beat1)
    g.check(AGENT_SERVICE, "Heartbeat", web1, beat1)
    refused = refusal(g, AGENT_SERVICE, "Heartbeat", web1, beat1)
    assert grpc.StatusCode[refused.code] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert str(refused).startswith("host_id: 'web1' is over the limit of 0.001")
    assert "burst 2" in str(refused)
    g.check(AGENT_SERVICE, "Heartbeat", web2, agent_pb.HeartbeatRequest(host_id="web2"))


def test_register_and_command_results_are_rate_limited_too():
    """Before: Register and ReportCommandResult had no limit (and each result ran a
    coordinator pass)."""
    g = gate(rate=0.001, burst=2)
    web1 = Caller("web1", "agent", frozenset({"web1"}))
    register = agent_pb.RegisterRequest(host_id="web1", boot_id="b")
    result = agent_pb.ReportCommandResultRequest(result=pb.CommandResult(host_id="web1"))
    g.check(AGENT_SERVICE, "Register", web1, register)
    g.check(AGENT_SERVICE, "ReportCommandResult", web1, result)
    for method, request in (("Register", register), ("ReportCommandResult", result)):
        refused = refusal(g, AGENT_SERVICE, method, web1, request)
        assert grpc.StatusCode[refused.code] == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The stream of commands is one long call, not a rate.
    g.check(AGENT_SERVICE, "Commands", web1, agent_pb.CommandsRequest(host_id="web1"))


def test_a_callers_repeated_refusals_are_written_once_per_window_then_summarised():
    """Before: every refusal was written as it came: one agent heartbeating for other
    hosts' ids added 10 400 audit rows in 8 seconds."""
    written: list[tuple[str, str, str, str]] = []

    async def audit(who: Caller, action: str, target: str, error: HangwatchError) -> None:
        written.append((who.name, action, target, str(error)))

    async def flood() -> None:
        log = RefusalLog(audit, window=0.2)
        web1 = Caller("web1", "agent", frozenset({"web1"}))
        for i in range(500):
            await log.refused(web1, "Heartbeat", f"other{i}", PermissionDenied(f"host_id: {i}"))
        await log.refused(web1, "Register", "web2", PermissionDenied("role: another reason"))
        await log.refused(Caller("web2", "agent"), "Heartbeat", "x", PermissionDenied("host_id"))
        assert len(written) == 3
        await asyncio.sleep(0.4)

    asyncio.run(flood())
    assert written[:3] == [
        ("web1", "Heartbeat", "other0", "host_id: 0"),
        ("web1", "Register", "web2", "role: another reason"),
        ("web2", "Heartbeat", "x", "host_id"),
    ]
    assert len(written) == 4
    who, action, target, summary = written[3]
    assert (who, action, target) == ("web1", "Heartbeat", "other499")
    assert summary.startswith("499 more like it in 0s, not written one by one; the last: host_id")


def test_token_bucket_refills_and_forgets_idle_hosts(monkeypatch):
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5
    assert buckets.take("a") and not buckets.take("a")
    monkeypatch.setattr("controller.api.ratelimit.MAX_KEYS", 2)
    now[0] += 10
    for key in ("b", "c", "d"):
        buckets.take(key)
    assert len(buckets._buckets) <= 3


# Identities from real certificates.


class Context:
    def __init__(self, pem: bytes | None = None, actor: str = "") -> None:
        self._pem = pem
        self._actor = actor

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_pem_cert": [self._pem]} if self._pem else {}

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return [("x-hangwatch-actor", self._actor)] if self._actor else []


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "ca"
    pki.init_ca(directory)
    return directory


def pem(ca: Path, role: str, name: str) -> bytes:
    return pki.issue(ca, role, name, force=True).cert_path.read_bytes()


def test_people_by_uri_san_with_role_from_ou_or_config(ca):
    identify = Identify(AccessSettings(roles={"bob": "approver"}))
    assert identify(Context(pem(ca, "viewer", "alice"))) == Caller("alice", "viewer")
    assert identify(Context(pem(ca, "viewer", "bob"))) == Caller("bob", "approver")
    strict = Identify(AccessSettings(certificate_roles=False, default_role="viewer"))
    assert strict(Context(pem(ca, "admin", "carol"))) == Caller("carol", "viewer")
    assert Identify(AccessSettings(certificate_roles=False))(
        Context(pem(ca, "admin", "dave"))
    ) == Caller("dave", "none")


def test_agents_by_dns_san(ca):
    who = Identify(AccessSettings())(Context(pem(ca, "agent", "db1.example")))
    assert who == Caller("db1.example", "agent", frozenset({"db1.example"}))


def test_plaintext_callers_name_themselves_and_are_admins():
    assert Identify(None)(Context(actor="sre")) == Caller("sre", "admin")
    assert Identify(None)(Context(actor="bad name!")) == Caller("anonymous", "admin")


def test_tls_files_that_do_not_fit_are_named(ca, tmp_path):
    one = pki.issue(ca, "agent", "k1", force=True)
    two = pki.issue(ca, "agent", "k2", force=True)
    names = ("[x] ca_file", "[x] cert_file", "[x] key_file")
    files = tls.TlsFiles(str(ca / "ca.crt"), str(one.cert_path), str(two.key_path), names)
    with pytest.raises(tls.TlsError, match=r"\[x\] key_file .* is not the key of"):
        tls.load(files)
    missing = tls.TlsFiles(str(ca / "ca.crt"), "", str(one.key_path), names)
    with pytest.raises(tls.TlsError, match=r"\[x\] cert_file is not set"):
        tls.require(missing, "be plaintext")
    absent = tls.TlsFiles(str(tmp_path / "nope.crt"), str(one.cert_path), str(one.key_path), names)
    with pytest.raises(tls.TlsError, match=r"\[x\] ca_file .*nope.crt: cannot read"):
        tls.load(absent)


def test_plaintext_only_on_loopback_and_tls_files_named_by_their_keys(ca):
    loopback, remote = Address("127.0.0.1", 7443), Address("192.0.2.1", 7443)
    assert tls.tls_or_loopback(loopback, None) is None
    with pytest.raises(AddressError, match=r"^listen address 192\.0\.2\.1:7443: --insecure"):
        tls.tls_or_loopback(remote, None, serving=True)
    agent = ControllerSettings(ca_file=str(ca / "ca.crt"))
    with pytest.raises(
        tls.TlsError,
        match=r"^\[controller\] cert_file is not set: .*talk plaintext to a controller on",
    ):
        tls.tls_or_loopback(remote, tls.TlsFiles.in_section(agent, "controller"))
    issued = pki.issue(ca, "controller", "c1", force=True)
    controller = TlsSettings(str(issued.cert_path), str(issued.key_path), str(ca / "ca.crt"))
    material = tls.tls_or_loopback(remote, tls.TlsFiles.in_section(controller, "tls"), serving=True)
    assert material is not None and material.cert == issued.cert_path.read_bytes()
