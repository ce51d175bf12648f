"""An incident's evidence as a tar to attach to a vendor bug report.

`files()` lays the evidence out as plain text files a kernel or storage engineer reads
without our tools, plus the raw events as JSON, under one directory with a README
saying what each file is; `write()` packs them. Secrets never enter it: the evidence
holds no credentials or file contents, and mount option values that could be
credentials (password=, secret=, ...) are replaced. Host names and mount paths stay:
the bundle is meant for a vendor bound by an NDA.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from pathlib import Path

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from hangwatch import pbtime
from hangwatch.messages import to_dict
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb
from hangwatchctl import render

_SECRET_OPTION = re.compile(r"pass|secret|token|cred|key|auth", re.IGNORECASE)
# The files of each lockup's directory, as the README describes them.
LOCKUP_FILES = (
    "summary.txt",
    "kernel.txt",
    "filesystem.txt",
    "tasks.txt",
    "hung-task-reports.txt",
    "kernel-log.txt",
    "devices.txt",
    "event.json",
)
# A host id is already safe in a path; anything else in a directory name becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

README = """\
hangwatch evidence for incident {incident}
{rule}
Written by hangwatchctl {when} for a bug report to a kernel or storage vendor. It
holds what hangwatch recorded when it confirmed each filesystem lockup of the
incident. Host names and mount paths are included: the bundle is meant for a
vendor bound by a non-disclosure agreement. No secrets are included: no keys,
certificates, tokens or configuration files, no contents of any file on the
hosts, and the values of mount options that could hold credentials (password=,
secret=, ...) are replaced by <redacted>.

How it was gathered: on each host the hangwatch agent read /proc, /sys and the
kernel log it keeps in memory, when the lockup was confirmed, without touching
the frozen filesystem. Each part is bounded in size (the stacks, the kernel-log
window, the hung-task reports); what was cut, or could not be read, is listed
under "Notes" in the lockup's summary.txt.

Files
  README.txt          this file
  incident.txt        the incident: group, hosts, start and end, its timeline
                      (lockup signals, failover steps, people's decisions)
  incident.json       the same, as the hangwatch API returns it
  lockups/NN-HOST/    one directory per confirmed lockup, oldest first:
    summary.txt       host, mount, when, the condition that confirmed it, the
                      controller's fingerprint of it and the advisory draft that
                      fingerprint belongs to, and the notes
    kernel.txt        kernel release, architecture and build (/proc/version)
    filesystem.txt    the mount: filesystem type, device, mount and superblock
                      options, features the kernel reports (/sys/fs, /proc/fs)
    tasks.txt         tasks in uninterruptible sleep (D state) on the mount, each
                      with its wchan and kernel stack (/proc/PID/stack), then the
                      tasks the kernel's hung-task reports named
    hung-task-reports.txt
                      the kernel's own hung-task reports (header, task state,
                      call trace), as printed
    kernel-log.txt    the kernel log around the lockup, as dmesg prints it
    devices.txt       the mount's block devices: their /proc/diskstats line and
                      the requests in flight (reads, writes)
    event.json        the whole LOCKUP_CONFIRMED event, as the API returns it

