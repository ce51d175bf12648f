"""Atlassian Statuspage's incidents API (pure): the customer page, kept up to date.

The sink's URL is the page's API base, `https://api.statuspage.io/v1/pages/PAGE_ID`.
The first update of an incident creates a Statuspage incident
(`POST .../incidents`), each later one updates it (`PATCH .../incidents/ID`, the id
the create answered with, kept by the sink). Mapping:

- status: the incident's stage, which has Statuspage's own four values
  (investigating, identified, monitoring, resolved);
- name: the page's title ('Cluster B - IMAP/POP/Webmail'); body: the stage's update
  text (`controller.incidents.statuspage`), with no host, path or id in it;
- components: the group's `status_components`, major_outage until service is
  restored, then operational; impact_override: major.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from controller.incidents.window import IDENTIFIED, INVESTIGATING, MONITORING, RESOLVED
from controller.notify.payloads import Payload, json_body
from hangwatch.v1 import types_pb2 as pb

# The events that move an incident's page to a stage (each update is posted in the
# order of the event log, whatever stage the incident has reached since).
STAGE_OF = {
    "INCIDENT_OPENED": INVESTIGATING,
    "FAILOVER_APPROVED": IDENTIFIED,
    "SERVICE_RESTORED": MONITORING,
    "INCIDENT_CLOSED": RESOLVED,
}


def stage_of(event: pb.Event) -> str | None:
    """The stage the event moves its incident's page to, if it is one that does."""
    return STAGE_OF.get(event.kind) if event.notice.incident_id else None


def payload(
    event: pb.Event,
    api_key: str,
    remote_id: str | None,
    name: str,
    stage: str,
    text: str,
    components: Sequence[str],
) -> Payload:
    status = "operational" if stage in (MONITORING, RESOLVED) else "major_outage"
    incident = {
        "name": name,
        "status": stage,
        "body": text,
        "impact_override": "major",
        "component_ids": list(components),
        "components": {c: status for c in components},
    }
    request = json_body({"incident": incident}, event.id)
    request.headers["Authorization"] = f"OAuth {api_key}"
    if remote_id is None:
        return dataclasses.replace(request, path="/incidents")
    return dataclasses.replace(request, method="PATCH", path=f"/incidents/{remote_id}")


def created_id(response: bytes) -> str | None:
    """The id of the incident a create made, from its answer."""
    try:
        found = json.loads(response).get("id")
    except (ValueError, AttributeError):
        return None
    return found if isinstance(found, str) and found else None
