"""hangwatch-controller: the command line of the controller process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from controller.backends import connect
from controller.config import ControllerConfig
from controller.migrate import migrate
from controller.notify.secrets import load_sink_secrets
from controller.server import serve
from controller.store.sqlite.export import SQLiteExport
from hangwatch import logs, tls
from hangwatch.addresses import parse_address
from hangwatch.cliutil import EXIT_REFUSED, fail, load_settings, program_options, version_option
from hangwatch.errors import AddressError, ConfigError, HangwatchError, StartupError

DEFAULT_CONFIG = Path("/etc/hangwatch/controller.toml")


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.pass_context
def main(
    ctx: click.Context,
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
    if ctx.invoked_subcommand is not None:
        return
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


@main.command("migrate-store")
@click.option(
    "--from",
    "source",
    metavar="sqlite:PATH",
    help="The SQLite database to copy [default: controller.db in the config's data_dir].",
)
@click.option(
    "--to",
    "target",
    metavar="etcd:URL[,URL...]",
    help="The etcd members to copy into [default: the config's [store] endpoints].",
)
@click.option("--prefix", help="Key prefix in etcd [default: the config's [store] prefix].")
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Controller config: data_dir, and [store] endpoints, prefix and TLS files for etcd.",
)
def migrate_store(
    source: str | None, target: str | None, prefix: str | None, config_path: str | None
) -> None:
    """Copy an installation's SQLite store into an empty etcd prefix, and check the copy.

    Stop the controller first. Everything is copied (hosts, events with their cursors,
    groups, failovers, commands, the audit chain, incidents, webhook state, advisories,
    plans); the audit chain is verified in etcd afterwards. A non-empty prefix is refused.
    """
    overrides: dict[str, tuple[object, str]] = {"store.prefix": (prefix, "--prefix")}
    if target is not None:
        scheme, _, endpoints = target.partition(":")
        if scheme != "etcd" or not endpoints:
            fail(f"--to {target!r}: expected etcd:URL[,URL...]")
        overrides["store.endpoints"] = (endpoints.split(","), "--to")
    overrides["store.backend"] = ("etcd", "--to")
    config, _ = load_settings(ControllerConfig, config_path, DEFAULT_CONFIG, overrides, False)
    path = Path(config.data_dir) / "controller.db"
    if source is not None:
        scheme, _, location = source.partition(":")
        if scheme != "sqlite" or not location:
            fail(f"--from {source!r}: expected sqlite:PATH")
        path = Path(location)
    if not path.is_file():
        fail(f"--from: no SQLite database at {path}")
    sqlite = SQLiteExport(path)
    kv = connect(config.store)
    try:
        done = migrate(sqlite, kv, config.store.prefix)
    except HangwatchError as exc:
        fail(str(exc), EXIT_REFUSED)
    finally:
        sqlite.close()
        kv.close()
    kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(done.counts.items()))
    click.echo(
        f"copied {path} to etcd {config.store.prefix}: {kinds}; "
        f"last cursor {done.last_cursor}, audit chain of {done.audit_rows} rows verified"
    )
