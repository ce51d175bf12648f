"""Advisories in memory: which hosts run a known-bad kernel (on an affected filesystem).

The coordinator asks about every host on every pass, so the advisories are kept
parsed in memory and reloaded from the store only when one is added or removed.
A host that matches an advisory is *at risk*: the failover engine never picks it
as a target on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from controller.store.interface import AdvisoryRow
from controller.upgrades.kernelversion import BadVersion, Range, parse_range
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)


class AdvisoryBook:
    def __init__(self) -> None:
        # Replaced whole, never mutated: readers on other threads see one version or the other.
        self._entries: tuple[tuple[AdvisoryRow, Range], ...] = ()

    def load(self, rows: Sequence[AdvisoryRow]) -> None:
        entries = []
        for row in rows:
            try:
                entries.append((row, parse_range(row.kernel_range)))
            except BadVersion as exc:  # validated on the way in: only a hand-edited row
                log.error("advisory %s ignored: %s", row.id, exc)
        self._entries = tuple(entries)

    @property
    def rows(self) -> list[AdvisoryRow]:
        return [row for row, _ in self._entries]

    def lookup(self, inventory: pb.Inventory, mounts: list[pb.Mount]) -> tuple[str, ...]:
        """Ids of the advisories a host matches (the Coordinator's `advisories` lookup)."""
        return tuple(
            row.id
            for row, kernels in self._entries
            if _matches(row, kernels, inventory.kernel_release, mounts)
        )


def _matches(row: AdvisoryRow, kernels: Range, kernel: str, mounts: Sequence[pb.Mount]) -> bool:
    """The kernel is in range and, when the advisory names a filesystem, a mount uses it."""
    if row.fs_type and not any(m.fs_type == row.fs_type for m in mounts):
        return False
    return kernels.matches(kernel)
