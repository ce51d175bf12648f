"""hangwatch-agent: the command line of the agent process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from agent.config import AgentConfig
from hangwatch import logs, tls
from hangwatch.addresses import parse_address
from hangwatch.cliutil import fail, load_settings, program_options, version_option
from hangwatch.config import ALLOW_TESTING_FLAG
from hangwatch.errors import AddressError

DEFAULT_CONFIG = Path("/etc/hangwatch/agent.toml")


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
    ALLOW_TESTING_FLAG,
    is_flag=True,
    help="Accept the config's [testing] section (test-only knobs: synthetic events, a "
    "faked kernel release, a wedged loop). For tests and benchmarks, never production.",
)
@version_option("hangwatch-agent")
@program_options("Talk plaintext gRPC to the controller. Loopback addresses only.", DEFAULT_CONFIG)
@click.pass_context
def main(
    ctx: click.Context,
    controller: str | None,
    host_id: str | None,
    mounts: tuple[str, ...],
    state_dir: str | None,
    allow_testing: bool,
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
    config, _ = load_settings(
        AgentConfig,
        config_path,
        DEFAULT_CONFIG,
        {
            "controller.address": (controller, "--controller"),
            "controller.insecure": (insecure, "--insecure"),
            "host_id": (host_id, "--host-id"),
            "mounts": (list(mounts) or None, "--mount"),
            "state_dir": (state_dir, "--state-dir"),
            "log.format": (log_format, "--log-format"),
        },
        print_only,
        allow_testing,
    )
    try:
        settings = config.controller
        files = None if settings.insecure else tls.TlsFiles.in_section(settings, "controller")
        tls.tls_or_loopback(parse_address(settings.address), files)
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
