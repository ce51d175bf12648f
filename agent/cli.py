"""hangwatch-agent: the command line of the agent process."""

from __future__ import annotations

import asyncio

import click

from agent.config import AgentConfig
from hangwatch import logs
from hangwatch.addresses import parse_address, require_loopback_for_insecure
from hangwatch.cliutil import fail, load_config, print_config
from hangwatch.errors import AddressError


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--controller",
    metavar="ADDR",
    envvar="HANGWATCH_CONTROLLER",
    help="Controller HOST:PORT [env: HANGWATCH_CONTROLLER; default: 127.0.0.1:7443]",
)
@click.option("--host-id", metavar="ID", help="This host's id [default: the hostname].")
@click.option(
    "--mount",
    "mounts",
    metavar="PATH",
    multiple=True,
    help="A mount point to watch; repeat for several.",
)
@click.option(
    "--state-dir",
    metavar="DIR",
    help="Directory for the spool and agent state [default: /var/lib/hangwatch].",
)
@click.option(
    "--config",
    "config_path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="TOML config file; flags override it.",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Talk plaintext gRPC to the controller. Loopback addresses only.",
)
@click.option(
    "--log-format",
    type=click.Choice(["human", "json"]),
    default=None,
    help="Log format on stderr [default: human].",
)
@click.option(
    "--print-config", "print_only", is_flag=True, help="Print the effective config and exit."
)
@click.pass_context
def main(
    ctx: click.Context,
    controller: str | None,
    host_id: str | None,
    mounts: tuple[str, ...],
    state_dir: str | None,
    config_path: str | None,
    insecure: bool | None,
    log_format: str | None,
    print_only: bool,
) -> None:
    """Run the hangwatch agent: watch this host's mounts for filesystem lockups
    and report to the controller.

    \b
    Subcommands (run instead of the agent):
      rules check FILE   replay a saved kernel log through the detection rules
    """
    if ctx.invoked_subcommand is not None:
        return
    config = load_config(
        AgentConfig,
        config_path,
        {
            "controller.address": (controller, "--controller"),
            "controller.insecure": (insecure, "--insecure"),
            "host_id": (host_id, "--host-id"),
            "mounts": (list(mounts) or None, "--mount"),
            "state_dir": (state_dir, "--state-dir"),
            "log.format": (log_format, "--log-format"),
        },
    )
    if print_only:
        print_config(config)
        return
    try:
        address = parse_address(config.controller.address)
        if not config.controller.insecure:
            fail(
                "no TLS credentials are configured: pass --insecure to talk plaintext "
                "to a controller on a loopback address"
            )
        require_loopback_for_insecure(address, "controller address")
    except AddressError as exc:
        fail(str(exc))
    if not config.mounts:
        fail("no mounts to watch: give --mount PATH (or 'mounts' in the config file)")
    logs.setup(config.log.format, config.log.level)
    from agent.runner import run

    asyncio.run(run(config))
