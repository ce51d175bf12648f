"""How hangwatchctl prints: aligned tables for people, JSON with stable keys for scripts.

JSON follows the protobuf JSON mapping with the proto's field names, so keys are
exactly the v1 API's and stay stable for as long as v1 does. Tables and detail views
show every unprintable character as an escape (ESC as \\x1b): what a host sent must
not drive the terminal it is read on. JSON stays exact.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import click
from google.protobuf.message import Message

from hangwatch import pbtime
from hangwatch.messages import enum_label, to_dict
from hangwatch.printable import escape
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb
from hangwatchctl import timearg

OUTPUTS = ["table", "json"]
OUTPUT_HELP = "table for people; json (stable keys) for scripts."


def wants_json(ctx: click.Context) -> bool:
    return bool(ctx.meta.get("output") == "json")


def _set_output(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["output"] = value  # shared by every context of the command line


def output_option() -> click.Option:
    """-o after the command (`hosts -o json`): the same as before it, which it overrides."""
    return click.Option(
        ["-o", "--output"],
        type=click.Choice(OUTPUTS),
        expose_value=False,
        callback=_set_output,
        help=OUTPUT_HELP + " Also accepted before the command.",
    )


def emit(message: Message, text: str) -> None:
    """`message` as JSON with -o json, else `text`."""
    if wants_json(click.get_current_context()):
        print_json(message)
    else:
        click.echo(text)


def print_json(message: Message, ndjson: bool = False) -> None:
    if ndjson:
        click.echo(json.dumps(to_dict(message), sort_keys=True, separators=(",", ":")))
    else:
        click.echo(json.dumps(to_dict(message), sort_keys=True, indent=2))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    rows = [[escape(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def when(ts: Any) -> str:
    """A time with its zone: UTC, or local with --local."""
    return timearg.show(pbtime.seconds(ts), timearg.local_time(click.get_current_context(True)))


def _scope(w: admin_pb.Maintenance) -> str:
    label = enum_label(admin_pb.MaintenanceScope, w.scope).lower()
    return f"{label} {w.target}" if w.target else label


def windows_of(
    h: admin_pb.Host, windows: Sequence[admin_pb.Maintenance]
) -> list[admin_pb.Maintenance]:
    """The maintenance windows that hold HOST: its own, its groups', the cluster's."""
    groups = {role.split("=", 1)[0] for role in h.roles}
    return [
        w
        for w in windows
        if w.scope == admin_pb.MAINTENANCE_SCOPE_CLUSTER
        or (w.scope == admin_pb.MAINTENANCE_SCOPE_HOST and w.target == h.host_id)
        or (w.scope == admin_pb.MAINTENANCE_SCOPE_GROUP and w.target in groups)
    ]


def _until(w: admin_pb.Maintenance) -> str:
    return when(w.until) if w.HasField("until") else "until turned off"


def maintenance_table(windows: Sequence[admin_pb.Maintenance]) -> str:
    rows = [
        [
            _scope(w),
            w.set_by,
            when(w.set_at),
            _until(w),
            w.reason[:60],
        ]
        for w in windows
    ]
    return table(["SCOPE", "BY", "SINCE", "UNTIL", "REASON"], rows)


def hosts_table(
    hosts: Sequence[admin_pb.Host], windows: Sequence[admin_pb.Maintenance] = ()
) -> str:
    rows = []
    for h in hosts:
        health = ", ".join(f"{m.mount} {enum_label(pb.HealthState, m.state)}" for m in h.health)
        rows.append(
            [
                h.host_id,
                enum_label(pb.Liveness, h.liveness),
                age(pbtime.seconds(h.heartbeat_age))
                if h.HasField("last_heartbeat_at")
                else "never",
                h.inventory.kernel_release,
                f"AT RISK: {', '.join(h.advisories)}" if h.advisories else "-",
                ", ".join(_scope(w) for w in windows_of(h, windows))
                or ("on" if h.in_maintenance else "-"),
                health or "-",
            ]
        )
    return table(["HOST", "LIVENESS", "HEARTBEAT", "KERNEL", "RISK", "MAINTENANCE", "MOUNTS"], rows)


def host_detail(h: admin_pb.Host, windows: Sequence[admin_pb.Maintenance] = ()) -> str:
    lines = [
        f"Host:        {h.host_id}",
        f"Liveness:    {enum_label(pb.Liveness, h.liveness)}",
        "Heartbeat:   "
        + (
            f"{age(pbtime.seconds(h.heartbeat_age))} ago"
            if h.HasField("last_heartbeat_at")
            else "never"
        ),
        f"Registered:  {when(h.registered_at)}",
        f"Boot id:     {h.boot_id}",
        f"Kernel:      {h.inventory.kernel_release} ({h.inventory.kernel_version})",
        f"OS:          {h.inventory.os_release}",
        f"Agent:       {h.agent_version}",
    ]
    if h.inventory.fs_tools:
        tools = ", ".join(f"{k} {v}" for k, v in sorted(h.inventory.fs_tools.items()))
        lines.append(f"FS tools:    {tools}")
    lines.append(
        f"Risk:        at risk: {', '.join(h.advisories)}" if h.advisories else "Risk:        none"
    )
    held = [f"{_scope(w)} (by {w.set_by}, {_until(w)}: {w.reason})" for w in windows_of(h, windows)]
    lines += [f"Maintenance: {line}" for line in held] or [
        f"Maintenance: {'on' if h.in_maintenance else 'none'}"
    ]
    if h.needs_clear:
        lines.append(f"Needs clear: {h.needs_clear_reason} (hangwatchctl host clear)")
    health = {m.mount: m for m in h.health}
    lines.append("Mounts:")
    rows = []
    for m in h.mounts:
        mh = health.get(m.path)
        rows.append(
            [
                m.path,
                m.fs_type or "?",
                m.device or "?",
                "ro" if m.read_only else "rw",
                enum_label(pb.HealthState, mh.state) if mh else "UNKNOWN",
                mh.reason if mh else "",
            ]
        )
    lines.append(_indent(table(["PATH", "FS", "DEVICE", "MODE", "HEALTH", "REASON"], rows)))
    featured = [m for m in h.mounts if m.fs_features]
    if featured:
        lines.append("Filesystem features (from sysfs and /proc/fs):")
        for m in featured:
            lines.append(f"  {m.path} ({m.fs_type}):")
            lines.extend(f"    {k} = {v}" for k, v in sorted(m.fs_features.items()))
    return printable(lines)


def events_table(events: Sequence[pb.Event]) -> str:
    rows = [
        [
            str(e.cursor),
            when(e.occurred_at),
            e.host_id,
            e.mount or "-",
            e.kind,
            enum_label(pb.Severity, e.severity),
            e.summary,
        ]
        for e in events
    ]
    return table(["CURSOR", "TIME", "HOST", "MOUNT", "KIND", "SEVERITY", "SUMMARY"], rows)


def printable(lines: Sequence[str]) -> str:
    """A detail view's lines, each with its unprintable characters escaped."""
    return "\n".join(escape(line) for line in "\n".join(lines).split("\n"))


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _state(value: int) -> str:
    return enum_label(admin_pb.FailoverState, value)


