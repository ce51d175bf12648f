"""What open advisory drafts did to a failover's ranking, in words for the proposal (pure).

A member on a kernel a draft suspects stays eligible but ranks after members on
another kernel or filesystem (`engine.candidates`); the proposal says so, so that the
person approving it knows why the preferred standby was passed over.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.failover.model import Candidate, ClusterState


def ranking_note(state: ClusterState, group: str, ranked: Sequence[Candidate], target: str) -> str:
    """Empty unless suspicion passed a preferred member over for `target`, or `target`
    itself runs a suspected kernel (every eligible member does)."""
    members = next((g.members for g in state.groups if g.name == group), ())
    if target not in members:
        return ""

    def suspected(host: str) -> tuple[str, ...]:
        view = state.hosts.get(host)
        return view.suspected if view is not None else ()

    passed = [
        c.host_id
        for c in ranked
        if c.eligible and suspected(c.host_id) and members.index(c.host_id) < members.index(target)
    ]
    if passed:
        over = "; ".join(f"{h} ({', '.join(suspected(h))})" for h in passed)
        return (
            f"{target} ranked before {over}: an open advisory draft suspects that kernel "
            "(hangwatchctl advisory drafts)"
        )
    if suspected(target):
        return (
            f"{target} runs a kernel an open advisory draft suspects "
            f"({', '.join(suspected(target))}), as every eligible member does"
        )
    return ""
