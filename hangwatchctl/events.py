"""hangwatchctl events: list, or follow the event stream, from a time or a cursor.

Events are stored in cursor order, and the time the controller received each one
only grows with its cursor: `--since TIME` bisects over it for the first cursor at
or after TIME, so an event that happened earlier but arrived later (spooled through
an outage) is not missed.
"""

from __future__ import annotations

import bisect
import sys
from typing import Any

import click
import grpc
from tenacity import Retrying, retry_if_exception, wait_random_exponential

from hangwatch import pbtime
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import types_pb2 as pb
from hangwatchctl import render, timearg
from hangwatchctl.client import UNREACHABLE, Target, exit_for, rpc_errors
from hangwatchctl.failover_cmds import limit_option

SEVERITIES = ["info", "warning", "error", "critical"]


@click.command()
@click.option("--host", "host_id", metavar="HOST", help="Only this host's events.")
@click.option("--kind", metavar="KIND", help="Only events of this kind (e.g. LOCKUP_CONFIRMED).")
@click.option("--group", metavar="GROUP", help="Only events of this group's hosts.")
@click.option("--min-severity", type=click.Choice(SEVERITIES), help="At least this severity.")
@click.option(
    "--since",
    metavar="TIME",
    callback=timearg.time_option(past=True),
    help="Only events the controller received since then: an ISO 8601 time or a "
    "duration ago (10m, 2h); the first --limit of them, oldest first.",
)
@click.option(
    "--cursor",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Only events after cursor N (each event shows its cursor); the first --limit "
    "of them, oldest first.",
)
@limit_option("How many events to list (without --since or --cursor: the newest).")
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Stream events as they arrive, from the newest on (NDJSON with -o json); "
    "reconnects on its own from the last cursor seen.",
)
@click.option(
    "--from-start",
    is_flag=True,
    help="With --follow: replay every stored event first.",
)
@click.pass_context
def events(
    ctx: click.Context,
    host_id: str | None,
    kind: str | None,
    group: str | None,
    min_severity: str | None,
    since: float | None,
    cursor: int | None,
    limit: int,
    follow: bool,
    from_start: bool,
) -> None:
    """List events, newest last, or follow them live."""
    if since is not None and cursor is not None:
        raise click.UsageError("give --since TIME or --cursor N, not both")
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
    stub = target.stub()
    if from_start and (since is not None or cursor is not None or not follow):
        raise click.UsageError("--from-start goes with --follow, and not with --since or --cursor")
    if since is not None:
        with rpc_errors(target):
            cursor = cursor_at(stub, since, target.timeout)
    if follow:
        if cursor is None and not from_start:
            cursor = _newest_cursor(stub, target)
        _follow(stub, flt, cursor or 0, target, render.wants_json(ctx))
        return
    if cursor is None:
        request = admin_pb.ListEventsRequest(filter=flt, newest_first=True)
        found = list(reversed(target.pages("ListEvents", request, "events", limit).records))
    else:
        request = admin_pb.ListEventsRequest(filter=flt, since_cursor=cursor)
        found = target.pages("ListEvents", request, "events", limit).records
    if render.wants_json(ctx):
        render.print_json(admin_pb.ListEventsResponse(events=found))
    else:
        click.echo(render.events_table(found))


def cursor_at(stub: Any, at: float, timeout: float) -> int:
    """The cursor after which the events received at or after `at` begin."""

    def first(since_cursor: int, newest_first: bool = False) -> list[pb.Event]:
        request = admin_pb.ListEventsRequest(
            since_cursor=since_cursor, page_size=1, newest_first=newest_first
        )
        return list(stub.ListEvents(request, timeout=timeout).events)

    newest = first(0, newest_first=True)
    if not newest:
        return 0
    # The received time of the first event at cursor c or later; c <= the newest's.
    return bisect.bisect_left(
        range(1, newest[0].cursor + 1),
        at,
        key=lambda c: pbtime.seconds(first(c - 1)[0].received_at),
    )


def _newest_cursor(stub: admin_grpc.AdminServiceStub, target: Target) -> int:
    """Where the log ends now: following starts after it."""
    with rpc_errors(target):
        newest = stub.ListEvents(
            admin_pb.ListEventsRequest(newest_first=True, page_size=1), timeout=target.timeout
        )
    return int(newest.events[0].cursor) if newest.events else 0


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
