"""Scratch filesystems on loop devices: real mounts that can really freeze.

Used by `hangwatchctl demo` and by the tests. Cleanup always thaws, unmounts and
detaches, in that order, whatever state the filesystem was left in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MIN_SIZE_MB = {"ext4": 16, "xfs": 300}


def can_loop_mount() -> bool:
    """Root, with losetup and mkfs.ext4 available: loop-mounted scratch filesystems work."""
    return (
        os.geteuid() == 0
        and shutil.which("losetup") is not None
        and shutil.which("mkfs.ext4") is not None
        and Path("/dev/loop-control").exists()
    )


def _run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
        )
    return result.stdout.strip()


@dataclass
class ScratchFs:
    mount: Path
    image: Path
    loop_device: str
    fstype: str
    frozen: bool = False

    @property
    def kernel_name(self) -> str:
        """The block device's kernel name, e.g. loop3."""
        return Path(self.loop_device).name

    def freeze(self) -> None:
        _run("fsfreeze", "-f", str(self.mount))
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            with contextlib.suppress(RuntimeError):
                _run("fsfreeze", "-u", str(self.mount))
            self.frozen = False

    def destroy(self) -> None:
        self.thaw()
        if os.path.ismount(self.mount):
            try:
                _run("umount", str(self.mount))
            except RuntimeError:
                # Busy (a stuck process still holds it): detach lazily rather than leak.
                with contextlib.suppress(RuntimeError):
                    _run("umount", "-l", str(self.mount))
        with contextlib.suppress(RuntimeError):
            _run("losetup", "-d", self.loop_device)
        self.image.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.mount.rmdir()


@contextlib.contextmanager
def loop_fs(
    workdir: Path, name: str, fstype: str = "ext4", size_mb: int | None = None
) -> Iterator[ScratchFs]:
    """A fresh filesystem of `fstype` on a loop device, mounted under `workdir/name`."""
    size = max(size_mb or 0, MIN_SIZE_MB.get(fstype, 64))
    mkfs = {"ext4": ["mkfs.ext4", "-q", "-F"], "xfs": ["mkfs.xfs", "-q", "-f"]}[fstype]
    if shutil.which(mkfs[0]) is None:
        raise RuntimeError(
            f"{mkfs[0]} is not installed (package {'xfsprogs' if fstype == 'xfs' else 'e2fsprogs'})"
        )
    image = workdir / f"{name}.img"
    mount = workdir / name
    with image.open("wb") as f:
        f.truncate(size * 1024 * 1024)
    device = _run("losetup", "-f", "--show", str(image))
    fs = ScratchFs(mount=mount, image=image, loop_device=device, fstype=fstype)
    try:
        _run(*mkfs, device)
        mount.mkdir(parents=True, exist_ok=True)
        _run("mount", device, str(mount))
        yield fs
    finally:
        fs.destroy()


@contextlib.contextmanager
def scratch_dir(prefix: str = "hangwatch-") -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
