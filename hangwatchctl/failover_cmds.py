"""hangwatchctl commands that steer failover: groups, failover, switchover, maintenance,
automation, host clear, audit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from hangwatch import pbtime
from hangwatch.cliutil import EXIT_REFUSED, fail
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatchctl import render, timearg
from hangwatchctl.client import Target

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

REASON = click.option("--reason", required=True, help="Why: it goes into the audit log.")


def limit_option(help_text: str) -> Decorator:
    """--limit of the list commands: 1 to 1000 (what the API takes), 50 by default."""
    return click.option(
        "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help=help_text
    )


def _target() -> Target:
    return click.get_current_context().find_root().obj  # type: ignore[no-any-return]


def _show_failover(f: admin_pb.Failover) -> None:
    if render.wants_json(click.get_current_context()):
        render.print_json(f)
    else:
        click.echo(render.failover_detail(f))


@click.command()
@click.pass_context
def groups(ctx: click.Context) -> None:
    """List groups: members, primary, epoch, mode."""
    response = _target().call("ListGroups", admin_pb.ListGroupsRequest())
    if render.wants_json(ctx):
        render.print_json(response)
        return
    click.echo(render.groups_table(response.groups))
    click.echo(f"\nautomation: {'on' if response.automation_enabled else 'OFF'}")


@click.group()
def failover() -> None:
    """Propose, approve and follow failovers."""


@failover.command("propose")
@click.argument("group")
@click.option("--to", "to_host", metavar="HOST", help="The target (default: the best member).")
@REASON
@click.option("--dry-run", is_flag=True, help="Show the plan and why; change nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Allow an ineligible target named with --to (at risk, ...): audited.",
)
def failover_propose(
    group: str, to_host: str | None, reason: str, dry_run: bool, force: bool
) -> None:
    """Propose moving GROUP's service off its primary."""
    if force and not to_host:
        raise click.UsageError("--force needs --to HOST")
    f = _target().call(
        "ProposeFailover",
        admin_pb.ProposeFailoverRequest(
            group=group, to_host=to_host or "", reason=reason, dry_run=dry_run, force=force
        ),
    )
    _show_failover(f)


@failover.command("approve")
@click.argument("failover_id", metavar="ID")
@click.option(
    "--to",
    "to_host",
    metavar="HOST",
    help="Retarget the proposal to HOST first (it stays the same failover, in its incident).",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --to: allow an ineligible HOST (at risk, unhealthy, unreachable): audited.",
)
@click.option("--reason", default="", help="Why (required with --to): it goes into the audit log.")
def failover_approve(failover_id: str, to_host: str | None, force: bool, reason: str) -> None:
    """Approve a proposed failover: it proceeds at once (demote or fence, then promote)."""
    if force and not to_host:
        raise click.UsageError("--force needs --to HOST")
    if to_host and not reason:
        raise click.UsageError("--to needs --reason: why the target changes")
    request = admin_pb.ApproveFailoverRequest(
        id=failover_id, reason=reason, to_host=to_host or "", force=force
    )
    _show_failover(_target().call("ApproveFailover", request))


@failover.command("reject")
@click.argument("failover_id", metavar="ID")
@REASON
def failover_reject(failover_id: str, reason: str) -> None:
    """Reject a proposed failover."""
    _show_failover(
        _target().call(
            "RejectFailover", admin_pb.RejectFailoverRequest(id=failover_id, reason=reason)
        )
    )


@failover.command("cancel")
@click.argument("failover_id", metavar="ID")
@REASON
def failover_cancel(failover_id: str, reason: str) -> None:
    """Cancel a failover that has not started fencing (or whose fencing failed)."""
    _show_failover(
        _target().call(
            "CancelFailover", admin_pb.CancelFailoverRequest(id=failover_id, reason=reason)
        )
    )


@failover.command("confirm-fenced")
@click.argument("failover_id", metavar="ID")
@REASON
@click.option(
    "--confirm",
    "confirm_host",
    metavar="HOST",
    help="The old primary's host id, typed to confirm it is off (asked if omitted).",
)
def failover_confirm_fenced(failover_id: str, reason: str, confirm_host: str | None) -> None:
    """State that the host a FENCE_FAILED failover waits on is off: the old primary (the
    failover then promotes), or the target whose promote failed (the failover ends).

    Only do this after checking by hand (console, PDU, BMC) that the host cannot
    write any more: two primaries at once is what fencing prevents.
    """
    target = _target()
    f = target.call("GetFailover", admin_pb.GetFailoverRequest(id=failover_id))
    if confirm_host is None:
        confirm_host = click.prompt(
            f"Type the host id of {render.fence_host(f)} to confirm it is off"
        )
    _show_failover(
        target.call(
            "ConfirmFenced",
            admin_pb.ConfirmFencedRequest(id=failover_id, confirm_host=confirm_host, reason=reason),
        )
    )


