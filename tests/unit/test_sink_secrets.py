"""Webhook secrets from files and systemd credentials: read at start, bad ones named."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from controller.config import ControllerConfig
from controller.notify.secrets import load_sink_secrets
from hangwatch.config import load
from hangwatch.errors import ConfigError


def config(tmp_path: Path, *sinks: dict[str, object]) -> ControllerConfig:
    path = tmp_path / "controller.toml"
    path.write_text(tomli_w.dumps({"webhooks": list(sinks)}))
    return load(ControllerConfig, path)


def test_every_sink_reads_its_secrets_from_files_and_credentials(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "secrets_pd").write_text("R0UT1NG\n")
    (credentials / "sp").write_text("K3Y\n")
    (credentials / "secrets_slack").write_text("https://hooks.example/T0/B0/XYZ\n")
    hmac_key = tmp_path / "hmac.key"
    hmac_key.write_bytes(b"  k3y\n")
    loaded = load_sink_secrets(
        config(
            tmp_path,
            {
                "name": "pd",
                "kind": "pagerduty",
                "url": "https://pd/",
                "routing_key_file": "secrets_pd",
            },
            {"name": "chat", "kind": "slack", "url_file": "secrets_slack"},
            {"name": "log", "url": "http://log/", "secret_file": str(hmac_key)},
            {"name": "inline", "url": "http://x/", "secret": "s"},
            {"name": "rotating", "url": "http://x/", "secret": "new", "previous_secret": "old"},
            {"name": "page", "kind": "statuspage", "url": "https://x/", "api_key_file": "sp"},
        ),
        {"CREDENTIALS_DIRECTORY": str(credentials)},
    )
    assert loaded["pd"].routing_key == "R0UT1NG"
    assert loaded["pd"].url == "https://pd/"
    assert loaded["chat"].url == "https://hooks.example/T0/B0/XYZ"
    assert loaded["log"].secrets == (b"k3y",)
    assert loaded["inline"].secrets == (b"s",)
    # During a rotation both keys sign, the current one first.
    assert loaded["rotating"].secrets == (b"new", b"old")
    assert loaded["page"].api_key == "K3Y"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read {path}: No such file or directory"),
        ("", "{path} is empty"),
        (" \n", "{path} is empty"),
        (b"\xff\xfe", "{path} is not UTF-8 text"),
    ],
)
def test_a_bad_secret_file_names_the_key_and_the_file(tmp_path, content, problem):
    path = tmp_path / "pd-key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    sink = {"name": "pd", "kind": "pagerduty", "url": "https://pd/", "routing_key_file": str(path)}
    with pytest.raises(ConfigError) as bad:
        load_sink_secrets(
            config(tmp_path, {"name": "a", "kind": "slack", "url": "http://a/"}, sink)
        )
    assert str(bad.value) == f"key 'webhooks[1].routing_key_file': {problem.format(path=path)}"


def test_a_directory_is_no_secret_file(tmp_path):
    sink = {"name": "log", "url": "http://log/", "secret_file": str(tmp_path)}
    with pytest.raises(ConfigError, match=rf"'webhooks\[0\]\.secret_file': cannot read {tmp_path}"):
        load_sink_secrets(config(tmp_path, sink))


def test_a_url_file_that_holds_no_url_is_refused_without_showing_it(tmp_path):
    path = tmp_path / "slack-url"
    path.write_text("T0/B0/very-secret-token\n")
    with pytest.raises(ConfigError) as bad:
        load_sink_secrets(
            config(tmp_path, {"name": "chat", "kind": "slack", "url_file": str(path)})
        )
    assert f"{path} does not hold an http:// or https:// URL" in str(bad.value)
    assert "very-secret-token" not in str(bad.value)


def test_a_credential_name_needs_the_credentials_directory(tmp_path):
    sink = {"name": "chat", "kind": "slack", "url_file": "secrets_slack"}
    with pytest.raises(ConfigError, match=r"'secrets_slack' is a credential name.*LoadCredential="):
        load_sink_secrets(config(tmp_path, sink), {})


@pytest.mark.parametrize(
    ("sink", "problem"),
    [
        (
            {"name": "j", "url": "http://x/", "secret": "s", "secret_file": "/k"},
            r"webhooks\[0\] \('\w+'\): key 'secret_file': give secret or secret_file, not both",
        ),
        (
            {"name": "p", "kind": "pagerduty", "url": "https://x/", "routing_key": "R"}
            | {"routing_key_file": "/k"},
            r"webhooks\[0\] \('\w+'\): key 'routing_key_file': "
            "give routing_key or routing_key_file, not both",
        ),
        (
            {"name": "s", "kind": "slack", "url": "http://x/", "url_file": "/u"},
            r"webhooks\[0\] \('\w+'\): key 'url_file': give url or url_file, not both",
        ),
        (
            {"name": "s", "kind": "slack"},
            r"webhooks\[0\] \('\w+'\): key 'url': is required \(or url_file\)",
        ),
        (
            {"name": "s", "kind": "slack", "url_file": "relative/path"},
            r"webhooks\[0\] \('\w+'\): key 'url_file': 'relative/path' is neither an absolute "
            "path nor a credential name",
        ),
    ],
)
def test_a_secret_and_its_file_twin_are_one_or_the_other(tmp_path, sink, problem):
    with pytest.raises(ConfigError, match=problem):
        config(tmp_path, sink)
