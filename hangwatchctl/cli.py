"""hangwatchctl: the SRE's command line for the hangwatch controller.

Exit codes: 0 ok, 1 not found or refused, 2 usage or config error,
3 controller unreachable, 4 certificate refused (TLS handshake).
"""

from __future__ import annotations

import getpass

import click

from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatchctl import failover_cmds, render, upgrade_cmds
from hangwatchctl.client import Target, config_dir, rpc_errors
from hangwatchctl.events import events
from hangwatchctl.webhook_cmds import webhooks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--controller",
    metavar="ADDR",
    envvar="HANGWATCH_CONTROLLER",
    default="127.0.0.1:7443",
    show_default=True,
    help="Controller HOST:PORT [env: HANGWATCH_CONTROLLER].",
)
@click.option(
    "--insecure", is_flag=True, help="Plaintext gRPC. Only allowed to a loopback address."
)
@click.option(
    "--ca",
    metavar="FILE",
    envvar="HANGWATCH_CA",
    default=lambda: str(config_dir() / "ca.crt"),
    show_default="~/.config/hangwatch/ca.crt",
    help="CA certificate(s) the controller's certificate must chain to [env: HANGWATCH_CA].",
)
@click.option(
    "--cert",
    metavar="FILE",
    envvar="HANGWATCH_CERT",
    default=lambda: str(config_dir() / "client.crt"),
    show_default="~/.config/hangwatch/client.crt",
    help="Your client certificate; it names you and your role [env: HANGWATCH_CERT].",
)
@click.option(
    "--key",
    metavar="FILE",
    envvar="HANGWATCH_KEY",
    default=lambda: str(config_dir() / "client.key"),
    show_default="~/.config/hangwatch/client.key",
    help="Its private key [env: HANGWATCH_KEY].",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people; json (stable keys) for scripts.",
)
@click.option(
    "--timeout", type=float, default=10.0, show_default=True, help="Seconds to wait for each call."
)
@click.option(
    "--as",
    "actor",
    metavar="NAME",
    envvar="HANGWATCH_ACTOR",
    default=getpass.getuser,
    show_default="your login name",
    help="Your name in the audit log over plaintext [env: HANGWATCH_ACTOR]; with TLS the "
    "controller takes it from your certificate.",
)
@click.pass_context
def main(
    ctx: click.Context,
    controller: str,
    insecure: bool,
    ca: str,
    cert: str,
    key: str,
    output: str,
    timeout: float,
    actor: str,
) -> None:
    """Inspect and steer a hangwatch cluster.

    Exit codes: 0 ok, 1 not found or refused, 2 usage or config error,
    3 controller unreachable, 4 certificate refused (TLS handshake).

    Mutual TLS unless --insecure: --ca, --cert and --key default to ca.crt,
    client.crt and client.key in ~/.config/hangwatch/ ($XDG_CONFIG_HOME).
    """
    ctx.obj = Target(controller, insecure, timeout, actor=actor, ca=ca, cert=cert, key=key)
    ctx.meta["output"] = output


@main.command()
@click.pass_context
def hosts(ctx: click.Context) -> None:
    """List hosts with their liveness, kernel and mount health."""
    target: Target = ctx.obj
    found = target.pages("ListHosts", admin_pb.ListHostsRequest(), "hosts").records
    if render.wants_json(ctx):
        render.print_json(admin_pb.ListHostsResponse(hosts=found))
    else:
        click.echo(render.hosts_table(found))


@main.group()
def host() -> None:
    """One host."""


@host.command("show")
@click.argument("host_id", metavar="HOST")
@click.pass_context
def host_show(ctx: click.Context, host_id: str) -> None:
    """Show a host: inventory, mounts, health."""
    target: Target = ctx.obj
    with rpc_errors(target):
        response = target.stub().GetHost(
            admin_pb.GetHostRequest(host_id=host_id), timeout=target.timeout
        )
    if render.wants_json(ctx):
        render.print_json(response)
    else:
        click.echo(render.host_detail(response))


main.add_command(events)
for command in (
    failover_cmds.groups,
    failover_cmds.failover,
    failover_cmds.switchover,
    failover_cmds.maintenance,
    failover_cmds.automation,
    failover_cmds.audit,
    failover_cmds.incident,
    upgrade_cmds.advisory,
    upgrade_cmds.upgrade,
):
    main.add_command(command)
host.add_command(failover_cmds.host_clear)
main.add_command(webhooks)
