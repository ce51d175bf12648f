"""hangwatch-controller: the command line of the controller process."""

from __future__ import annotations

import asyncio

import click

from controller.api.certs import tls_files
from controller.config import ControllerConfig
from controller.server import serve
from hangwatch import logs, tls
from hangwatch.addresses import parse_address, require_loopback_for_insecure
from hangwatch.cliutil import fail, load_config, print_config, program_options
from hangwatch.errors import AddressError, StartupError


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--listen", metavar="ADDR", help="HOST:PORT to serve the gRPC API on [default: 127.0.0.1:7443]"
)
@click.option(
    "--data-dir",
    metavar="DIR",
    help="Directory for the SQLite database [default: /var/lib/hangwatch-controller]",
)
@program_options("Serve plaintext gRPC. Only allowed on a loopback address.")
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
    config = load_config(
        ControllerConfig,
        config_path,
        {
            "listen": (listen, "--listen"),
            "data_dir": (data_dir, "--data-dir"),
            "insecure": (insecure, "--insecure"),
            "log.format": (log_format, "--log-format"),
        },
    )
    if print_only:
        print_config(config)
        return
    try:
        address = parse_address(config.listen, allow_port_zero=True)
        if config.insecure:
            require_loopback_for_insecure(address, "listen address")
        else:
            tls.require(tls_files(config.tls), "serve plaintext on a loopback address")
    except (AddressError, tls.TlsError) as exc:
        fail(str(exc))
    logs.setup(config.log.format, config.log.level)
    try:
        asyncio.run(serve(config))
    except StartupError as exc:
        fail(str(exc))
