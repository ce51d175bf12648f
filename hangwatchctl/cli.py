"""hangwatchctl: the SRE's command line for the hangwatch controller.

Exit codes: 0 ok, 1 not found or refused, 2 usage or config error,
3 controller unreachable, 4 certificate refused (TLS handshake).
"""

from __future__ import annotations

import getpass

import click

from hangwatch.cliutil import version_option
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatchctl import draft_cmds, failover_cmds, render, upgrade_cmds
from hangwatchctl.client import Target, config_dir
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
    type=click.Choice(render.OUTPUTS),
    default="table",
    show_default=True,
    help=render.OUTPUT_HELP + " Also accepted after the command.",
)
@click.option(
    "--local",
    "local_time",
    is_flag=True,
    help="Show times in this machine's zone, and read times without an offset in it "
    "(default: UTC).",
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
@version_option("hangwatchctl")
@click.pass_context
def main(
    ctx: click.Context,
    controller: str,
    insecure: bool,
    ca: str,
    cert: str,
    key: str,
    output: str,
    local_time: bool,
    timeout: float,
    actor: str,
) -> None:
    """Inspect and steer a hangwatch cluster.

    Exit codes: 0 ok, 1 not found or refused, 2 usage or config error,
    3 controller unreachable, 4 certificate refused (TLS handshake).

    Mutual TLS unless --insecure: --ca, --cert and --key default to ca.crt,
    client.crt and client.key in ~/.config/hangwatch/ ($XDG_CONFIG_HOME).

    Times are shown in UTC (2026-12-01 14:24:11Z) unless --local; time options
    take what tables show, any ISO 8601 time, or a duration (10m, +2h).

    \b
    Shell completion (bash; zsh and fish likewise):
      eval "$(_HANGWATCHCTL_COMPLETE=bash_source hangwatchctl)"
    """
    ctx.obj = Target(controller, insecure, timeout, actor=actor, ca=ca, cert=cert, key=key)
    ctx.meta["output"] = output
    ctx.meta["local_time"] = local_time


def _windows() -> list[admin_pb.Maintenance]:
    target: Target = click.get_current_context().find_root().obj
    return list(target.call("ListMaintenance", admin_pb.ListMaintenanceRequest()).windows)


@main.command()
def hosts() -> None:
    """List hosts with their liveness, kernel, risk, maintenance and mount health."""
    target: Target = click.get_current_context().obj
    found = target.pages("ListHosts", admin_pb.ListHostsRequest(), "hosts").records
    render.emit(admin_pb.ListHostsResponse(hosts=found), render.hosts_table(found, _windows()))


@main.group()
def host() -> None:
    """Show one host in detail, make it a failover target again, or forget it."""


@host.command("show")
@click.argument("host_id", metavar="HOST")
def host_show(host_id: str) -> None:
    """Show a host: inventory, mounts, health, maintenance windows that hold it."""
    target: Target = click.get_current_context().find_root().obj
    response = target.call("GetHost", admin_pb.GetHostRequest(host_id=host_id))
    render.emit(response, render.host_detail(response, _windows()))


@host.command("remove")
@click.argument("host_id", metavar="HOST")
@failover_cmds.REASON
def host_remove(host_id: str, reason: str) -> None:
    """Forget a retired HOST: it stops showing (UNREACHABLE) and its metrics series go.

    Its events stay. Refused while HOST is a member or the primary of a group (take it
    out of the controller's config first). Needs the approver role; audited.
    """
    target: Target = click.get_current_context().find_root().obj
    response = target.call("RemoveHost", admin_pb.RemoveHostRequest(host_id=host_id, reason=reason))
    render.emit(response, f"{host_id} removed")


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
for command in (
    draft_cmds.advisory_drafts,
    draft_cmds.advisory_accept,
    draft_cmds.advisory_dismiss,
):
    upgrade_cmds.advisory.add_command(command)
failover_cmds.incident.add_command(draft_cmds.incident_evidence)
main.add_command(webhooks)


def _accept_output_after(group: click.Group) -> None:
    """Gives every command its own -o (`hosts -o json`), unless it has one already."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _accept_output_after(command)
        elif not any("-o" in getattr(p, "opts", ()) for p in command.params):
            command.params.append(render.output_option())


_accept_output_after(main)
