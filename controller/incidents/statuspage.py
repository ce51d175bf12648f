"""The customer status page of an incident (pure), in the register of a hosting
provider's incident report: plain words, the services by the names customers know
(from the group's `display_name` and `services`), times in UTC, the cause in words.

It never names a host, a path or an id: customers know none of them, and they are no
business of the page. One update per stage (investigating, identified, monitoring,
resolved), newest first, as a status-page product shows them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from controller.incidents.report import duration
from controller.incidents.window import IDENTIFIED, INVESTIGATING, MONITORING, RESOLVED
from controller.store.interface import IncidentRow


@dataclass(frozen=True)
class Audience:
    """How customers know the group: 'cluster B', ['IMAP', 'POP', 'Webmail']."""

    name: str
    services: tuple[str, ...] = ()


@dataclass(frozen=True)
class Story:
    """The facts the page tells, without internal names."""

    incident: IncidentRow
    stage: str
    # When a person (or policy) approved moving the service, if one did.
    identified_at: float | None
    # Service came back by moving to a standby (else: the storage recovered by itself).
    moved: bool
    # The cause is a known bug (an advisory matched).
    known_issue: bool
    # Start times of earlier incidents of the same known issue.
    earlier: tuple[float, ...] = ()


@dataclass(frozen=True)
class Update:
    stage: str
    at: float
    text: str


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def affected(who: Audience) -> str:
    """'IMAP, POP and Webmail on cluster B', or 'the services on cluster B'."""
    return f"{_and(who.services) if who.services else 'the services'} on {who.name}"


def title(who: Audience) -> str:
    """'Cluster B - IMAP/POP/Webmail', as such reports are headed."""
    name = who.name[:1].upper() + who.name[1:]
    return f"{name} - {'/'.join(who.services)}" if who.services else name


def _day(at: float) -> str:
    return time.strftime("%b %d, %Y at %H:%M UTC", time.gmtime(at))


def _stamp(at: float) -> str:
    return time.strftime("%m-%d-%Y %H:%M:%S UTC", time.gmtime(at))


def _cause(story: Story) -> str:
    if story.known_issue:
        text = (
            "The cause is a known bug in the operating system kernel of our storage "
            "servers that makes their file systems stop responding."
        )
    else:
        text = "The file system of the storage server behind it stopped responding."
    if story.earlier:
        text += (
            " The same issue interrupted service on "
            + _and([_day(at) for at in story.earlier])
            + "."
        )
    return text


def updates(story: Story, who: Audience, next_update_minutes: int) -> list[Update]:
    """The page's updates up to the incident's stage, oldest first."""
    incident, where = story.incident, affected(who)
    next_update = f"Next Update: Within {next_update_minutes} mins"
    out = [
        Update(
            INVESTIGATING,
            incident.started_at,
            f"We are currently experiencing an issue where users of {where} may be unable "
            "to log in or reach their data.\n\nWe are investigating and will provide updates "
            "as soon as they are available.",
        )
    ]
    if story.identified_at is not None:
        out.append(
            Update(
                IDENTIFIED,
                story.identified_at,
                f"The engineering team identified the issue. {_cause(story)} "
                f"The engineering team is moving {where} to a standby server.\n\n{next_update}",
            )
        )
    if incident.restored_at is not None:
        how = (
            f"moving {where} to a standby server"
            if story.moved
            else "waiting for the storage to recover, which it did without intervention"
        )
        back = time.strftime("%H:%M UTC", time.gmtime(incident.restored_at))
        out.append(
            Update(
                MONITORING,
                incident.restored_at,
                f"Service was restored at {back} by {how}. We are monitoring the results."
                f"\n\n{next_update}",
            )
        )
    if incident.ended_at is not None:
        restored = incident.restored_at if incident.restored_at is not None else incident.ended_at
        out.append(
            Update(
                RESOLVED,
                incident.ended_at,
                f"This incident has been resolved: users should no longer experience any issues "
                f"with {where}. {_cause(story)}\n\n"
                f"Incident Start Time: {_stamp(incident.started_at)}\n"
                f"Incident End Time: {_stamp(restored)}\n"
                f"Total Duration: {duration(restored - incident.started_at)}",
            )
        )
    return out


def page(story: Story, who: Audience, next_update_minutes: int) -> str:
    """The whole page: its title, the updates newest first, and what it affected."""
    lines = [f"# {title(who)}", ""]
    for update in reversed(updates(story, who, next_update_minutes)):
        posted = time.strftime("%b %d, %Y - %H:%M UTC", time.gmtime(update.at))
        lines += [f"**{update.stage.capitalize()}** - {update.text}", "", f"Posted {posted}", ""]
    lines.append(f"This incident affected: {affected(who)}.")
    return "\n".join(lines) + "\n"
