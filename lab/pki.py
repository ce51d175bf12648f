"""A small certificate authority for labs and tests (`python -m lab pki`).

Production sites bring their own CA; these certificates follow the same profile so
the controller's authorisation works unchanged:

- every key is EC P-256; every certificate has O=hangwatch and OU=<role>;
- agent (`agent-HOST`): CN and a DNS SAN carry the host id; clientAuth. The
  controller authorises an agent on the DNS SAN (gRPC's peer identities are the
  SANs), so a host can only speak for itself;
- people and tools (`viewer`, `operator`, `approver`, `admin`): CN=NAME and a URI
  SAN `hangwatch://user/NAME`; clientAuth. The OU is the role. A URI SAN can never
  be mistaken for an agent's DNS SAN, so an operator named like a host is still no
  host;
- controller: CN=NAME, DNS/IP SANs for NAME, each --host value, `localhost`,
  127.0.0.1 and ::1; serverAuth.

Files: DIR/ca.key and DIR/ca.crt for the CA, DIR/ROLE-NAME.key and .crt for the
others; keys are unencrypted PEM (PKCS#8) with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hangwatch.errors import HangwatchError
from hangwatch.roles import PEOPLE_ROLES, ROLES, USER_URI_PREFIX

ORGANIZATION = "hangwatch"
CA_DAYS = 3650
LEAF_DAYS = 365
# Certificates start this far in the past, so a host whose clock is slightly behind
# accepts a certificate issued a moment ago.
BACKDATE = dt.timedelta(minutes=5)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DNS_NAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
PERSON_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PkiError(HangwatchError):
    """A refused pki request; nothing was written."""


@dataclass(frozen=True)
class Issued:
    key_path: Path
    cert_path: Path


def init_ca(directory: Path, days: int = CA_DAYS, force: bool = False) -> Issued:
    """Creates DIR/ca.key (0600) and a self-signed DIR/ca.crt."""
    _check_days(days)
    out = _outputs(directory, "ca", force)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, "hangwatch lab CA"),
        ]
    )
    start = dt.datetime.now(dt.UTC) - BACKDATE
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + BACKDATE + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign_certs=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write(out, key, cert)
    return out


def issue(
    directory: Path,
    role: str,
    name: str,
    hosts: Sequence[str] = (),
    days: int = LEAF_DAYS,
    force: bool = False,
    now: dt.datetime | None = None,
) -> Issued:
    """Issues DIR/ROLE-NAME.key and .crt, signed by the CA in DIR.

    `now` is the issue time: tests pass one in the past to get an expired
    certificate; the command line always issues from the current time.
    """
    if role not in ROLES:
        raise PkiError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    _check_days(days)
    sans = _subject_alt_names(role, name, hosts)
    out = _outputs(directory, f"{role}-{name}", force)
    ca_key, ca_cert = _load_ca(directory)
    start = (now or dt.datetime.now(dt.UTC)) - BACKDATE
    end = start + BACKDATE + dt.timedelta(days=days)
    if end > ca_cert.not_valid_after_utc:
        raise PkiError(
            f"--days {days} would outlive the CA in {directory} "
            f"(it expires {ca_cert.not_valid_after_utc:%Y-%m-%d})"
        )
    key = ec.generate_private_key(ec.SECP256R1())
    usage = (
        ExtendedKeyUsageOID.SERVER_AUTH if role == "controller" else ExtendedKeyUsageOID.CLIENT_AUTH
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign_certs=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(out, key, cert)
    return out


def _subject_alt_names(role: str, name: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    if hosts and role != "controller":
        raise PkiError("--host adds names to a controller certificate: only with --role controller")
    if role in PEOPLE_ROLES:
        if not PERSON_RE.match(name):
            raise PkiError(
                f"{name!r} is not a valid {role} name: 1-64 letters, digits, '.', '_' "
                "or '-', starting with a letter or digit"
            )
        return [x509.UniformResourceIdentifier(USER_URI_PREFIX + name)]
    what = "host id" if role == "agent" else "controller name"
    if not DNS_NAME_RE.match(name):
        raise PkiError(
            f"{name!r} is not a valid {what}: a DNS name (letters, digits and '-', "
            "dot-separated labels of at most 63)"
        )
    if role == "agent":
        return [x509.DNSName(name)]
    sans: list[x509.GeneralName] = []
    for host in (name, *hosts, "localhost", "127.0.0.1", "::1"):
        san = _host_name(host)
        if san not in sans:
            sans.append(san)
    return sans


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not DNS_NAME_RE.match(host):
        raise PkiError(f"--host {host!r} is neither an IP address nor a DNS name")
    return x509.DNSName(host)


def _key_usage(sign_certs: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certs,
        crl_sign=sign_certs,
        encipher_only=False,
        decipher_only=False,
    )


def _check_days(days: int) -> None:
    if days < 1:
        raise PkiError(f"--days must be 1 or more, got {days}")


def _outputs(directory: Path, stem: str, force: bool) -> Issued:
    """The two paths to write, refused before anything is generated if one exists."""
    out = Issued(directory / f"{stem}.key", directory / f"{stem}.crt")
    if not force:
        for path in (out.key_path, out.cert_path):
            if path.exists():
                raise PkiError(f"{path} already exists; pass --force to replace it")
    return out


def _load_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = directory / "ca.key", directory / "ca.crt"
    if not directory.is_dir():
        raise PkiError(f"{directory}: no such directory; create a CA with 'python -m lab pki init'")
    if not key_path.exists() or not cert_path.exists():
        raise PkiError(
            f"{directory}: no CA here (needs ca.key and ca.crt); "
            f"create one with 'python -m lab pki init {directory}'"
        )
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{key_path}: not an unencrypted PEM private key ({exc})") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError as exc:
        raise PkiError(f"{cert_path}: not a PEM certificate ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise PkiError(f"{key_path} is not the key of {cert_path}")
    return key, cert


def _write(out: Issued, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_CREAT with 0600 so the key is never readable by others, not even briefly;
    # fchmod for a --force over an older, laxer file.
    fd = os.open(out.key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(key_pem)
    out.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.cert_path.chmod(0o644)
