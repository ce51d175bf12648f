"""Mutual TLS files for the three programs, plaintext only on loopback, and telling
a refused certificate apart from a dead controller.

gRPC reports a client certificate the controller refused as UNAVAILABLE "Socket
closed", exactly like a controller that is down. `diagnose` repeats the handshake
with Python's ssl module to tell the two apart, so a bad certificate is named
plainly instead of being retried for ever unnoticed.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hangwatch.addresses import Address, require_loopback_for_insecure
from hangwatch.errors import HangwatchError

# The start of an HTTP/2 connection and an empty SETTINGS frame: a controller that
# accepted the certificate answers with its own SETTINGS, one that refused it closes.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
REFUSED = "certificate refused"


class TlsError(HangwatchError):
    """A TLS file that is missing, unreadable or does not fit the others."""


class TlsPaths(Protocol):
    """A settings section that names the three files (the agent's [controller], the
    controller's [tls])."""

    @property
    def ca_file(self) -> str: ...

    @property
    def cert_file(self) -> str: ...

    @property
    def key_file(self) -> str: ...


@dataclass(frozen=True)
class TlsFiles:
    """A CA bundle, a certificate and its key, with how the user names each one
    (a config key or a flag), so every error says what to fix."""

    ca_file: str
    cert_file: str
    key_file: str
    names: tuple[str, str, str]

    @classmethod
    def in_section(cls, settings: TlsPaths, section: str) -> TlsFiles:
        """The files a config section names, each called by its key ("[tls] ca_file")."""
        return cls(
            settings.ca_file,
            settings.cert_file,
            settings.key_file,
            (f"[{section}] ca_file", f"[{section}] cert_file", f"[{section}] key_file"),
        )

    def missing(self) -> str | None:
        """How to set the first file that is not configured, or None."""
        for value, name in zip(
            (self.ca_file, self.cert_file, self.key_file), self.names, strict=True
        ):
            if not value:
                return name
        return None


@dataclass(frozen=True)
class TlsMaterial:
    ca: bytes
    cert: bytes
    key: bytes
    subject: str
    not_after: dt.datetime


def load(files: TlsFiles) -> TlsMaterial:
    """Reads and cross-checks the three files; raises TlsError naming the culprit."""
    ca_name, cert_name, key_name = files.names
    ca = _read(files.ca_file, ca_name)
    cert = _read(files.cert_file, cert_name)
    key = _read(files.key_file, key_name)
    try:
        x509.load_pem_x509_certificates(ca)
    except ValueError:
        raise TlsError(f"{ca_name} {files.ca_file}: no PEM certificate in it") from None
    try:
        leaf = x509.load_pem_x509_certificates(cert)[0]
    except ValueError:
        raise TlsError(f"{cert_name} {files.cert_file}: no PEM certificate in it") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(
            f"{key_name} {files.key_file}: not an unencrypted PEM private key ({exc})"
        ) from None
    if private.public_key() != leaf.public_key():
        raise TlsError(f"{key_name} {files.key_file} is not the key of {files.cert_file}")
    return TlsMaterial(ca, cert, key, leaf.subject.rfc4514_string(), leaf.not_valid_after_utc)


def _read(path: str, name: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"{name} {path}: cannot read: {exc.strerror}") from None


def channel_credentials(material: TlsMaterial) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=material.ca,
        private_key=material.key,
        certificate_chain=material.cert,
    )


def name_override(server_name: str) -> list[tuple[str, str]]:
    """Channel options checking the controller's certificate for `server_name` instead
    of the host in its address (e.g. when it is reached through an IP or a relay)."""
    return [("grpc.ssl_target_name_override", server_name)] if server_name else []


def diagnose(
    address: Address, files: TlsFiles, server_name: str = "", timeout: float = 5.0
) -> str | None:
    """Why TLS with these files fails against the controller at `address`, or None
    when it does not fail (the handshake is accepted, or nothing answers at all).

    Blocking: asyncio callers run it in a thread.
    """
    context = ssl.create_default_context(cafile=files.ca_file)
    context.load_cert_chain(files.cert_file, files.key_file)
    context.set_alpn_protocols(["h2"])
    try:
        sock = socket.create_connection((address.host, address.port), timeout)
    except OSError:
        return None
    with sock:
        try:
            with context.wrap_socket(sock, server_hostname=server_name or address.host) as tls:
                tls.sendall(_H2_PREFACE)
                answer = tls.recv(9)
        except ssl.SSLCertVerificationError as exc:
            return f"the controller's certificate is not trusted ({exc.verify_message})"
        except ssl.SSLError as exc:
            return f"the TLS handshake failed ({exc.reason or exc}); does the controller speak TLS?"
        except OSError:
            answer = b""
    if answer:
        return None
    # With TLS 1.3 the server checks the client's certificate after the client's side
    # of the handshake is done; BoringSSL then just closes the connection.
    return f"the controller closed the connection after the handshake: {_suspect(files)}"


def _suspect(files: TlsFiles) -> str:
    leaf = x509.load_pem_x509_certificates(Path(files.cert_file).read_bytes())[0]
    now = dt.datetime.now(dt.UTC)
    if leaf.not_valid_after_utc < now:
        return f"{files.cert_file} expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if leaf.not_valid_before_utc > now:
        return f"{files.cert_file} is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M}"
    return f"is {files.cert_file} signed by a CA the controller trusts?"


def require(files: TlsFiles, plaintext: str) -> TlsMaterial:
    """The material, or TlsError naming the first missing setting; `plaintext` says what
    --insecure would do instead."""
    missing = files.missing()
    if missing:
        raise TlsError(
            f"{missing} is not set: mutual TLS needs a CA, a certificate and its key "
            f"(or pass --insecure to {plaintext})"
        )
    return load(files)


def tls_or_loopback(
    address: Address, files: TlsFiles | None, *, serving: bool = False
) -> TlsMaterial | None:
    """The TLS material for talking on `address` (or serving on it), or None for
    plaintext (`files` None: --insecure), which only a loopback address may carry.

    Raises AddressError or TlsError saying what to fix.
    """
    if files is None:
        require_loopback_for_insecure(
            address, "listen address" if serving else "controller address"
        )
        return None
    return require(
        files,
        "serve plaintext on a loopback address"
        if serving
        else "talk plaintext to a controller on a loopback address",
    )