def groups_table(groups: Sequence[admin_pb.Group]) -> str:
    rows = [
        [
            g.name,
            enum_label(admin_pb.FailoverMode, g.mode).lower(),
            g.primary,
            str(g.epoch),
            ", ".join(g.members),
            ", ".join(g.mounts),
            "maintenance"
            if g.in_maintenance
            else (
                f"auto blocked until {when(g.auto_blocked_until)}"
                if g.HasField("auto_blocked_until")
                and pbtime.seconds(g.auto_blocked_until) > time.time()
                else ""
            ),
        ]
        for g in groups
    ]
    return table(["GROUP", "MODE", "PRIMARY", "EPOCH", "MEMBERS", "MOUNTS", "NOTE"], rows)


def failovers_table(failovers: Sequence[admin_pb.Failover]) -> str:
    rows = [
        [
            f.id,
            f.group,
            _state(f.state),
            enum_label(admin_pb.FailoverTrigger, f.trigger).lower(),
            f"{f.from_host} -> {f.to_host or '?'}",
            when(f.created_at),
            f.reason[:60],
        ]
        for f in failovers
    ]
    return table(["ID", "GROUP", "STATE", "TRIGGER", "MOVE", "CREATED", "REASON"], rows)


def failover_detail(f: admin_pb.Failover) -> str:
    lines = [
        f"Failover:  {f.id}" + ("   (dry run: nothing was stored)" if f.dry_run else ""),
        f"Group:     {f.group}",
        f"State:     {_state(f.state)}",
        f"Trigger:   {enum_label(admin_pb.FailoverTrigger, f.trigger)}",
        f"Move:      {f.from_host} -> {f.to_host or '(no eligible target)'}"
        + (f"   epoch {f.epoch}" if f.epoch else "")
        + ("   FORCED" if f.forced else ""),
        f"Reason:    {f.reason}",
        f"Proposed:  by {f.proposed_by} at {when(f.created_at)}",
    ]
    if f.approved_by:
        lines.append(f"Approved:  by {f.approved_by}")
    if f.HasField("not_before"):
        lines.append(f"Not before: {when(f.not_before)}")
    if f.incident_id:
        lines.append(f"Incident:  {f.incident_id}")
    lines.append("Candidates (in the order they were ranked):")
    rows = []
    for c in f.candidates:
        chosen = "-> chosen" if c.host_id == f.to_host else ""
        latency = (
            f"{pbtime.seconds(c.probe_latency) * 1000:.1f}ms"
            if c.HasField("probe_latency")
            else "-"
        )
        rows.append(
            [
                c.host_id,
                "yes" if c.eligible else "no",
                latency,
                "; ".join(c.reasons) or "healthy",
                chosen,
            ]
        )
    lines.append(_indent(table(["HOST", "ELIGIBLE", "PROBE", "WHY", ""], rows)))
    lines.append("Steps:")
    steps = [[when(s.at), _state(s.state), s.actor, s.detail] for s in f.steps]
    lines.append(_indent(table(["TIME", "STATE", "BY", "DETAIL"], steps)))
    if f.state == admin_pb.FAILOVER_STATE_PROPOSED and f.to_host and not f.dry_run:
        lines.append(f"\nApprove with: hangwatchctl failover approve {f.id}")
    if f.state == admin_pb.FAILOVER_STATE_FENCE_FAILED:
        host = fence_host(f)
        lines.append(
            f"\nFencing failed. Once {host} is off for sure: "
            f"hangwatchctl failover confirm-fenced {f.id} --confirm {host} --reason TEXT"
        )
    return printable(lines)


