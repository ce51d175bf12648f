"""Scratch filesystems on loop devices: real mounts that can really freeze.

Used by `python -m lab demo` and by the tests. Cleanup always thaws, unmounts and
detaches, in that order, whatever state the filesystem was left in, and says what it
could not undo rather than leaking it silently. Mounts and loop devices are found
from /proc and /sys, never by a tool that could hang on a frozen filesystem.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.procfs.mountinfo import read_mountinfo

# XFS refuses filesystems under 300 MB; images are sparse, so size costs nothing.
MIN_SIZE_MB = {"ext4": 16, "xfs": 300}
MKFS = {
    # Initialise inode tables now: ext4lazyinit writing in the background would
    # otherwise block on a freeze and show up in hung-task reports of its own.
    "ext4": ("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0,nodiscard"),
    "xfs": ("mkfs.xfs", "-q", "-f", "-K"),
}
_PACKAGE = {"mkfs.ext4": "e2fsprogs", "mkfs.xfs": "xfsprogs"}
# A writer just woken by a thaw may hold the mount busy for a moment.
_UMOUNT_PATIENCE = 5.0


class ScratchFsError(RuntimeError):
    """A scratch filesystem could not be set up, or not completely undone."""


def can_loop_mount() -> bool:
    """Root, with losetup and mkfs.ext4 available: loop-mounted scratch filesystems work."""
    return (
        os.geteuid() == 0
        and shutil.which("losetup") is not None
        and shutil.which("mkfs.ext4") is not None
        and Path("/dev/loop-control").exists()
    )


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs a tool; failures carry its stderr, which CalledProcessError would hide."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if check and done.returncode != 0:
        raise ScratchFsError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done


def mounts() -> dict[str, str]:
    """Mount targets of this mount namespace and their devices ("7:3": major:minor)."""
    return {m.mount_point: m.devno for m in read_mountinfo()}


def mount_points() -> set[str]:
    """Mount targets of this mount namespace."""
    return set(mounts())


def loop_backing_files() -> dict[str, str]:
    """Attached loop devices ("/dev/loop3") and their backing files."""
    attached = {}
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        device = f"/dev/{backing.parent.parent.name}"
        attached[device] = backing.read_text().strip().removesuffix(" (deleted)")
    return attached


def freeze(mount: str | Path) -> None:
    """`fsfreeze -f`: writers then block in D state until the thaw."""
    run("fsfreeze", "-f", str(mount))


def thaw(mount: str | Path) -> None:
    """`fsfreeze -u`, where "not frozen" (EINVAL) counts as success."""
    done = run("fsfreeze", "-u", str(mount), check=False)
    if done.returncode != 0 and "Invalid argument" not in done.stderr:
        raise ScratchFsError(f"fsfreeze -u {mount}: {done.stderr.strip()}")


@contextlib.contextmanager
def frozen(mount: str | Path) -> Iterator[None]:
    """The mount frozen for the duration of the block, thawed however it ends."""
    freeze(mount)
    try:
        yield
    finally:
        thaw(mount)


@dataclass(frozen=True)
class ScratchFs:
    mount: Path
    image: Path
    loop_device: str
    fstype: str

    @property
    def kernel_name(self) -> str:
        """The block device's kernel name, e.g. loop3, as in /sys/block and kmsg."""
        return Path(self.loop_device).name

    def freeze(self) -> None:
        freeze(self.mount)

    def thaw(self) -> None:
        thaw(self.mount)

    def destroy(self) -> None:
        """Thaws, unmounts, detaches and deletes; raises naming whatever stayed behind."""
        target = os.path.realpath(self.mount)
        problems = unmount(target) if target in mount_points() else []
        if loop_backing_files().get(self.loop_device) == os.path.realpath(self.image):
            problems += detach(self.loop_device)
        self.image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.mount.rmdir()
        if problems:
            raise ScratchFsError(f"cleanup of {self.mount} incomplete: {'; '.join(problems)}")


@contextlib.contextmanager
def loop_fs(
    workdir: Path,
    name: str,
    fstype: str = "ext4",
    size_mb: int | None = None,
    options: str = "",
    image_dir: Path | None = None,
    direct_io: bool = False,
) -> Iterator[ScratchFs]:
    """A fresh `fstype` filesystem on a loop device, mounted with `options` at `workdir/name`.

    Its image lives in `image_dir` (default `workdir`). `direct_io`: the loop device
    reads and writes the image with direct I/O, past the page cache, so that every
    request reaches whatever holds the image (and stays in flight while it waits).
    """
    if fstype not in MKFS:
        raise ValueError(f"unsupported fstype {fstype!r} (expected one of {sorted(MKFS)})")
    mkfs = MKFS[fstype]
    if shutil.which(mkfs[0]) is None:
        raise ScratchFsError(f"{mkfs[0]} is not installed (package {_PACKAGE[mkfs[0]]})")
    image = (image_dir or workdir) / f"{name}.img"
    mount = workdir / name
    with image.open("wb") as f:
        f.truncate(max(size_mb or 0, MIN_SIZE_MB[fstype]) << 20)
    dio = ("--direct-io=on",) if direct_io else ()
    device = run("losetup", "-f", "--show", *dio, str(image)).stdout.strip()
    fs = ScratchFs(mount=mount, image=image, loop_device=device, fstype=fstype)
    try:
        if direct_io and Path(f"/sys/block/{fs.kernel_name}/loop/dio").read_text().strip() != "1":
            raise ScratchFsError(f"{device}: direct I/O refused for {image}")
        run(*mkfs, device)
        mount.mkdir(parents=True, exist_ok=True)
        run("mount", *(("-o", options) if options else ()), device, str(mount))
        yield fs
    finally:
        fs.destroy()


def sweep(prefix: str) -> list[str]:
    """Undoes every mount, loop device and directory whose path starts with `prefix`.

    The safety net for cleanups that failed or never ran: returns what it found, and
    what it could not undo.
    """
    found = []
    for target in sorted(mount_points()):
        if target.startswith(prefix):
            found += [f"mount {target}", *unmount(target)]
    for device, backing in sorted(loop_backing_files().items()):
        if backing.startswith(prefix):
            found += [f"loop device {device} ({backing})", *detach(device)]
    where = Path(prefix)
    for path in sorted(where.parent.glob(f"{where.name}*")):
        found.append(f"directory {path}")
        shutil.rmtree(path, ignore_errors=True)
    return found


def unmount(target: str) -> list[str]:
    """Thaws and unmounts `target`, lazily if it stays busy; returns what went wrong."""
    try:
        thaw(target)
    except ScratchFsError as exc:
        return [str(exc)]
    deadline = time.monotonic() + _UMOUNT_PATIENCE
    while run("umount", target, check=False).returncode != 0:
        if time.monotonic() > deadline:
            # Detach it lazily rather than leak it; the caller still hears about it.
            lazy = run("umount", "-l", target, check=False)
            return [f"{target} stayed busy; lazy umount exited {lazy.returncode}"]
        time.sleep(0.1)
    return []


def detach(device: str) -> list[str]:
    """`losetup -d`; returns what went wrong."""
    done = run("losetup", "-d", device, check=False)
    return [f"losetup -d {device}: {done.stderr.strip()}"] if done.returncode else []


@contextlib.contextmanager
def scratch_dir(prefix: str = "hangwatch-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