@failover.command("list")
@click.option("--group", default="", help="Only this group's failovers.")
@click.option("--active", is_flag=True, help="Only failovers still in progress.")
@limit_option("How many failovers to list at most.")
@click.pass_context
def failover_list(ctx: click.Context, group: str, active: bool, limit: int) -> None:
    """List failovers, newest first."""
    request = admin_pb.ListFailoversRequest(group=group, active_only=active)
    found = _target().pages("ListFailovers", request, "failovers", limit).records
    if render.wants_json(ctx):
        render.print_json(admin_pb.ListFailoversResponse(failovers=found))
    else:
        click.echo(render.failovers_table(found))


@failover.command("show")
@click.argument("failover_id", metavar="ID")
def failover_show(failover_id: str) -> None:
    """A failover's steps, and why its target was chosen over each other member."""
    _show_failover(_target().call("GetFailover", admin_pb.GetFailoverRequest(id=failover_id)))


@failover.command("ack")
@click.argument("group")
@REASON
def failover_ack(group: str, reason: str) -> None:
    """End GROUP's anti-flap block early: a proposal it held goes ahead (unless
    something else holds it), and policy may approve the group's next failover."""
    g = _target().call("AckGroup", admin_pb.AckGroupRequest(group=group, reason=reason))
    render.emit(
        g, f"{g.name}: automatic failover allowed again; a proposal the block held goes ahead"
    )


@click.command()
@click.argument("group")
@click.option("--to", "to_host", metavar="HOST", required=True, help="The new primary.")
@click.option(
    "--at",
    metavar="TIME",
    callback=timearg.time_option(past=False),
    help="When: an ISO 8601 time or +30m from now (default: now).",
)
@click.option("--reason", default="", help="Why (default: planned switchover).")
@click.option("--force", is_flag=True, help="Allow an ineligible target: audited.")
def switchover(group: str, to_host: str, at: float | None, reason: str, force: bool) -> None:
    """Planned move of GROUP's healthy primary to HOST: demote first, then promote."""
    request = admin_pb.SwitchoverRequest(group=group, to_host=to_host, reason=reason, force=force)
    if at is not None:
        request.at.CopyFrom(pbtime.timestamp(at))
    _show_failover(_target().call("Switchover", request))


@click.group()
def maintenance() -> None:
    """Maintenance windows: no automatic failover action for what they hold."""


def _maintenance_switch(verb: str, help_text: str, *extra: Decorator) -> None:
    """`maintenance on` and `maintenance off`: one scope of --host, --group, --cluster."""

    def command(
        host_id: str | None,
        group: str | None,
        cluster: bool,
        reason: str,
        until: float | None = None,
    ) -> None:
        chosen = [x for x in (host_id, group, cluster or None) if x]
        if len(chosen) != 1:
            raise click.UsageError("give exactly one of --host HOST, --group GROUP, --cluster")
        scope = (
            admin_pb.MAINTENANCE_SCOPE_HOST
            if host_id
            else admin_pb.MAINTENANCE_SCOPE_GROUP
            if group
            else admin_pb.MAINTENANCE_SCOPE_CLUSTER
        )
        request = admin_pb.SetMaintenanceRequest(
            scope=scope, target=host_id or group or "", enabled=verb == "on", reason=reason
        )
        if until is not None:
            request.until.CopyFrom(pbtime.timestamp(until))
        m = _target().call("SetMaintenance", request)
        render.emit(m, f"maintenance {verb} for {m.target or 'cluster'}")

    options: tuple[Decorator, ...] = (
        *extra,
        REASON,
        click.option("--cluster", is_flag=True, help="The scope: the whole cluster."),
        click.option("--group", metavar="GROUP", help="The scope: this group (all its members)."),
        click.option("--host", "host_id", metavar="HOST", help="The scope: this host."),
    )
    for decorate in options:
        command = decorate(command)
    maintenance.command(verb, help=help_text)(command)


_maintenance_switch(
    "on",
    "Start maintenance for a host, a group or the cluster: policy leaves it alone (audited).",
    click.option(
        "--until",
        metavar="TIME",
        callback=timearg.time_option(past=False),
        help="Ends by itself then: an ISO 8601 time or +2h from now (default: when turned off).",
    ),
)
_maintenance_switch("off", "End maintenance for a host, a group or the cluster (audited).")


@maintenance.command("list")
def maintenance_list() -> None:
    """Windows in force now: their scope, who set them, since and until when, and why."""
    response = _target().call("ListMaintenance", admin_pb.ListMaintenanceRequest())
    render.emit(response, render.maintenance_table(response.windows))


