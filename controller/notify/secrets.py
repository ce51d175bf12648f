"""The webhook sinks' secrets: inline in the config, or read from files at start.

A `*_file` key names an absolute path, or a bare name that is looked up in
$CREDENTIALS_DIRECTORY, where systemd puts what the unit's LoadCredential= loads
(readable by the service alone, whatever the source file's owner). The controller
reads them all before it opens anything, so a missing, unreadable or empty file
stops it with a config error naming the key and the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.config import ControllerConfig, WebhookSettings, is_http_url
from hangwatch.errors import ConfigError

CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"


@dataclass(frozen=True)
class SinkSecrets:
    url: str
    # The signing keys in force: the current one, then the old one during a rotation.
    secrets: tuple[bytes, ...]
    routing_key: str
    api_key: str


def secret_path(key: str, value: str, environ: Mapping[str, str]) -> Path:
    """Where a `*_file` value points: itself, or the credential of that name."""
    if value.startswith("/"):
        return Path(value)
    directory = environ.get(CREDENTIALS_ENV)
    if not directory:
        raise ConfigError(
            f"key '{key}': {value!r} is a credential name, but ${CREDENTIALS_ENV} is not set "
            "(give an absolute path, or load it with LoadCredential= in the unit)"
        )
    return Path(directory) / value


def read_secret(key: str, value: str, environ: Mapping[str, str]) -> bytes:
    path = secret_path(key, value, environ)
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"key '{key}': cannot read {path}: {exc.strerror}") from None
    if not data:
        raise ConfigError(f"key '{key}': {path} is empty")
    return data


def _text(key: str, value: str, environ: Mapping[str, str]) -> str:
    try:
        return read_secret(key, value, environ).decode()
    except UnicodeDecodeError:
        path = secret_path(key, value, environ)
        raise ConfigError(f"key '{key}': {path} is not UTF-8 text") from None


def sink_secrets(
    settings: WebhookSettings, prefix: str, environ: Mapping[str, str] = os.environ
) -> SinkSecrets:
    """The sink's URL, signing keys, routing key and API key; `prefix` ("webhooks[2].")
    names its table."""
    url = settings.url
    if settings.url_file:
        key = f"{prefix}url_file"
        url = _text(key, settings.url_file, environ)
        if not is_http_url(url):
            # The URL itself may be the secret: never shown.
            path = secret_path(key, settings.url_file, environ)
            raise ConfigError(f"key '{key}': {path} does not hold an http:// or https:// URL")
    secrets = []
    for key in ("secret", "previous_secret"):
        value, file = getattr(settings, key), getattr(settings, f"{key}_file")
        secret = read_secret(f"{prefix}{key}_file", file, environ) if file else value.encode()
        if secret:
            secrets.append(secret)
    routing_key = settings.routing_key
    if settings.routing_key_file:
        routing_key = _text(f"{prefix}routing_key_file", settings.routing_key_file, environ)
    api_key = settings.api_key
    if settings.api_key_file:
        api_key = _text(f"{prefix}api_key_file", settings.api_key_file, environ)
    return SinkSecrets(url, tuple(secrets), routing_key, api_key)


def load_sink_secrets(
    config: ControllerConfig, environ: Mapping[str, str] = os.environ
) -> dict[str, SinkSecrets]:
    """Every sink's secrets by sink name; raises ConfigError at the first bad file."""
    return {
        s.name: sink_secrets(s, f"webhooks[{i}].", environ) for i, s in enumerate(config.webhooks)
    }
