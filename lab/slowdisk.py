"""Slow and stuck block devices: a loop device whose image lives on a FUSE filesystem
that the caller can slow down or stop answering.

A frozen filesystem (fsfreeze) blocks its writers before they reach the device, which
then sits idle. A failing disk or a stalled SAN path looks different: requests reach
the device and take hundreds of milliseconds each, or stay in flight and never
complete. `slow_loop_fs` builds such a device out of real parts: the FUSE server of
`lab.slowdisk_fs` (its own process, steered over a Unix socket) serves the image, a
loop device in direct-I/O mode reads and writes it, and a scratch filesystem sits on
the loop device.

Direct I/O matters. With it every request of the loop device becomes FUSE requests
to the server, so a held request shows in /proc/diskstats as in flight on the loop
device (as many as the filesystem submitted, up to the queue depth) and nothing
completes. In the default buffered mode the loop device goes through the page cache
of the image: reads of cached blocks complete while the server holds everything, and
the loop device passes one request at a time to the server (diskstats then shows
the queue in flight, the server one request held): a device that still makes some
progress, not a stuck one.

Cleanup releases held requests first (a filesystem cannot unmount while its I/O is
held), unmounts the filesystem, detaches the loop device, unmounts FUSE and stops
the server, killing it by pid if it does not end by itself: a server killed with
requests held fails them with errors, so nothing stays blocked for good.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

from lab import scratchfs

SERVER_MODULE = "lab.slowdisk_fs"
# Seconds to wait for the server to mount, answer, or end.
PATIENCE = 10.0


class SlowDiskError(RuntimeError):
    """The slow disk could not start, refused a command, or was not completely undone."""


@dataclass(frozen=True)
class Status:
    """The server's gate: requests `in_flight` from arrival at the server to their answer,
    `held` of those waiting at the closed gate, `completed` since the server started."""

    delay: float
    holding: bool
    in_flight: int
    held: int
    completed: int

    @property
    def all_held(self) -> bool:
        """Requests wait at the gate and none is past it: nothing can complete."""
        return self.held > 0 and self.held == self.in_flight


@dataclass(frozen=True)
class SlowDisk:
    """A running FUSE server: files under `mountpoint` are as slow as it is told."""

    mountpoint: Path
    control: Path
    log: Path
    pid: int

    def command(self, line: str) -> Status:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(PATIENCE)
            s.connect(str(self.control))
            s.sendall(line.encode() + b"\n")
            reply = json.loads(s.makefile("rb").readline())
        if "error" in reply:
            raise SlowDiskError(f"slow disk {self.mountpoint}: {reply['error']}")
        return Status(**reply)

    def set_delay(self, seconds: float) -> Status:
        """Every read, write and fsync of the image takes `seconds` longer."""
        return self.command(f"delay {seconds}")

    def hold(self) -> Status:
        """Reads, writes and fsyncs wait at the server, in flight, until `release`."""
        return self.command("hold")

    def release(self) -> Status:
        return self.command("release")

    def status(self) -> Status:
        return self.command("status")

    def stop(self) -> list[str]:
        """Unmounts FUSE and ends the server (by pid, if it lingers); returns what stayed."""
        return _stop_server(self.pid, str(self.mountpoint))


@contextlib.contextmanager
def slow_disk(workdir: Path, name: str) -> Iterator[SlowDisk]:
    """A slow disk server for `workdir/NAME.fuse`, its files kept in `workdir/NAME.data`."""
    backing, mountpoint = workdir / f"{name}.data", workdir / f"{name}.fuse"
    backing.mkdir()
    mountpoint.mkdir()
    log = workdir / f"{name}.slowdisk.log"
    control = workdir / f"{name}.sock"
    lab_root = str(Path(__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in (lab_root, os.environ.get("PYTHONPATH")) if p)
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", SERVER_MODULE, str(backing), str(mountpoint), str(control)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": pythonpath},
        )
    disk = SlowDisk(mountpoint=mountpoint, control=control, log=log, pid=process.pid)
    try:
        _wait_serving(disk, process)
        yield disk
    finally:
        problems = disk.stop()
        process.wait()
        if problems:
            raise SlowDiskError(f"cleanup of {mountpoint} incomplete: {'; '.join(problems)}")


def _wait_serving(disk: SlowDisk, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + PATIENCE
    while True:
        if process.poll() is not None:
            raise SlowDiskError(
                f"slow disk server exited {process.returncode}: {disk.log.read_text()[-2000:]}"
            )
        if str(disk.mountpoint) in scratchfs.mount_points():
            with contextlib.suppress(OSError):
                disk.status()
                return
        if time.monotonic() > deadline:
            raise SlowDiskError(f"slow disk server did not serve {disk.mountpoint} in time")
        time.sleep(0.05)


@dataclass(frozen=True)
class SlowFs:
    """A scratch filesystem on a loop device whose image the slow disk serves."""

    fs: scratchfs.ScratchFs
    disk: SlowDisk


@contextlib.contextmanager
def slow_loop_fs(
    workdir: Path,
    name: str,
    fstype: str = "ext4",
    size_mb: int | None = None,
    options: str = "",
    direct_io: bool = True,
) -> Iterator[SlowFs]:
    """A fresh `fstype` filesystem at `workdir/name` on a loop device over a slow disk
    (at full speed until told otherwise); see the module's text for `direct_io`."""
    with (
        slow_disk(workdir, name) as disk,
        scratchfs.loop_fs(
            workdir, name, fstype, size_mb, options, image_dir=disk.mountpoint, direct_io=direct_io
        ) as fs,
    ):
        try:
            yield SlowFs(fs, disk)
        finally:
            _let_go(disk)


