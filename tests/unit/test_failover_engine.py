"""The failover engine's answers beside its golden plans: the questions the coordinator
and the ledger ask it about one failover."""

from __future__ import annotations

import dataclasses

from controller.failover.engine import RaiseEpoch, epochs_behind, frozen
from controller.failover.model import ClusterState, GroupView, HostView

NOW = 1_800_000_000.0


def cluster(mounts: dict[str, str], liveness: str = "HEALTHY", setting: str = "fence"):
    group = GroupView("mail", ("a", "b"), ("/srv/mail",), "auto", "a", 3, frozen_primary=setting)
    hosts = {
        "a": HostView("a", liveness, 1.0, mounts=mounts),
        "b": HostView("b", "HEALTHY", 1.0, mounts={"/srv/mail": "OK"}),
    }
    return ClusterState(now=NOW, groups=(group,), hosts=hosts)


def test_a_host_is_frozen_when_a_group_mount_is_locked_or_it_vanished_in_trouble():
    assert frozen(cluster({"/srv/mail": "LOCKED"}), "mail", "a") == (
        "lockup confirmed on a:/srv/mail"
    )
    assert frozen(cluster({"/srv/mail": "SUSPECT"}, "UNREACHABLE"), "mail", "a") == (
        "a unreachable after /srv/mail SUSPECT"
    )
    assert frozen(cluster({"/srv/mail": "SUSPECT"}), "mail", "a") == ""
    assert frozen(cluster({"/srv/mail": "OK"}, "UNREACHABLE"), "mail", "a") == ""


def test_a_group_set_to_wait_never_fences_a_frozen_primary_early():
    state = cluster({"/srv/mail": "LOCKED"}, setting="wait")
    assert frozen(state, "mail", "a") == ""
    fenced = dataclasses.replace(
        state, groups=(dataclasses.replace(state.groups[0], frozen_primary="fence"),)
    )
    assert frozen(fenced, "mail", "a") != ""


def test_a_group_is_raised_to_the_highest_epoch_its_members_have_seen():
    """After a controller's store is lost or restored, its agents know higher epochs:
    the group catches up instead of sending commands they refuse as stale (and then
    fencing them). Fails on the old code, which never looked."""
    state = cluster({"/srv/mail": "OK"})
    hosts = {
        "a": dataclasses.replace(state.hosts["a"], epochs={"mail": 5, "web": 9}),
        "b": dataclasses.replace(state.hosts["b"], epochs={"mail": 7}),
    }
    assert epochs_behind(dataclasses.replace(state, hosts=hosts)) == [RaiseEpoch("mail", 7, "b", 3)]
    assert epochs_behind(state) == []  # the group's epoch (3) is not behind
