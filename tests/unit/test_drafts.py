"""Advisory drafts: when a repeated fingerprint drafts one, how a person decides it, how
it is stored (real SQLite), and how it sways a failover's ranking until then."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.failover.engine import candidates
from controller.failover.model import ClusterState, GroupView, HostView
from controller.failover.suspicion import ranking_note
from controller.store.interface import AdvisoryRow
from controller.store.sqlite.store import SQLiteStore
from controller.upgrades import drafts
from controller.upgrades.drafts import Draft, DraftBook, DraftState, Sighting
from controller.upgrades.fingerprints import Fingerprint
from controller.upgrades.suspects import SuspectWatch
from hangwatch import pbtime
from hangwatch.errors import Refused
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

K = "6.1.0-13-amd64"
FP = Fingerprint("0123456789abcdef", K, "ext4", "probe-stuck-no-io", ("percpu_rwsem_wait",))


def sighting(event: str, host: str, at: float = 100.0, fp: str = FP.id) -> Sighting:
    return Sighting(event, host, "/srv/mail", at, fp)


def test_a_fingerprint_seen_twice_is_drafted_once_per_fingerprint():
    assert drafts.new_draft(FP, [sighting("e1", "h1")], 200.0) is None
    # The same event read twice is one sighting.
    assert drafts.new_draft(FP, [sighting("e1", "h1"), sighting("e1", "h1")], 200.0) is None
    twice_on_one = drafts.new_draft(FP, [sighting("e1", "h1"), sighting("e2", "h1")], 200.0)
    on_two = drafts.new_draft(FP, [sighting("e1", "h1"), sighting("e2", "h2")], 200.0)
    assert twice_on_one == on_two
    assert on_two is not None
    assert (on_two.id, on_two.kernel, on_two.fs_type) == ("SUSPECT-0123456789abcdef", K, "ext4")
    assert on_two.state is DraftState.OPEN and on_two.created_at == 200.0
    other = [sighting("e1", "h1"), sighting("e2", "h2", fp="ffff")]
    assert drafts.new_draft(FP, other, 200.0) is None
    no_kernel = Fingerprint(FP.id, "", "ext4", "r", ())
    assert drafts.new_draft(no_kernel, [sighting("e1", "h1"), sighting("e2", "h2")], 1) is None


def draft() -> Draft:
    found = drafts.new_draft(FP, [sighting("e1", "h1"), sighting("e2", "h2")], 200.0)
    assert found is not None
    return found


def test_summary_names_signature_kernel_and_the_hosts_that_run_it():
    text = drafts.summary(draft(), [sighting("e1", "h1"), sighting("e2", "h2")], ["h1", "h2", "h4"])
    assert text == (
        f"lockups with signature ext4 probe-stuck-no-io: percpu_rwsem_wait on kernel {K}: "
        f"2 lockups on h1, h2; these 3 hosts run {K} on ext4: h1, h2, h4"
    )


def mounts(*types: str) -> list[pb.Mount]:
    return [pb.Mount(path=f"/m{i}", fs_type=t) for i, t in enumerate(types)]


def test_a_draft_suspects_hosts_on_its_kernel_and_filesystem_while_open():
    d = draft()
    on_k = pb.Inventory(kernel_release=K)
    assert drafts.runs(d, on_k, mounts("xfs", "ext4"))
    assert not drafts.runs(d, on_k, mounts("xfs"))
    assert not drafts.runs(d, pb.Inventory(kernel_release="6.1.0-15-amd64"), mounts("ext4"))
    book = DraftBook()
    book.load([d])
    assert book.lookup(on_k, mounts("ext4")) == (f"SUSPECT-0123456789abcdef: kernel {K} on ext4",)
    book.load([drafts.dismiss(d, "carol", 300.0, "a bad disk")])
    assert book.lookup(on_k, mounts("ext4")) == ()


def test_a_person_decides_a_draft_once():
    d = draft()
    accepted = drafts.accept(d, "alice", 300.0, "vendor bug 123")
    assert (accepted.state, accepted.decided_by, accepted.decided_at) == (
        DraftState.ACCEPTED,
        "alice",
        300.0,
    )
    assert accepted.advisory_id == d.id and accepted.reason == "vendor bug 123"
    dismissed = drafts.dismiss(d, "bob", 301.0, "a bad disk")
    assert dismissed.state is DraftState.DISMISSED and not dismissed.advisory_id
    with pytest.raises(Refused, match="was accepted by alice already"):
        drafts.dismiss(accepted, "bob", 302.0, "no")
    with pytest.raises(Refused, match="was dismissed by bob already"):
        drafts.accept(dismissed, "alice", 302.0, "yes")


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "controller.db")
    yield s
    s.close()


def test_store_keeps_sightings_once_and_drafts_with_their_audit(store):
    assert store.add_sighting(sighting("e1", "h1", 100.0))
    assert not store.add_sighting(sighting("e1", "h1", 100.0))
    store.add_sighting(sighting("e0", "h2", 50.0, fp="other"))
    store.add_sighting(sighting("e2", "h2", 150.0))
    assert [s.event_id for s in store.list_sightings(FP.id)] == ["e1", "e2"]
    assert [s.event_id for s in store.list_sightings()] == ["e0", "e1", "e2"]

    d = draft()
    assert store.add_draft(d, ("hangwatch", "system", "advisory draft", "two lockups"))
    assert not store.add_draft(d, ("hangwatch", "system", "advisory draft", "again"))
    assert store.get_draft(d.id) == d
    assert store.list_drafts(open_only=True) == [d]
    assert [(a.action, a.target) for a in store.list_audit()] == [("advisory draft", d.id)]


def test_accepting_stores_the_advisory_with_the_decision_or_nothing(store):
    d = draft()
    store.add_draft(d)
    accepted = drafts.accept(d, "alice", 300.0, "vendor bug")
    row = AdvisoryRow(d.id, f"={K}", "ext4", "vendor bug", "", 300.0, "alice")
    audit = ("alice", "approver", "advisory accept", "kernel =K")
    assert store.decide_draft(accepted, row, audit)
    assert store.get_draft(d.id) == accepted
    assert store.list_advisories() == [row]
    assert store.list_drafts(open_only=True) == []
    # Decided already: nothing changes, whoever asks.
    dismissed = drafts.dismiss(d, "bob", 301.0, "no")
    assert not store.decide_draft(dismissed, None, ("bob", "approver", "dismiss", "no"))
    assert store.get_draft(d.id) == accepted
    assert [a.action for a in store.list_audit()] == ["advisory accept"]


def test_accepting_over_an_existing_advisory_of_that_name_changes_nothing(store):
    d = draft()
    store.add_draft(d)
    taken = AdvisoryRow(d.id, "=1.0", "", "by hand", "", 1.0, "carol")
    store.add_advisory(taken)
    accepted = drafts.accept(d, "alice", 300.0, "vendor bug")
    mine = AdvisoryRow(d.id, f"={K}", "ext4", "vendor bug", "", 300.0, "alice")
    assert not store.decide_draft(accepted, mine, ("alice", "approver", "accept", ""))
    assert store.get_draft(d.id) == d
    assert store.list_advisories() == [taken]
    assert store.list_audit() == []


def lockup_event(event_id: str, host: str, seq: int) -> pb.Event:
    event = pb.Event(
        id=event_id,
        host_id=host,
        host_seq=seq,
        mount="/srv/mail",
        kind="LOCKUP_CONFIRMED",
        severity=pb.SEVERITY_CRITICAL,
        occurred_at=pbtime.timestamp(1_000.0 + seq),
    )
    lockup = event.evidence.lockup
    lockup.kernel_release, lockup.rule = K, "probe-stuck-no-io"
    lockup.tasks.add(
        pid=seq, comm="sh", trace=["percpu_rwsem_wait+0x1/0x2", "mnt_want_write+0x3/0x4"]
    )
    return event


def register(store, host: str, kernel: str, fs: str = "ext4") -> None:
    store.register_host(
        agent_pb.RegisterRequest(
            host_id=host,
            boot_id="b",
            inventory=pb.Inventory(kernel_release=kernel),
            mounts=[pb.Mount(path="/srv/mail", fs_type=fs)],
        ),
        1.0,
    )


def test_the_second_sighting_drafts_and_reading_again_changes_nothing(store):
    for host, kernel in (("h1", K), ("h2", K), ("h3", "6.1.0-15-amd64")):
        register(store, host, kernel)
    watch = SuspectWatch(store, None, None, None)  # type: ignore[arg-type]
    first, second = lockup_event("E1", "h1", 1), lockup_event("E2", "h2", 2)
    assert watch.sight(first, 10.0) is None
    made = watch.sight(second, 11.0)
    assert made is not None and made.kernel == K and made.fs_type == "ext4"  # fs from h2
    assert made.frames == ("percpu_rwsem_wait", "mnt_want_write")
    assert watch.sight(second, 12.0) is None  # read again after a restart
    assert store.list_drafts() == [made]
    (entry,) = store.list_audit()
    assert (entry.actor, entry.role, entry.action, entry.target) == (
        "hangwatch",
        "system",
        "advisory draft",
        made.id,
    )
    assert entry.detail.endswith(f"2 lockups on h1, h2; these 2 hosts run {K} on ext4: h1, h2")


def state(suspected: dict[str, tuple[str, ...]], members=("h1", "h2", "h3")) -> ClusterState:
    hosts = {
        h: HostView(h, "HEALTHY", 0.1, {"/srv/mail": "OK"}, suspected=suspected.get(h, ()))
        for h in members
    }
    group = GroupView("mail", tuple(members), ("/srv/mail",), "manual", members[0], 1)
    return ClusterState(now=1.0, groups=(group,), hosts=hosts)


SUSPICION = (f"SUSPECT-0123456789abcdef: kernel {K} on ext4",)


def test_suspected_standbys_rank_after_the_others_and_the_proposal_says_why():
    s = state({"h2": SUSPICION})
    ranked = candidates(s, s.groups[0], exclude="h1")
    assert [(c.host_id, c.eligible) for c in ranked] == [("h3", True), ("h2", True)]
    assert ranking_note(s, "mail", ranked, "h3") == (
        f"h3 ranked before h2 ({SUSPICION[0]}): an open advisory draft suspects that kernel "
        "(hangwatchctl advisory drafts)"
    )
    # Nobody suspected, or nobody passed over: the ranking and the note are as before.
    plain = state({})
    assert [c.host_id for c in candidates(plain, plain.groups[0], exclude="h1")] == ["h2", "h3"]
    assert ranking_note(plain, "mail", candidates(plain, plain.groups[0], exclude="h1"), "h2") == ""
    both = state({"h2": SUSPICION, "h3": SUSPICION})
    ranked = candidates(both, both.groups[0], exclude="h1")
    assert [c.host_id for c in ranked] == ["h2", "h3"]
    assert ranking_note(both, "mail", ranked, "h2").startswith(
        f"h2 runs a kernel an open advisory draft suspects ({SUSPICION[0]})"
    )
