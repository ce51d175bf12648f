"""hangwatch-agent: the command line of the agent process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from agent.config import AgentConfig
from hangwatch import logs, tls
from hangwatch.addresses import parse_address, require_loopback_for_insecure
from hangwatch.cliutil import fail, load_config, print_config, program_options
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
@program_options("Talk plaintext gRPC to the controller. Loopback addresses only.")
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
        if config.controller.insecure:
            require_loopback_for_insecure(address, "controller address")
        else:
            from agent.link.channel import tls_files

            tls.require(
                tls_files(config.controller), "talk plaintext to a controller on a loopback address"
            )
    except (AddressError, tls.TlsError) as exc:
        fail(str(exc))
    if not config.mounts:
        fail("no mounts to watch: give --mount PATH (or 'mounts' in the config file)")
    logs.setup(config.log.format, config.log.level)
    from agent.runner import run

    asyncio.run(run(config))


@main.group()
def rules() -> None:
    """Work with the kernel-log detection rules."""


@rules.command("check")
@click.argument("log_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people; json: one object a line.",
)
@click.option(
    "--rules",
    "extra",
    metavar="RULES",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="An extra rules file (TOML), added to the shipped rules; repeatable.",
)
@click.option("--no-default-rules", is_flag=True, help="Use only the --rules files.")
def rules_check(log_file: str, output: str, extra: tuple[str, ...], no_default_rules: bool) -> None:
    """Replay a saved kernel log through the rules and print what would have fired.

    FILE may hold raw /dev/kmsg records, dmesg output (with or without
    timestamps) or syslog/journal lines; lines starting with '#' are comments.
    Each firing names its line number, rule, kind, severity and device.
    """
    from agent.kmsg.replay import check_file, format_firings
    from agent.kmsg.rules import load_rules
    from hangwatch.errors import ConfigError

    try:
        ruleset = load_rules([Path(p) for p in extra], shipped=not no_default_rules)
    except ConfigError as exc:
        fail(str(exc))
    firings = check_file(log_file, ruleset)
    click.echo(format_firings(firings, "json" if output == "json" else "table"), nl=False)
