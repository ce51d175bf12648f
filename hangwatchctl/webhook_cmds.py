"""hangwatchctl webhooks: list the dead letters of webhook sinks and send them again."""

from __future__ import annotations

import click

from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatchctl import render
from hangwatchctl.client import Target

SINK = click.option("--sink", default="", metavar="SINK", help="Only this sink (default: all).")


def _target() -> Target:
    return click.get_current_context().find_root().obj  # type: ignore[no-any-return]


@click.group()
def webhooks() -> None:
    """Webhook sinks: events they could not deliver."""


@webhooks.command("dead-letters")
@SINK
@click.pass_context
def dead_letters(ctx: click.Context, sink: str) -> None:
    """List events a sink refused or that failed every attempt."""
    request = admin_pb.ListDeadLettersRequest(sink=sink)
    found = _target().pages("ListDeadLetters", request, "dead_letters").records
    if render.wants_json(ctx):
        render.print_json(admin_pb.ListDeadLettersResponse(dead_letters=found))
        return
    rows = [
        [
            str(d.id),
            d.sink,
            d.event_id,
            str(d.attempts),
            render.when(d.failed_at),
            d.last_error[:100],
        ]
        for d in found
    ]
    click.echo(render.table(["ID", "SINK", "EVENT", "ATTEMPTS", "FAILED", "LAST ERROR"], rows))


@webhooks.command("retry")
@SINK
@click.argument("ids", nargs=-1, type=click.IntRange(min=1), metavar="[ID]...")
@click.pass_context
def retry(ctx: click.Context, sink: str, ids: tuple[int, ...]) -> None:
    """Send dead letters again: the IDs given, or all (of --sink). Audited."""
    response = _target().call(
        "RetryDeadLetters", admin_pb.RetryDeadLettersRequest(sink=sink, ids=list(ids))
    )
    if render.wants_json(ctx):
        render.print_json(response)
    else:
        click.echo(f"requeued {response.requeued} dead letter(s)")
