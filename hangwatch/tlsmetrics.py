"""Seconds until the certificates a program uses expire: its own and its CA's.

Read from the material the program holds (re-read on SIGHUP), not from the files, so
the series says what the TLS handshakes present now. A plaintext program has none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from cryptography import x509
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hangwatch.tls import TlsMaterial


class CertificateExpiry(Collector):
    def __init__(
        self,
        material: Callable[[], TlsMaterial | None],
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._material = material
        self._now = now

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "hangwatch_certificate_expires_in_seconds",
            "Seconds until the notAfter of this program's own certificate and of each CA "
            "certificate it trusts (negative once expired)",
            labels=["certificate", "subject"],
        )
        material = self._material()
        if material is not None:
            now = self._now()
            own = x509.load_pem_x509_certificates(material.cert)[0]
            for kind, cert in [("own", own)] + [
                ("ca", c) for c in x509.load_pem_x509_certificates(material.ca)
            ]:
                left = (cert.not_valid_after_utc - now).total_seconds()
                family.add_metric([kind, cert.subject.rfc4514_string()], left)
        yield family