def fence_host(f: admin_pb.Failover) -> str:
    """The host a FENCE_FAILED failover waits to hear is off: the old primary, or the
    target once its promote failed (the failover went through RECALLING)."""
    recalled = any(s.state == admin_pb.FAILOVER_STATE_RECALLING for s in f.steps)
    return f.to_host if recalled else f.from_host


def audit_table(entries: Sequence[admin_pb.AuditEntry]) -> str:
    rows = [
        [
            str(e.seq),
            when(e.at),
            e.actor,
            e.role,
            e.action,
            e.target,
            "" if e.allowed else "REFUSED",
            e.detail[:100],
        ]
        for e in entries
    ]
    return table(["SEQ", "TIME", "ACTOR", "ROLE", "ACTION", "TARGET", "", "DETAIL"], rows)


def incidents_table(incidents: Sequence[admin_pb.Incident]) -> str:
    rows = [
        [
            i.id,
            i.group,
            f"{i.host_id}:{i.mount}" if i.mount else i.host_id,
            when(i.started_at),
            when(i.restored_at) if i.HasField("restored_at") else "-",
            when(i.ended_at) if i.HasField("ended_at") else "open",
        ]
        for i in incidents
    ]
    return table(["ID", "GROUP", "WHERE", "STARTED", "RESTORED", "CLOSED"], rows)


