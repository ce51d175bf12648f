"""hangwatchctl commands for known-bad kernels and the upgrades away from them:
advisory add|list|remove, upgrade plan|list|status|pause|resume|abort|mark."""

from __future__ import annotations

import click

from hangwatch import pbtime
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatchctl import render
from hangwatchctl.failover_cmds import REASON, _target

# Lower case as every other choice; `upgrade status` shows them upper case, also taken.
HOST_STATES = ["pending", "upgrading", "done", "failed", "skipped"]


@click.group()
def advisory() -> None:
    """Known-bad kernel/filesystem versions: hosts that match are at risk."""


@advisory.command("add")
@click.argument("advisory_id", metavar="ID")
@click.option(
    "--kernel",
    "kernel_range",
    metavar="RANGE",
    required=True,
    help="Kernel releases affected: '>=A,<B', '<B', '=A' (Debian/Ubuntu or RPM releases).",
)
@click.option("--fs", "fs_type", default="", metavar="TYPE", help="Only on this filesystem.")
@click.option("--reason", default="", help="What goes wrong (bug, symptom).")
@click.option("--url", default="", help="Where to read about it.")
@click.pass_context
def advisory_add(
    ctx: click.Context, advisory_id: str, kernel_range: str, fs_type: str, reason: str, url: str
) -> None:
    """Add advisory ID: matching hosts are never picked as failover targets unless forced."""
    a = _target().call(
        "AddAdvisory",
        admin_pb.AddAdvisoryRequest(
            advisory=admin_pb.Advisory(
                id=advisory_id, kernel_range=kernel_range, fs_type=fs_type, reason=reason, url=url
            )
        ),
    )
    if render.wants_json(ctx):
        render.print_json(a)
    else:
        click.echo(f"{a.id}: at risk now: {', '.join(a.hosts_at_risk) or 'no host'}")


@advisory.command("list")
@click.pass_context
def advisory_list(ctx: click.Context) -> None:
    """Advisories, with the hosts at risk now."""
    found = _target().pages("ListAdvisories", admin_pb.ListAdvisoriesRequest(), "advisories")
    if render.wants_json(ctx):
        render.print_json(admin_pb.ListAdvisoriesResponse(advisories=found.records))
    else:
        click.echo(render.advisories_table(found.records))


@advisory.command("remove")
@click.argument("advisory_id", metavar="ID")
@REASON
def advisory_remove(advisory_id: str, reason: str) -> None:
    """Remove advisory ID (audited)."""
    _target().call("RemoveAdvisory", admin_pb.RemoveAdvisoryRequest(id=advisory_id, reason=reason))
    click.echo(f"{advisory_id} removed")


@click.group()
def upgrade() -> None:
    """Roll a kernel (and filesystem) upgrade through the cluster, one safe step at a time."""


def _show_plan(plan: admin_pb.UpgradePlan) -> None:
    if render.wants_json(click.get_current_context()):
        render.print_json(plan)
    else:
        click.echo(render.upgrade_plan_detail(plan))


@upgrade.command("plan")
@click.argument("name")
@click.option("--target-kernel", required=True, metavar="VERSION", help="uname -r to reach.")
@click.option(
    "--target-fs", default="", metavar="SPEC", help="xfs:v5, TYPE:KEY=VALUE or TYPE:FEATURE."
)
@click.option(
    "--group",
    "groups",
    multiple=True,
    metavar="G",
    help="Upgrade every member of group G; repeatable.",
)
@click.option(
    "--hosts",
    "hosts",
    multiple=True,
    metavar="H",
    help="Upgrade these hosts (H1,H2,... or the option repeated).",
)
@click.option("--all", "all_hosts", is_flag=True, help="Upgrade every registered host.")
@click.option(
    "--soak",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Clean time on the new kernel before a host is DONE [default: the controller's].",
)
def upgrade_plan(
    name: str,
    target_kernel: str,
    target_fs: str,
    groups: tuple[str, ...],
    hosts: tuple[str, ...],
    all_hosts: bool,
    soak: float | None,
) -> None:
    """Create plan NAME: drain, upgrade and verify each host in turn."""
    if sum([bool(groups), bool(hosts), all_hosts]) != 1:
        raise click.UsageError("give exactly one of --group G..., --hosts H..., --all")
    request = admin_pb.CreateUpgradePlanRequest(
        name=name,
        target_kernel=target_kernel,
        target_fs=target_fs,
        groups=groups,
        hosts=[h for arg in hosts for h in arg.split(",") if h],
        all_hosts=all_hosts,
    )
    if soak is not None:
        request.soak.CopyFrom(pbtime.duration(soak))
    _show_plan(_target().call("CreateUpgradePlan", request))


@upgrade.command("list")
@click.pass_context
def upgrade_list(ctx: click.Context) -> None:
    """Upgrade plans and their progress."""
    found = _target().pages("ListUpgradePlans", admin_pb.ListUpgradePlansRequest(), "plans")
    if render.wants_json(ctx):
        render.print_json(admin_pb.ListUpgradePlansResponse(plans=found.records))
    else:
        click.echo(render.upgrade_plans_table(found.records))


@upgrade.command("status")
@click.argument("name")
def upgrade_status(name: str) -> None:
    """Plan NAME: each host's state and what it waits for, and the percent done."""
    _show_plan(_target().call("GetUpgradePlan", admin_pb.GetUpgradePlanRequest(name=name)))


def _plan_state_command(
    verb: str, state: admin_pb.UpgradePlanState.ValueType, help_text: str
) -> click.Command:
    @click.argument("name")
    @REASON
    def command(name: str, reason: str) -> None:
        _show_plan(
            _target().call(
                "SetUpgradePlanState",
                admin_pb.SetUpgradePlanStateRequest(name=name, state=state, reason=reason),
            )
        )

    return upgrade.command(verb, help=help_text)(command)


_plan_state_command(
    "pause", admin_pb.UPGRADE_PLAN_STATE_PAUSED, "Pause plan NAME: no new host is started."
)
_plan_state_command("resume", admin_pb.UPGRADE_PLAN_STATE_RUNNING, "Resume a paused plan NAME.")
_plan_state_command(
    "abort",
    admin_pb.UPGRADE_PLAN_STATE_ABORTED,
    "Abort plan NAME for good (hosts stay as they are).",
)


@upgrade.command("mark")
@click.argument("name")
@click.argument("host_id", metavar="HOST")
@click.option(
    "--state",
    type=click.Choice(HOST_STATES, case_sensitive=False),
    required=True,
    help="upgrading: you started the upgrade; done, failed or skipped: your verdict; "
    "pending: retry a failed or skipped host.",
)
@REASON
def upgrade_mark(name: str, host_id: str, state: str, reason: str) -> None:
    """Record a step done by hand for HOST in plan NAME (audited)."""
    value = admin_pb.UpgradeHostState.Value(f"UPGRADE_HOST_STATE_{state.upper()}")
    _show_plan(
        _target().call(
            "MarkUpgradeHost",
            admin_pb.MarkUpgradeHostRequest(name=name, host_id=host_id, state=value, reason=reason),
        )
    )
