"""The controller's TLS credentials, re-read on SIGHUP without a restart.

gRPC asks the fetcher for a new configuration at every new handshake: after a
reload new connections get the new certificate and CA, while connections already
open (every agent's) carry on undisturbed. A reload that fails keeps the old files.
"""

from __future__ import annotations

import logging
import threading

import grpc

from controller.config import TlsSettings
from hangwatch import tls

log = logging.getLogger(__name__)


class ServerTls:
    def __init__(self, settings: TlsSettings) -> None:
        self._files = tls.TlsFiles.in_section(settings, "tls")
        self.material = tls.load(self._files)
        self._lock = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        # The stubs say the fetcher returns a configuration; gRPC documents None as
        # "keep the current one".
        self.credentials = grpc.dynamic_ssl_server_credentials(
            _configuration(self.material),
            self._fetch,  # type: ignore[arg-type]
            require_client_authentication=True,
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC's own threads at each handshake; None keeps the current files."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def reload(self) -> tls.TlsMaterial:
        """Reads the files again; raises TlsError (and changes nothing) if they are bad."""
        material = tls.load(self._files)
        with self._lock:
            self._pending = _configuration(material)
            self.material = material
        return material


def _configuration(material: tls.TlsMaterial) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert)], root_certificates=material.ca
    )


def reload_on_sighup(server_tls: ServerTls | None, serving: str) -> str:
    """What SIGHUP re-reads: the TLS files (other settings apply on restart). Returns
    the status line for systemd."""
    if server_tls is None:
        log.warning("SIGHUP: plaintext, nothing to re-read; other settings apply on restart")
        return serving
    try:
        material = server_tls.reload()
    except tls.TlsError as exc:
        log.error("SIGHUP: keeping the certificates in use: %s", exc)
        return f"{serving}; certificate reload failed: {exc}"
    log.info(
        "SIGHUP: new connections get %s (valid until %s); other settings apply on restart",
        material.subject,
        f"{material.not_after:%Y-%m-%d %H:%M} UTC",
    )
    return serving