def incident_detail(i: admin_pb.Incident) -> str:
    lines = [
        f"Incident:  {i.id}",
        f"Group:     {i.group}",
        f"Where:     {i.host_id}:{i.mount}" if i.mount else f"Host:      {i.host_id}",
        f"Status:    {i.status}",
        f"Started:   {when(i.started_at)} (first signal)",
        f"Restored:  {when(i.restored_at) if i.HasField('restored_at') else 'not yet'}",
        f"Closed:    {when(i.ended_at) if i.HasField('ended_at') else 'open'}",
    ]
    if i.advisories:
        lines.append(f"Advisories: {', '.join(i.advisories)}")
    if i.related:
        lines.append(f"Earlier incidents of the same advisory: {', '.join(i.related)}")
    lines += [
        "Timeline:",
    ]
    rows = [[when(e.at), e.kind, e.text[:120]] for e in i.timeline]
    lines.append(_indent(table(["TIME", "KIND", "WHAT"], rows)))
    return printable(lines)


def advisories_table(advisories: Sequence[admin_pb.Advisory]) -> str:
    rows = [
        [
            a.id,
            a.kernel_range,
            a.fs_type or "any",
            ", ".join(a.hosts_at_risk) or "-",
            a.reason[:60],
            a.url,
        ]
        for a in advisories
    ]
    return table(["ID", "KERNEL", "FS", "HOSTS AT RISK", "REASON", "URL"], rows)


def _upgrade_state(value: int) -> str:
    return enum_label(admin_pb.UpgradeHostState, value)


def upgrade_plans_table(plans: Sequence[admin_pb.UpgradePlan]) -> str:
    rows = [
        [
            p.name,
            enum_label(admin_pb.UpgradePlanState, p.state),
            p.target_kernel,
            p.target_fs or "-",
            f"{p.percent_done:.0f}%",
            str(len(p.hosts)),
            when(p.created_at),
        ]
        for p in plans
    ]
    return table(["PLAN", "STATE", "KERNEL", "FS", "DONE", "HOSTS", "CREATED"], rows)


def upgrade_plan_detail(p: admin_pb.UpgradePlan) -> str:
    lines = [
        f"Plan:      {p.name}",
        f"State:     {enum_label(admin_pb.UpgradePlanState, p.state)}",
        f"Target:    kernel {p.target_kernel}" + (f", fs {p.target_fs}" if p.target_fs else ""),
        f"Soak:      {age(pbtime.seconds(p.soak))}",
        f"Created:   by {p.created_by} at {when(p.created_at)}",
        f"Progress:  {p.percent_done:.0f}% "
        f"({sum(h.state in _FINISHED for h in p.hosts)} of {len(p.hosts)} hosts)",
    ]
    rows = [
        [
            h.host_id,
            _upgrade_state(h.state),
            h.kernel_release or "?",
            ", ".join(f"{m} {v}" for m, v in sorted(h.mounts_fs.items())) or "-",
            when(h.updated_at),
            h.detail,
        ]
        for h in p.hosts
    ]
    lines.append(_indent(table(["HOST", "STATE", "KERNEL", "FS", "SINCE", "DETAIL"], rows)))
    return printable(lines)


_FINISHED = (admin_pb.UPGRADE_HOST_STATE_DONE, admin_pb.UPGRADE_HOST_STATE_SKIPPED)
