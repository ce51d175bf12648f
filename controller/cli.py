"""hangwatch-controller: the command line of the controller process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from controller.config import ControllerConfig
from controller.notify.secrets import load_sink_secrets
from controller.server import serve
from hangwatch import logs, tls
from hangwatch.addresses import parse_address
from hangwatch.cliutil import fail, load_settings, program_options, version_option
from hangwatch.errors import AddressError, ConfigError, StartupError

DEFAULT_CONFIG = Path("/etc/hangwatch/controller.toml")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--listen", metavar="ADDR", help="HOST:PORT to serve the gRPC API on [default: 127.0.0.1:7443]"
)
@click.option(
    "--data-dir",
    metavar="DIR",
    help="Directory for the SQLite database [default: /var/lib/hangwatch-controller]",
)
@version_option("hangwatch-controller")
@program_options("Serve plaintext gRPC. Only allowed on a loopback address.", DEFAULT_CONFIG)
def main(
    listen: str | None,
    data_dir: str | None,
    config_path: str | None,
    insecure: bool | None,
    log_format: str | None,
    print_only: bool,
) -> None:
    """Run the hangwatch controller: the cluster's picture of hosts and lockups.

    Agents report to it over gRPC (AgentService); people and incident tools use
    the AdminService, usually through hangwatchctl.
    """
    config, path = load_settings(
        ControllerConfig,
        config_path,
        DEFAULT_CONFIG,
        {
            "listen": (listen, "--listen"),
            "data_dir": (data_dir, "--data-dir"),
            "insecure": (insecure, "--insecure"),
            "log.format": (log_format, "--log-format"),
        },
        print_only,
    )
    try:
        files = None if config.insecure else tls.TlsFiles.in_section(config.tls, "tls")
        tls.tls_or_loopback(parse_address(config.listen, allow_port_zero=True), files, serving=True)
    except (AddressError, tls.TlsError) as exc:
        fail(str(exc))
    try:
        load_sink_secrets(config)  # read again by the sinks; checked before anything opens
    except ConfigError as exc:
        fail(f"{path}: {exc}")
    logs.setup(config.log.format, config.log.level)
    try:
        asyncio.run(serve(config))
    except StartupError as exc:
        fail(str(exc))
