"""The vendor bundle: every file the README promises, in a tar that reads back, with
credentials in mount options replaced."""

from __future__ import annotations

import json
import tarfile

import pytest

from hangwatch import pbtime
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb
from hangwatchctl import bundle

INCIDENT = "01JAAAAAAAAAAAAAAAAAAAAAAA"
PER_LOCKUP = bundle.LOCKUP_FILES


def evidence() -> admin_pb.IncidentEvidence:
    ev = admin_pb.IncidentEvidence(
        incident=admin_pb.Incident(
            id=INCIDENT, group="mail", host_id="h1", started_at=pbtime.timestamp(1000.0)
        )
    )
    ev.incident.timeline.add(at=pbtime.timestamp(1001.0), kind="LOCKUP_CONFIRMED", text="locked")
    for n, host in enumerate(("h1", "h2"), 1):
        event = ev.lockups.add(
            id=f"E{n}",
            host_id=host,
            mount="/srv/mail",
            summary="probe stuck",
            kind="LOCKUP_CONFIRMED",
        )
        event.occurred_at.CopyFrom(pbtime.timestamp(1000.0 + n))
        lockup = event.evidence.lockup
        lockup.rule = "probe-stuck-no-io"
        lockup.kernel_release = "6.1.0-13-amd64"
        lockup.kernel_build = "Linux version 6.1.0-13-amd64 (gcc-12)"
        lockup.mount.CopyFrom(
            pb.Mount(
                path="/srv/mail",
                fs_type="ext4",
                options=["rw", "noatime", "password=hunter2", "sec_key=abc"],
                fs_features={"data": "ordered"},
            )
        )
        lockup.tasks.add(
            pid=42, comm="sh", wchan="percpu_rwsem_wait", trace=["percpu_rwsem_wait+0x1/0x2"]
        )
        lockup.kernel_log.extend(["[  1.000000] first", "[  2.000000] INFO: task sh:42 blocked"])
        lockup.hung_task_reports.add(lines=["INFO: task sh:42 blocked for more than 2 seconds."])
        lockup.devices.add(
            device="loop3", diskstats="7 3 loop3 1 2 3", in_flight=0, in_flight_reads=0
        )
        lockup.notes.append("kernel log lines (the oldest): 3 of 203 cut to fit the bounds")
        for stack in ((), ("schedule", "percpu_rwsem_wait"), ()):  # one task, seen thrice
            event.evidence.stuck_tasks.add(pid=77, comm="imap", stack=stack)
        ev.signatures[event.id] = (
            "ext4 probe-stuck-no-io: percpu_rwsem_wait on kernel 6.1.0-13-amd64"
        )
        ev.drafts[event.id] = "SUSPECT-0123456789abcdef"
    return ev


def test_files_are_the_ones_the_readme_describes():
    files = bundle.files(evidence(), 2000.0)
    expected = {"README.txt", "incident.txt", "incident.json"}
    for n, host in enumerate(("h1", "h2"), 1):
        expected |= {f"lockups/{n:02d}-{host}/{name}" for name in PER_LOCKUP}
    assert set(files) == expected
    readme = files["README.txt"]
    for name in ("incident.txt", "incident.json", "lockups/NN-HOST/", *PER_LOCKUP):
        assert name in readme, name
    assert INCIDENT in readme and "non-disclosure" in readme and "No secrets" in readme
    summary = files["lockups/01-h1/summary.txt"]
    assert "SUSPECT-0123456789abcdef" in summary and "probe-stuck-no-io" in summary
    assert "3 of 203 cut" in summary
    assert "percpu_rwsem_wait+0x1/0x2" in files["lockups/01-h1/tasks.txt"]
    named = files["lockups/01-h1/tasks.txt"].split("Tasks named by the signals")[1]
    assert named.count("pid 77 (imap)") == 1 and "    percpu_rwsem_wait" in named
    assert "INFO: task sh:42 blocked" in files["lockups/02-h2/kernel-log.txt"]
    assert "Linux version 6.1.0-13-amd64" in files["lockups/01-h1/kernel.txt"]
    assert "in flight: 0 (reads 0, writes 0)" in files["lockups/01-h1/devices.txt"]
    assert json.loads(files["lockups/02-h2/event.json"])["id"] == "E2"
    assert "locked" in files["incident.txt"]


def test_credentials_in_mount_options_are_replaced_everywhere():
    files = bundle.files(evidence(), 2000.0)
    text = "".join(files.values())
    assert "hunter2" not in text and "sec_key=abc" not in text
    assert "sec_key=<redacted>" in files["lockups/01-h1/filesystem.txt"]
    assert "password=<redacted>" in files["lockups/01-h1/event.json"]
    assert "noatime" in files["lockups/01-h1/filesystem.txt"]


@pytest.mark.parametrize("name", ["bundle.tar.gz", "bundle.tar"])
def test_write_makes_a_tar_that_reads_back(tmp_path, name):
    path = tmp_path / name
    size = bundle.write(path, evidence(), 2000.0)
    assert size == path.stat().st_size > 0
    with tarfile.open(path) as tar:
        names = tar.getnames()
        root = f"hangwatch-evidence-{INCIDENT}"
        assert f"{root}/README.txt" in names
        assert f"{root}/lockups/01-h1/tasks.txt" in names
        member = tar.extractfile(f"{root}/README.txt")
        assert member is not None and INCIDENT in member.read().decode()
