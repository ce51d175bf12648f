"""Advisories end to end: real agents reporting different kernels, a real controller,
hangwatchctl. An advisory marks exactly the matching hosts at risk, and failover
targets avoid them unless a person forces it (audited)."""

from __future__ import annotations

from clusterkit import FAST_CONTROLLER, Admin
from failoverkit import ctl_json, wait_healthy
from upgradekit import NEW, OLD, controller, group, mount_of, start_host

from lab.localcluster import wait_for

BAD = f">=6.1.0-10-amd64,<{NEW}"


def test_advisory_keeps_failovers_off_at_risk_hosts(cluster, tmp_path):
    members = ["h1", "h2", "h3"]
    cluster.controller_config = controller(FAST_CONTROLLER, [group("mail", members, tmp_path)])
    cluster.start_controller()
    for host, kernel in (("h1", OLD), ("h2", OLD), ("h3", NEW)):
        start_host(cluster, tmp_path, host, kernel)
    admin = Admin(cluster.address)
    try:
        wait_healthy(admin, {h: str(mount_of(tmp_path, h)) for h in members})

        added = ctl_json(
            cluster, "advisory", "add", "ADV-1", "--kernel", BAD, "--reason", "ext4 lockup"
        )
        assert added["hosts_at_risk"] == ["h1", "h2"]
        listed = ctl_json(cluster, "advisory", "list")["advisories"]
        assert [(a["id"], a["hosts_at_risk"]) for a in listed] == [("ADV-1", ["h1", "h2"])]
        hosts = {h["host_id"]: h["advisories"] for h in ctl_json(cluster, "hosts")["hosts"]}
        assert hosts == {"h1": ["ADV-1"], "h2": ["ADV-1"], "h3": []}
        table = cluster.ctl("hosts").stdout
        assert "RISK" in table and "AT RISK: ADV-1" in table
        shown = cluster.ctl("host", "show", "h2").stdout
        assert "at risk: ADV-1" in shown and "Filesystem features" in shown

        # The preferred standby (h2) is at risk: the failover goes to the next member.
        f = ctl_json(cluster, "failover", "propose", "mail", "--reason", "drill", "--dry-run")
        assert f["to_host"] == "h3"
        h2 = next(c for c in f["candidates"] if c["host_id"] == "h2")
        assert not h2["eligible"] and "at risk: ADV-1" in h2["reasons"]

        # With every standby at risk it stops and says why.
        fs_type = admin.hosts()["h3"].mounts[0].fs_type  # whatever holds the tmp dir
        ctl_json(cluster, "advisory", "add", "ADV-2", "--kernel", f"={NEW}", "--fs", fs_type)
        wait_for(lambda: admin.hosts()["h3"].advisories == ["ADV-2"], 10, "h3 at risk")
        # A dry run asks and changes nothing: it is not audited as a refused proposal.
        asked = cluster.ctl("failover", "propose", "mail", "--reason", "what if", "--dry-run")
        assert asked.returncode == 1 and "h2: at risk: ADV-1" in asked.stderr
        refused = cluster.ctl("failover", "propose", "mail", "--reason", "drill")
        assert refused.returncode == 1
        assert "h2: at risk: ADV-1" in refused.stderr and "h3: at risk: ADV-2" in refused.stderr
        proposals = [e for e in ctl_json(cluster, "audit")["entries"] if e["action"] == "propose"]
        assert [e["detail"].startswith("refused:") for e in proposals] == [True]
        assert "ADV-1" in proposals[0]["detail"]

        # --force goes through, and the audit log says what was overridden.
        forced = ctl_json(
            cluster,
            "--as",
            "carol",
            "failover",
            "propose",
            "mail",
            "--to",
            "h2",
            "--force",
            "--reason",
            "h2 is the only one with the data",
        )
        assert forced["to_host"] == "h2" and forced["forced"]
        audit = ctl_json(cluster, "audit")["entries"]
        entry = next(e for e in audit if e["action"] == "propose (forced)")
        assert entry["actor"] == "carol" and "forced past: at risk: ADV-1" in entry["detail"]
        assert any(e["action"] == "advisory add" and e["target"] == "ADV-1" for e in audit)

        out = cluster.ctl("advisory", "remove", "ADV-2", "--reason", "fixed upstream")
        assert out.returncode == 0, out.stderr
        wait_for(lambda: admin.hosts()["h3"].advisories == [], 10, "h3 no longer at risk")
        audit = ctl_json(cluster, "audit")["entries"]
        assert any(
            e["action"] == "advisory remove" and e["detail"] == "fixed upstream" for e in audit
        )
        bad = cluster.ctl("advisory", "add", "ADV-3", "--kernel", "6.1")
        assert bad.returncode == 2 and "each clause starts with one of" in bad.stderr
    finally:
        admin.close()