def _let_go(disk: SlowDisk) -> None:
    """Full speed and nothing held, so the filesystem can unmount; a server that cannot
    be told is killed, which fails its requests instead of leaving them blocked."""
    try:
        disk.set_delay(0)
        disk.release()
    except (OSError, ValueError, SlowDiskError):
        _kill(disk.pid)


def sweep(prefix: str) -> list[str]:
    """Takes down every slow disk whose mountpoint starts with `prefix`, and what sits on
    it, in the order cleanup would have; returns what it found and could not undo."""
    servers = [disk for disk in _servers() if str(disk.mountpoint).startswith(prefix)]
    found = []
    for disk in servers:
        found.append(f"slow disk server {disk.pid} ({disk.mountpoint})")
        _let_go(disk)
    for device, backing in sorted(scratchfs.loop_backing_files().items()):
        if any(backing.startswith(f"{disk.mountpoint}/") for disk in servers):
            number = Path(f"/sys/block/{Path(device).name}/dev").read_text().strip()
            for target, source in sorted(scratchfs.mounts().items()):
                if source == number:
                    found += [f"mount {target}", *scratchfs.unmount(target)]
            found += [f"loop device {device} ({backing})", *scratchfs.detach(device)]
    for disk in servers:
        found += disk.stop()
    return found


def _servers() -> Iterator[SlowDisk]:
    """Every slow disk server running on the machine, found by its command line."""
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if len(argv) == 6 and argv[1:3] == ["-m", SERVER_MODULE]:
            yield SlowDisk(Path(argv[4]), Path(argv[5]), Path(os.devnull), proc.pid)


def _kill(pid: int) -> None:
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).kill()


def _stop_server(pid: int, mountpoint: str) -> list[str]:
    """Unmounting FUSE ends libfuse's loop and the server exits by itself; a server that
    lingers (its mount still busy, or wedged) is killed by pid."""
    problems = []
    deadline = time.monotonic() + PATIENCE
    # A detached loop device can hold its image open a moment longer (the mount is busy).
    while mountpoint in scratchfs.mount_points() and time.monotonic() < deadline:
        if scratchfs.run("umount", mountpoint, check=False).returncode != 0:
            time.sleep(0.1)
    try:
        process = psutil.Process(pid)
        try:
            process.wait(PATIENCE)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(PATIENCE)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        problems.append(f"slow disk server {pid} survived SIGKILL")
    if mountpoint in scratchfs.mount_points():
        lazy = scratchfs.run("umount", "-l", mountpoint, check=False)
        problems.append(f"{mountpoint} stayed busy; lazy umount exited {lazy.returncode}")
    return problems