@click.command()
@click.argument("state", type=click.Choice(["on", "off"]))
@REASON
def automation(state: str, reason: str) -> None:
    """Switch automatic failover approval on or off for the whole cluster."""
    r = _target().call(
        "SetAutomation", admin_pb.SetAutomationRequest(enabled=state == "on", reason=reason)
    )
    render.emit(r, f"automation {'on' if r.enabled else 'off'}")


@click.command("clear")
@click.argument("host_id", metavar="HOST")
@REASON
def host_clear(host_id: str, reason: str) -> None:
    """Make HOST a failover target again after a failover moved away from it."""
    cleared = _target().call("ClearHost", admin_pb.ClearHostRequest(host_id=host_id, reason=reason))
    render.emit(cleared, f"{host_id} cleared")


@click.command()
@click.option(
    "--verify",
    "check",
    is_flag=True,
    help="Check the hash chain and its anchor (removed or rewritten rows); exit 1 if broken.",
)
@click.option("--since", type=click.IntRange(min=0), default=0, help="Entries after this seq.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Show at most this many entries (0: all); a note says when the log goes on.",
)
@click.pass_context
def audit(ctx: click.Context, check: bool, since: int, limit: int) -> None:
    """The audit log: every proposal, approval, override and maintenance change."""
    target = _target()
    if check:
        result = target.call("VerifyAudit", admin_pb.VerifyAuditRequest())
        if render.wants_json(ctx):
            render.print_json(result)
        elif result.ok:
            click.echo(_intact(result))
        if not result.ok:
            where = f" at row {result.bad_seq}" if result.bad_seq else ""
            fail(f"audit log broken{where}: {result.detail}", EXIT_REFUSED)
        return
    request = admin_pb.ListAuditRequest(since_seq=since)
    listing = target.pages("ListAudit", request, "entries", limit)
    entries = listing.records
    last_seq = listing.last.last_seq
    if render.wants_json(ctx):
        render.print_json(admin_pb.ListAuditResponse(entries=entries, last_seq=last_seq))
    else:
        click.echo(render.audit_table(entries))
    if entries and entries[-1].seq < last_seq:
        shown = f"seq {entries[0].seq}-{entries[-1].seq}"
        click.echo(
            f"(showing {len(entries)} entries, {shown}; the log goes on to seq {last_seq}: "
            f"--since {entries[-1].seq} for the next ones, --limit 0 for all)",
            err=True,
        )


def _intact(result: admin_pb.VerifyAuditResponse) -> str:
    """What an intact verdict covers: the chain up to its head, the anchor up to its row."""
    said = f"audit log intact up to row {result.head_seq} ({result.entries} entries)"
    if not result.HasField("anchored_at"):
        return f"{said}; no anchor: removed or rewritten rows would not show"
    said += f", anchored at row {result.anchored_seq} on {render.when(result.anchored_at)}"
    if result.head_seq > result.anchored_seq:
        later = f"{result.anchored_seq + 1}-{result.head_seq}"
        said += f" (rows {later} are checked by the hash chain only)"
    return said


@click.group()
def incident() -> None:
    """Lockup incidents: their timelines, internal reports and customer status pages."""


@incident.command("list")
@click.option("--open", "open_only", is_flag=True, help="Only incidents still open.")
@click.pass_context
def incident_list(ctx: click.Context, open_only: bool) -> None:
    """List incidents, newest first."""
    request = admin_pb.ListIncidentsRequest(open_only=open_only)
    found = _target().pages("ListIncidents", request, "incidents").records
    if render.wants_json(ctx):
        render.print_json(admin_pb.ListIncidentsResponse(incidents=found))
    else:
        click.echo(render.incidents_table(found))


@incident.command("show")
@click.argument("incident_id", metavar="ID")
@click.option(
    "-o",
    "--output",
    "fmt",
    type=click.Choice(["table", "json", "markdown", "status"]),
    default=None,
    help="markdown: the internal report; status: the customer status page (no host "
    "names, paths or ids).",
)
@click.pass_context
def incident_show(ctx: click.Context, incident_id: str, fmt: str | None) -> None:
    """An incident's timeline: signals, failover steps and decisions, in order."""
    fmt = fmt or ("json" if render.wants_json(ctx) else "table")
    found = _target().call(
        "GetIncident",
        admin_pb.GetIncidentRequest(
            id=incident_id, format=fmt if fmt in ("markdown", "status") else ""
        ),
    )
    if fmt in ("markdown", "status"):
        click.echo(found.rendered, nl=False)
    elif fmt == "json":
        render.print_json(found)
    else:
        click.echo(render.incident_detail(found))
