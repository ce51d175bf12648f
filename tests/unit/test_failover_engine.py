"""The failover engine's answers beside its golden plans: the questions the coordinator
and the ledger ask it about one failover."""

from __future__ import annotations

import dataclasses

from controller.failover.engine import frozen
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
