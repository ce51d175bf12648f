"""python -m lab pki: the certificates verify, carry the documented identities, and
refusals change nothing."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from lab import pki
from lab.cli import main


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki") / "ca"
    pki.init_ca(directory)
    return directory


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def attrs(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


def sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)


def usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def ctl(*args: str):
    return CliRunner().invoke(main, list(args))


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_init_makes_a_p256_ca_valid_ten_years_with_a_private_key(ca):
    cert = load(ca / "ca.crt")
    assert mode(ca / "ca.key") == 0o600
    assert mode(ca) == 0o700
    cert.verify_directly_issued_by(cert)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    years = (cert.not_valid_after_utc - dt.datetime.now(dt.UTC)).days / 365.25
    assert 9.9 < years < 10.1


def test_agent_certificate_names_the_host_in_cn_and_dns_san(ca):
    issued = pki.issue(ca, "agent", "web1.example")
    cert = load(issued.cert_path)
    cert.verify_directly_issued_by(load(ca / "ca.crt"))
    assert issued.cert_path.name == "agent-web1.example.crt"
    assert mode(issued.key_path) == 0o600
    assert attrs(cert, NameOID.COMMON_NAME) == ["web1.example"]
    assert attrs(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == ["agent"]
    assert sans(cert) == [x509.DNSName("web1.example")]
    assert usages(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), None)
    assert key.public_key() == cert.public_key()


@pytest.mark.parametrize("role", pki.PEOPLE_ROLES)
def test_people_carry_their_role_as_ou_and_a_user_uri(ca, role):
    cert = load(pki.issue(ca, role, f"alice.{role}").cert_path)
    cert.verify_directly_issued_by(load(ca / "ca.crt"))
    assert attrs(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == [role]
    assert attrs(cert, NameOID.COMMON_NAME) == [f"alice.{role}"]
    # Only a URI SAN: nothing a host could be mistaken for.
    assert sans(cert) == [x509.UniformResourceIdentifier(f"hangwatch://user/alice.{role}")]
    assert usages(cert) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_controller_certificate_serves_its_names_and_loopback(ca):
    issued = pki.issue(ca, "controller", "ctl", hosts=["ctl.example", "10.0.0.5", "localhost"])
    cert = load(issued.cert_path)
    assert sans(cert) == [
        x509.DNSName("ctl"),
        x509.DNSName("ctl.example"),
        x509.IPAddress(ipaddress.ip_address("10.0.0.5")),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    assert usages(cert) == [ExtendedKeyUsageOID.SERVER_AUTH]
    store = Store([load(ca / "ca.crt")])
    for name in (
        x509.DNSName("ctl.example"),
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ):
        PolicyBuilder().store(store).build_server_verifier(name).verify(cert, [])


def test_days_sets_the_validity(ca):
    cert = load(pki.issue(ca, "viewer", "shortlived", days=7).cert_path)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(days=7) + pki.BACKDATE


def test_issue_time_in_the_past_gives_an_expired_certificate(ca):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    cert = load(pki.issue(ca, "agent", "expired1", days=1, now=past).cert_path)
    assert cert.not_valid_after_utc < dt.datetime.now(dt.UTC)


# Real mutual TLS through gRPC (BoringSSL), as the controller will use it.


def serve_tls(ca: Path, require_client_auth: bool = True):
    """A gRPC server with the controller certificate that echoes the caller's identities."""
    server_files = pki.issue(ca, "controller", "tls-ctl", force=True)

    def who(request: bytes, context: grpc.ServicerContext) -> bytes:
        return b",".join(context.peer_identities() or [])

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "t.T", {"Who": grpc.unary_unary_rpc_method_handler(who)}
            )
        ]
    )
    credentials = grpc.ssl_server_credentials(
        [(server_files.key_path.read_bytes(), server_files.cert_path.read_bytes())],
        root_certificates=(ca / "ca.crt").read_bytes(),
        require_client_auth=require_client_auth,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    return server, port


def call_who(ca_cert: Path, files: pki.Issued, port: int) -> bytes:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca_cert.read_bytes(),
        private_key=files.key_path.read_bytes(),
        certificate_chain=files.cert_path.read_bytes(),
    )
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        return channel.unary_unary("/t.T/Who")(b"", timeout=5)


def test_mutual_tls_with_grpc(ca, tmp_path):
    server, port = serve_tls(ca)
    try:
        agent = pki.issue(ca, "agent", "tls-web1", force=True)
        assert call_who(ca / "ca.crt", agent, port) == b"tls-web1"
        operator = pki.issue(ca, "operator", "tls-bob", force=True)
        assert call_who(ca / "ca.crt", operator, port) == b"hangwatch://user/tls-bob"

        past = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        expired = pki.issue(ca, "agent", "tls-old", days=1, now=past, force=True)
        with pytest.raises(grpc.RpcError) as refused:
            call_who(ca / "ca.crt", expired, port)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        other_ca = tmp_path / "other"
        pki.init_ca(other_ca)
        stranger = pki.issue(other_ca, "agent", "tls-web1")
        with pytest.raises(grpc.RpcError) as refused:
            call_who(ca / "ca.crt", stranger, port)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)


