"""hangwatchctl events: list, or follow the event stream from a cursor."""

from __future__ import annotations

import sys

import click
import grpc
from tenacity import Retrying, retry_if_exception, wait_random_exponential

from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb
from hangwatchctl import render
from hangwatchctl.client import UNREACHABLE, Target, exit_for

SEVERITIES = ["info", "warning", "error", "critical"]


@click.command()
@click.option("--host", "host_id", metavar="HOST", help="Only this host's events.")
@click.option("--kind", metavar="KIND", help="Only events of this kind (e.g. LOCKUP_CONFIRMED).")
@click.option("--group", metavar="GROUP", help="Only events of this group's hosts.")
@click.option("--min-severity", type=click.Choice(SEVERITIES), help="At least this severity.")
@click.option(
    "--since",
    "since",
    type=click.IntRange(min=0),
    default=None,
    metavar="CURSOR",
    help="Only events after this cursor.",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="How many of the newest events to list (without --follow).",
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Stream events as they arrive (NDJSON with -o json); reconnects on its "
    "own from the last cursor seen.",
)
@click.pass_context
def events(
    ctx: click.Context,
    host_id: str | None,
    kind: str | None,
    group: str | None,
    min_severity: str | None,
    since: int | None,
    limit: int,
    follow: bool,
) -> None:
    """List events, newest last, or follow them live."""
    target: Target = ctx.obj
    flt = admin_pb.EventFilter(
        host_id=host_id or "",
        kind=kind or "",
        group=group or "",
        min_severity=(
            pb.Severity.Value(f"SEVERITY_{min_severity.upper()}")
            if min_severity
            else pb.SEVERITY_UNSPECIFIED
        ),
    )
    if follow:
        _follow(target.stub(), flt, since or 0, target, render.wants_json(ctx))
        return
    if since is None:
        request = admin_pb.ListEventsRequest(filter=flt, newest_first=True)
        found = list(reversed(target.pages("ListEvents", request, "events", limit).records))
    else:
        request = admin_pb.ListEventsRequest(filter=flt, since_cursor=since)
        found = target.pages("ListEvents", request, "events", limit).records
    if render.wants_json(ctx):
        render.print_json(admin_pb.ListEventsResponse(events=found))
    else:
        click.echo(render.events_table(found))


def _follow(
    stub: object, flt: admin_pb.EventFilter, cursor: int, target: Target, as_json: bool
) -> None:
    connected = False

    def transient(exc: BaseException) -> bool:
        return connected and isinstance(exc, grpc.RpcError) and exc.code() in UNREACHABLE

    def stream_once() -> None:
        nonlocal cursor, connected
        call = stub.WatchEvents(  # type: ignore[attr-defined]
            admin_pb.WatchEventsRequest(filter=flt, since_cursor=cursor)
        )
        call.initial_metadata()
        connected = True
        for event in call:
            if as_json:
                render.print_json(event, ndjson=True)
            else:
                click.echo(render.events_table([event]).splitlines()[1])
            sys.stdout.flush()
            cursor = event.cursor

    if not as_json:
        click.echo(render.events_table([]))
    try:
        for attempt in Retrying(
            retry=retry_if_exception(transient),
            wait=wait_random_exponential(multiplier=0.2, max=5.0),
            before_sleep=lambda s: click.echo(
                f"(stream lost; resuming after cursor {cursor})", err=True
            ),
            reraise=True,
        ):
            with attempt:
                stream_once()
    except grpc.RpcError as exc:
        exit_for(exc, target)
    except KeyboardInterrupt:
        pass
