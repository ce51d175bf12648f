"""Advisory drafts: the suspect kernel, named by the controller before a person decides (pure).

Every confirmed lockup is a *sighting* of its fingerprint. When a fingerprint is
sighted twice (on two hosts, or twice on one) the controller drafts an advisory:
"lockups with signature S on kernel K: these N hosts run K". Until a person accepts
it (it becomes a normal advisory: hosts at risk, upgrade plans) or dismisses it, the
failover engine ranks standbys on another kernel or filesystem first. A fingerprint
is drafted once: a dismissed draft stays dismissed, later sightings are listed on it.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from dataclasses import dataclass

from controller.upgrades.fingerprints import Fingerprint
from hangwatch.errors import Refused
from hangwatch.v1 import types_pb2 as pb

# Sightings of one fingerprint that make a draft.
REPEATS = 2


class DraftState(enum.Enum):
    OPEN = "OPEN"
    ACCEPTED = "ACCEPTED"
    DISMISSED = "DISMISSED"


@dataclass(frozen=True)
class Sighting:
    """One confirmed lockup and its fingerprint."""

    event_id: str
    host_id: str
    mount: str
    at: float
    fingerprint: str


@dataclass(frozen=True)
class Draft:
    id: str
    fingerprint: str
    kernel: str
    fs_type: str
    rule: str
    frames: tuple[str, ...]
    signature: str
    created_at: float
    state: DraftState = DraftState.OPEN
    decided_by: str = ""
    decided_at: float | None = None
    reason: str = ""
    advisory_id: str = ""

    @property
    def suspicion(self) -> str:
        """What the draft suspects, in the words a failover proposal uses."""
        on = f" on {self.fs_type}" if self.fs_type else ""
        return f"{self.id}: kernel {self.kernel}{on}"


def draft_id(fingerprint_id: str) -> str:
    """The draft of a fingerprint, and the advisory it becomes: one per fingerprint."""
    return f"SUSPECT-{fingerprint_id}"


def new_draft(fp: Fingerprint, sightings: Sequence[Sighting], now: float) -> Draft | None:
    """The draft `fp`'s sightings call for, if they repeat (and say which kernel)."""
    if len({s.event_id for s in sightings if s.fingerprint == fp.id}) < REPEATS or not fp.kernel:
        return None
    return Draft(
        id=draft_id(fp.id),
        fingerprint=fp.id,
        kernel=fp.kernel,
        fs_type=fp.fs_type,
        rule=fp.rule,
        frames=fp.frames,
        signature=fp.signature,
        created_at=now,
    )


def summary(draft: Draft, sightings: Sequence[Sighting], hosts_on_kernel: Sequence[str]) -> str:
    """The sentence people read: the lockups seen, and the hosts that run the kernel."""
    struck = sorted({s.host_id for s in sightings})
    n = len(hosts_on_kernel)
    return (
        f"lockups with signature {draft.signature} on kernel {draft.kernel}: "
        f"{len(sightings)} lockups on {', '.join(struck)}; "
        f"{'this host runs' if n == 1 else f'these {n} hosts run'} {draft.kernel}"
        + (f" on {draft.fs_type}" if draft.fs_type else "")
        + (f": {', '.join(hosts_on_kernel)}" if hosts_on_kernel else "")
    )


def runs(draft: Draft, inventory: pb.Inventory, mounts: Sequence[pb.Mount]) -> bool:
    """The host runs the draft's kernel with a mount of its filesystem (any, if it names
    none): one the draft would put at risk, found as an advisory's at-risk hosts are."""
    return inventory.kernel_release == draft.kernel and (
        not draft.fs_type or any(m.fs_type == draft.fs_type for m in mounts)
    )


class DraftBook:
    """The open drafts in memory, for the failover engine's ranking on every pass."""

    def __init__(self) -> None:
        # Replaced whole, never mutated: readers on other threads see one or the other.
        self._open: tuple[Draft, ...] = ()

    def load(self, drafts: Sequence[Draft]) -> None:
        self._open = tuple(d for d in drafts if d.state is DraftState.OPEN)

    def lookup(self, inventory: pb.Inventory, mounts: list[pb.Mount]) -> tuple[str, ...]:
        """What the open drafts suspect of a host (the snapshot's `suspicions` lookup)."""
        return tuple(d.suspicion for d in self._open if runs(d, inventory, mounts))


def _decide(draft: Draft, state: DraftState, who: str, at: float, reason: str) -> Draft:
    if draft.state is not DraftState.OPEN:
        raise Refused(f"{draft.id} was {draft.state.value.lower()} by {draft.decided_by} already")
    return dataclasses.replace(draft, state=state, decided_by=who, decided_at=at, reason=reason)


def accept(draft: Draft, who: str, at: float, reason: str) -> Draft:
    """The draft accepted; its advisory carries the draft's id."""
    return dataclasses.replace(
        _decide(draft, DraftState.ACCEPTED, who, at, reason), advisory_id=draft.id
    )


def dismiss(draft: Draft, who: str, at: float, reason: str) -> Draft:
    return _decide(draft, DraftState.DISMISSED, who, at, reason)
