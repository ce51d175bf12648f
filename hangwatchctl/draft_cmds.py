"""hangwatchctl commands for the suspect kernel: advisory drafts|accept|dismiss, and the
vendor bundle of an incident's evidence: incident evidence."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import click

from hangwatch.messages import enum_label
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatchctl import bundle, render
from hangwatchctl.failover_cmds import REASON, _target


def drafts_table(drafts: Sequence[admin_pb.AdvisoryDraft]) -> str:
    rows = [
        [
            d.id,
            enum_label(admin_pb.DraftState, d.state),
            d.kernel_release,
            d.fs_type or "any",
            f"{len(d.lockups)} on {', '.join(sorted({lk.host_id for lk in d.lockups}))}",
            ", ".join(d.hosts_on_kernel) or "-",
        ]
        for d in drafts
    ]
    table = render.table(["DRAFT", "STATE", "KERNEL", "FS", "LOCKUPS", "HOSTS ON KERNEL"], rows)
    return "\n".join([table, "", *(f"{d.id}: {d.summary}" for d in drafts)]).rstrip()


@click.command("drafts")
@click.option("--all", "show_all", is_flag=True, help="Accepted and dismissed drafts too.")
@click.pass_context
def advisory_drafts(ctx: click.Context, show_all: bool) -> None:
    """Drafts the controller wrote when a lockup fingerprint repeated: suspect kernels.

    Until a draft is accepted or dismissed, failovers rank standbys on another
    kernel or filesystem first.
    """
    response = _target().call(
        "ListAdvisoryDrafts", admin_pb.ListAdvisoryDraftsRequest(all=show_all)
    )
    if render.wants_json(ctx):
        render.print_json(response)
    elif not response.drafts:
        click.echo("no open advisory draft" if not show_all else "no advisory draft")
    else:
        click.echo(drafts_table(response.drafts))


@click.command("accept")
@click.argument("draft_id", metavar="DRAFT")
@click.option(
    "--range",
    "kernel_range",
    default="",
    metavar="RANGE",
    help="Kernel releases the advisory covers ('>=A,<B', '<B', '=A') [default: exactly the "
    "draft's kernel].",
)
@click.option("--reason", default="", help="What goes wrong [default: the draft's signature].")
@click.option("--url", default="", help="Where to read about it (the vendor's bug).")
@click.pass_context
def advisory_accept(
    ctx: click.Context, draft_id: str, kernel_range: str, reason: str, url: str
) -> None:
    """Accept DRAFT: it becomes advisory DRAFT, and hosts on its kernel are at risk (audited)."""
    a = _target().call(
        "AcceptAdvisoryDraft",
        admin_pb.AcceptAdvisoryDraftRequest(
            id=draft_id, kernel_range=kernel_range, reason=reason, url=url
        ),
    )
    if render.wants_json(ctx):
        render.print_json(a)
    else:
        at_risk = ", ".join(a.hosts_at_risk) or "no host"
        click.echo(f"{a.id} is an advisory now (kernel {a.kernel_range}): at risk now: {at_risk}")


@click.command("dismiss")
@click.argument("draft_id", metavar="DRAFT")
@REASON
@click.pass_context
def advisory_dismiss(ctx: click.Context, draft_id: str, reason: str) -> None:
    """Dismiss DRAFT: not a kernel bug, or not this one; it no longer sways failovers (audited)."""
    d = _target().call(
        "DismissAdvisoryDraft", admin_pb.DismissAdvisoryDraftRequest(id=draft_id, reason=reason)
    )
    if render.wants_json(ctx):
        render.print_json(d)
    else:
        click.echo(f"{d.id} dismissed")


@click.command("evidence")
@click.argument("incident_id", metavar="ID")
@click.option(
    "-o",
    "--output",
    "path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    metavar="FILE",
    help="Where to write the bundle: a .tar.gz, or a plain .tar if FILE ends in .tar "
    "[default: hangwatch-evidence-ID.tar.gz here].",
)
def incident_evidence(incident_id: str, path: Path | None) -> None:
    """Write the evidence of incident ID's lockups as a tar for a vendor bug report.

    Stacks of the blocked tasks, the kernel log around each lockup and the kernel's
    hung-task reports, kernel build, filesystem type, options and features, device
    counters, and a README saying what each file is. Host names and mount paths are
    in it (it is meant for a vendor under NDA); secrets are not.
    """
    found = _target().call(
        "GetIncidentEvidence", admin_pb.GetIncidentEvidenceRequest(id=incident_id)
    )
    path = path or Path(f"hangwatch-evidence-{found.incident.id}.tar.gz")
    size = bundle.write(path, found, time.time())
    click.echo(
        f"wrote {path} ({len(found.lockups)} lockups, {size / 1024:.1f} KiB)"
        + ("" if found.lockups else ": the incident has no confirmed lockup with evidence")
    )