The fingerprint is a hash of the kernel release, the filesystem type, the
confirming condition and the innermost frames of the blocked tasks' stacks
(offsets, addresses and scheduler frames removed): lockups with the same
fingerprint are taken to be the same bug.
"""


def _utc(ts: Timestamp) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(pbtime.seconds(ts)))


def _json(message: Message) -> str:
    return json.dumps(to_dict(message), indent=2, sort_keys=True) + "\n"


def redact(option: str) -> str:
    """A mount option, its value replaced when the key could name a credential."""
    key, eq, _ = option.partition("=")
    return f"{key}=<redacted>" if eq and _SECRET_OPTION.search(key) else option


def _fields(pairs: list[tuple[str, str]]) -> list[str]:
    """ "Name:  value" lines, the values aligned."""
    width = max(len(name) for name, _ in pairs) + 2
    return [f"{name + ':':<{width}}{value}" for name, value in pairs]


def _when(message: Message, field: str) -> str:
    return _utc(getattr(message, field)) if message.HasField(field) else "-"


def _summary(event: pb.Event, signature: str, draft: str) -> str:
    lockup = event.evidence.lockup
    lines = _fields(
        [
            ("Host", event.host_id),
            ("Mount", event.mount),
            ("Event", event.id),
            ("Confirmed", _utc(event.occurred_at)),
            ("What", event.summary),
            ("Condition", lockup.rule or "unknown"),
            ("Trouble since", _when(lockup, "trouble_since")),
            ("Gathered", _when(lockup, "gathered_at")),
            ("Fingerprint", signature or "-"),
            ("Draft", draft or "-"),
        ]
    )
    lines += ["", "Notes:", *(f"  {note}" for note in lockup.notes)]
    if not lockup.notes:
        lines.append("  (nothing cut, everything read)")
    return "\n".join(lines) + "\n"


def _kernel(lockup: pb.LockupEvidence) -> str:
    pairs = [
        ("Release", lockup.kernel_release or "-"),
        ("Architecture", lockup.architecture or "-"),
        ("Build", lockup.kernel_build or "-"),
    ]
    return "\n".join(_fields(pairs)) + "\n"


def _filesystem(mount: pb.Mount) -> str:
    lines = _fields(
        [
            ("Path", mount.path),
            ("Type", mount.fs_type or "-"),
            ("Device", f"{mount.device or '-'} ({mount.dev_id or '?'})"),
            ("Read-only", "yes" if mount.read_only else "no"),
            ("Backing", ", ".join(mount.backing_devices) or "-"),
            ("Options", ",".join(redact(o) for o in mount.options) or "-"),
        ]
    )
    features = sorted(mount.fs_features.items())
    lines += ["Features:", *(f"  {redact(f'{k}={v}')}" for k, v in features)]
    return "\n".join(lines) + "\n"


def _task(task: pb.StuckTask, frames: list[str]) -> list[str]:
    blocked = pbtime.seconds(task.blocked_for)
    head = f"pid {task.pid} ({task.comm})"
    head += f", blocked at least {blocked:.1f}s" if blocked else ""
    head += f", wchan {task.wchan}" if task.wchan else ""
    return [head, *(f"    {frame}" for frame in frames), ""]


def _tasks(evidence: pb.Evidence) -> str:
    lines = ["Tasks in D state on the mount when the lockup was confirmed:", ""]
    for task in evidence.lockup.tasks:
        lines += _task(task, list(task.trace) or ["(stack not readable)"])
    if not evidence.lockup.tasks:
        lines += ["  (none found)", ""]
    lines += ["Tasks named by the signals behind the lockup (hung-task reports, /proc scans):", ""]
    # Signals name a task again and again: its latest sighting with a stack tells most.
    named: dict[int, pb.StuckTask] = {}
    for task in evidence.stuck_tasks:
        if task.stack or task.pid not in named:
            named[task.pid] = task
    for task in named.values():
        lines += _task(task, list(task.stack))
    return "\n".join(lines).rstrip() + "\n"


def _reports(lockup: pb.LockupEvidence) -> str:
    blocks = [
        "\n".join([f"# {_utc(r.at)}", *r.lines]) if r.HasField("at") else "\n".join(r.lines)
        for r in lockup.hung_task_reports
    ]
    return "\n\n".join(blocks) + "\n" if blocks else "(no hung-task report)\n"


def _devices(lockup: pb.LockupEvidence) -> str:
    lines = [
        "Each device's /proc/diskstats line (major minor name, then reads, merges, sectors,",
        "ms, writes, ..., in flight, io ticks; see the kernel's",
        "Documentation/admin-guide/iostats.rst), then the requests in flight.",
        "",
    ]
    for d in lockup.devices:
        split = (
            f"reads {d.in_flight_reads}, writes {d.in_flight_writes}"
            if d.in_flight_reads >= 0
            else "by direction: unknown"
        )
        lines += [
            d.device,
            f"  {d.diskstats or '(not in /proc/diskstats)'}",
            f"  in flight: {d.in_flight} ({split})",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _slug(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_") or "host"


def files(evidence: admin_pb.IncidentEvidence, written_at: float) -> dict[str, str]:
    """Path (inside the bundle's directory) -> text, for every file of the bundle."""
    incident = evidence.incident
    rule = "=" * len(f"hangwatch evidence for incident {incident.id}")
    out = {
        "README.txt": README.format(
            incident=incident.id,
            rule=rule,
            when=_utc(pbtime.timestamp(written_at)),
        ),
        "incident.txt": render.incident_detail(incident) + "\n",
        "incident.json": _json(incident),
    }
    for n, event in enumerate(evidence.lockups, 1):
        lockup = event.evidence.lockup
        base = f"lockups/{n:02d}-{_slug(event.host_id)}/"
        out[base + "summary.txt"] = _summary(
            event, evidence.signatures.get(event.id, ""), evidence.drafts.get(event.id, "")
        )
        out[base + "kernel.txt"] = _kernel(lockup)
        out[base + "filesystem.txt"] = _filesystem(lockup.mount)
        out[base + "tasks.txt"] = _tasks(event.evidence)
        out[base + "hung-task-reports.txt"] = _reports(lockup)
        out[base + "kernel-log.txt"] = "\n".join(lockup.kernel_log) + "\n"
        out[base + "devices.txt"] = _devices(lockup)
        redacted = pb.Event()
        redacted.CopyFrom(event)
        redacted.evidence.lockup.mount.options[:] = [redact(o) for o in lockup.mount.options]
        out[base + "event.json"] = _json(redacted)
    return out


def write(path: Path, evidence: admin_pb.IncidentEvidence, written_at: float) -> int:
    """Writes the bundle (gzip-compressed unless PATH ends in .tar); returns its size."""
    root = f"hangwatch-evidence-{evidence.incident.id}"
    plain = path.name.endswith(".tar")
    with tarfile.open(path, "w") if plain else tarfile.open(path, "w:gz") as tar:
        for name, text in files(evidence, written_at).items():
            data = text.encode()
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            info.mtime = int(written_at)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path.stat().st_size