# The command line.


def test_cli_init_and_issue(tmp_path):
    directory = tmp_path / "lab"
    result = ctl("pki", "init", str(directory))
    assert result.exit_code == 0, result.output
    result = ctl("pki", "issue", "--dir", str(directory), "--role", "agent", "db1")
    assert result.exit_code == 0, result.output
    result = ctl(
        "pki", "issue", "--dir", str(directory), "--role", "controller", "ctl", "--host", "::2"
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in directory.iterdir()) == [
        "agent-db1.crt",
        "agent-db1.key",
        "ca.crt",
        "ca.key",
        "controller-ctl.crt",
        "controller-ctl.key",
    ]
    assert x509.IPAddress(ipaddress.ip_address("::2")) in sans(
        load(directory / "controller-ctl.crt")
    )


def test_cli_refuses_to_overwrite_without_force(tmp_path):
    directory = tmp_path / "lab"
    assert ctl("pki", "init", str(directory)).exit_code == 0
    before = snapshot(directory)
    result = ctl("pki", "init", str(directory))
    assert result.exit_code == 2
    assert "ca.key already exists; pass --force" in result.output
    assert snapshot(directory) == before

    assert ctl("pki", "issue", "--dir", str(directory), "--role", "admin", "root").exit_code == 0
    before = snapshot(directory)
    result = ctl("pki", "issue", "--dir", str(directory), "--role", "admin", "root")
    assert result.exit_code == 2
    assert "admin-root.key already exists" in result.output
    assert snapshot(directory) == before

    (directory / "admin-root.key").chmod(0o644)
    result = ctl("pki", "issue", "--dir", str(directory), "--role", "admin", "root", "--force")
    assert result.exit_code == 0, result.output
    assert snapshot(directory)["admin-root.crt"] != before["admin-root.crt"]
    assert mode(directory / "admin-root.key") == 0o600


def test_cli_missing_ca(tmp_path):
    result = ctl("pki", "issue", "--dir", str(tmp_path / "nope"), "--role", "agent", "h1")
    assert result.exit_code == 2
    assert "no such directory" in result.output
    assert not (tmp_path / "nope").exists()

    result = ctl("pki", "issue", "--dir", str(tmp_path), "--role", "agent", "h1")
    assert result.exit_code == 2
    assert "no CA here" in result.output
    assert "python -m lab pki init" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("role", "name", "extra", "message"),
    [
        ("agent", "web 1", [], "not a valid host id"),
        ("agent", "-web1", [], "not a valid host id"),
        ("agent", "a" * 64, [], "not a valid host id"),
        ("agent", "../etc", [], "not a valid host id"),
        ("controller", "ctl_1", [], "not a valid controller name"),
        ("operator", "a/b", [], "not a valid operator name"),
        ("viewer", ".hidden", [], "not a valid viewer name"),
        ("agent", "web1", ["--host", "web2"], "only with --role controller"),
        ("controller", "ctl", ["--host", "bad host"], "neither an IP address nor a DNS name"),
        ("agent", "web1", ["--days", "5000"], "would outlive the CA"),
    ],
)
def test_cli_refuses_bad_requests_and_writes_nothing(ca, role, name, extra, message):
    before = snapshot(ca)
    result = ctl("pki", "issue", "--dir", str(ca), "--role", role, *extra, "--", name)
    assert result.exit_code == 2
    assert message in result.output
    assert snapshot(ca) == before


@pytest.mark.parametrize("args", [["--role", "root"], ["--role", "agent", "--days", "0"]])
def test_cli_usage_errors(ca, args):
    result = ctl("pki", "issue", "--dir", str(ca), "h1", *args)
    assert result.exit_code == 2


def test_python_api_refuses_nonpositive_days(ca):
    with pytest.raises(pki.PkiError, match="must be 1 or more"):
        pki.issue(ca, "agent", "h1", days=-1)


def test_corrupt_or_mismatched_ca_is_refused(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    pki.init_ca(one)
    pki.init_ca(two)
    (one / "ca.key").write_bytes((two / "ca.key").read_bytes())
    with pytest.raises(pki.PkiError, match="is not the key of"):
        pki.issue(one, "agent", "h1")
    (one / "ca.key").write_text("garbage")
    result = ctl("pki", "issue", "--dir", str(one), "--role", "agent", "h1")
    assert result.exit_code == 2
    assert "not an unencrypted PEM private key" in result.output
