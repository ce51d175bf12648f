"""What the controller hears: the registration and a heartbeat, built from the agent's parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.health import HealthEngine, HealthSettings
from agent.heartbeat import Heartbeats
from agent.host.inventory_watch import InventoryWatch
from agent.link.outbox import Outbox
from agent.procfs.mountinfo import load_device_map
from agent.selfcheck import SelfCheck
from agent.sources.probe_source import ProbeSource
from agent.workers.probe_report import Outcome, ProbeResult
from agent.workers.spool import Spool
from hangwatch import __version__, pbtime
from hangwatch.v1 import types_pb2 as pb

FIXTURES = Path(__file__).parents[1] / "fixtures"
MAIL, WEB = "/srv/mail", "/srv/web"


@pytest.fixture
def parts(tmp_path: Path) -> dict[str, object]:
    devices = load_device_map(
        [MAIL, WEB],
        proc_root=str(FIXTURES / "proc" / "storage1"),
        sys_root=str(FIXTURES / "sys" / "storage1"),
    )
    probes = ProbeSource([], 2.0, soft_deadline=1.0, hard_deadline=2.0, worker_name="probe-m1")
    spool = Spool(tmp_path / "spool.db", 100)
    return {
        "inventory": InventoryWatch([MAIL, WEB], devices, kernel_release="9.9.9-test"),
        "health": HealthEngine({MAIL: True, WEB: True}, HealthSettings(), now=1000.0),
        "probes": probes,
        "sources": [probes],
        "selfcheck": SelfCheck([probes], spool, spool_stuck_after=5.0, state_dir=str(tmp_path)),
        "spool": spool,
        "outbox": Outbox(10, lambda _: True),
        "epochs": lambda: {"mail": 7},
    }


def heartbeats(parts: dict[str, object]) -> Heartbeats:
    return Heartbeats("m1", "boot-1", started_at=900.0, **parts)  # type: ignore[arg-type]


def test_registration_names_host_boot_inventory_and_mounts(parts: dict[str, object]) -> None:
    request = heartbeats(parts).registration()
    assert (request.host_id, request.boot_id) == ("m1", "boot-1")
    assert request.agent_version == __version__
    assert request.inventory.kernel_release == "9.9.9-test"
    assert [m.path for m in request.mounts] == [MAIL, WEB]
    assert request.mounts[0].fs_type
    assert pbtime.seconds(request.agent_started_at) == 900.0


def test_registration_follows_a_changed_inventory(parts: dict[str, object]) -> None:
    beats = heartbeats(parts)
    watch = parts["inventory"]
    assert isinstance(watch, InventoryWatch)
    watch.inventory = pb.Inventory(kernel_release="10.0.0")
    assert beats.registration().inventory.kernel_release == "10.0.0"


def test_heartbeat_carries_health_probes_sources_and_queue(parts: dict[str, object]) -> None:
    probes, outbox, selfcheck = parts["probes"], parts["outbox"], parts["selfcheck"]
    assert isinstance(probes, ProbeSource) and isinstance(outbox, Outbox)
    assert isinstance(selfcheck, SelfCheck)
    probes.last[MAIL] = ProbeResult(MAIL, Outcome.OK, 1000.0, 0.004)
    probes.last[WEB] = ProbeResult(WEB, Outcome.STUCK, 1000.0, 7.0, stuck_pid=42)
    outbox.put(pb.Event(id="e1", kind="PROBE_OK"))
    selfcheck.stalled.add("probe")

    request = heartbeats(parts).heartbeat()
    assert (request.host_id, request.boot_id, request.spool_depth) == ("m1", "boot-1", 1)
    mail, web = request.mounts
    assert (mail.mount, mail.state) == (MAIL, pb.HEALTH_STATE_OK)
    assert pbtime.seconds(mail.since) == 1000.0
    assert pbtime.seconds(mail.last_probe_latency) == pytest.approx(0.004)
    assert not mail.HasField("probe_in_flight_for")
    # A stuck probe: how long it has been in flight, not a latency.
    assert web.HasField("probe_in_flight_for") and not web.HasField("last_probe_latency")
    [source] = request.sources
    assert (source.source, source.running) == ("probe", False)


def test_heartbeats_carry_the_epochs_this_host_has_seen(parts: dict[str, object]) -> None:
    assert dict(heartbeats(parts).heartbeat().epochs) == {"mail": 7}
