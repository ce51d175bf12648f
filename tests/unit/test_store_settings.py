"""The [store] section: a wrong etcd setting is refused with the key that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from controller.config import ControllerConfig
from hangwatch.config import load
from hangwatch.errors import ConfigError

ETCD = {"backend": "etcd", "endpoints": ["http://127.0.0.1:2379"]}


@pytest.mark.parametrize(
    ("store", "problem"),
    [
        ({"backend": "consul"}, "key 'store.backend': must be one of sqlite, etcd"),
        ({"backend": "etcd"}, "key 'store.endpoints': the etcd backend needs"),
        ({**ETCD, "endpoints": ["127.0.0.1:2379"]}, "key 'store.endpoints': '127.0.0.1:2379'"),
        ({**ETCD, "endpoints": ["http://e:2379/v3"]}, "key 'store.endpoints': .* has no path"),
        (
            {**ETCD, "endpoints": ["https://a:2379", "http://b:2379"]},
            "key 'store.endpoints': mixes",
        ),
        ({**ETCD, "endpoints": ["https://a:2379"]}, "key 'store.ca_file': https"),
        ({**ETCD, "cert_file": "/c.pem"}, "key 'store.key_file': give cert_file and key_file"),
        ({**ETCD, "prefix": "hangwatch"}, "key 'store.prefix': 'hangwatch' must start"),
        ({**ETCD, "leader_ttl_seconds": 1}, "key 'store.leader_ttl_seconds': must be 2"),
        (
            {**ETCD, "leader_ttl_seconds": 3, "leader_renew_deadline_seconds": 2.5},
            "key 'store.leader_renew_deadline_seconds': must be at most 80 % .* \\(2.4 s\\)",
        ),
    ],
)
def test_bad_store_settings_name_the_key(tmp_path: Path, store: dict, problem: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps({"store": store}))
    with pytest.raises(ConfigError, match=problem):
        load(ControllerConfig, path)


def test_an_etcd_store_with_tls_to_its_members_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    store = {
        **ETCD,
        "endpoints": ["https://etcd1:2379", "https://etcd2:2379"],
        "ca_file": "/etc/hangwatch/etcd-ca.pem",
        "cert_file": "/etc/hangwatch/etcd.pem",
        "key_file": "/etc/hangwatch/etcd.key",
    }
    path.write_text(tomli_w.dumps({"store": store}))
    assert load(ControllerConfig, path).store.endpoints == store["endpoints"]
