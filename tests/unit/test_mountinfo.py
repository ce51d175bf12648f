"""Mount table and device map, on a fabricated storage host (tests/fixtures/*/storage1).

The host: / on sda1; /srv/mail on LVM vg0-mail (dm-0) on sda2; /srv/web on LVM
vg1-web (dm-1) on RAID1 md0 over nvme0n1p2 + nvme1n1p1; /srv/mail archive (read-only)
on dm-2 (crypt) on sdb1; /srv/btr on btrfs over the whole sdc; /mnt/img on loop3.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.procfs.mountinfo import (
    DeviceMap,
    find_mount,
    load_device_map,
    parse_mountinfo,
    read_mountinfo,
)
from agent.procfs.sysblock import BlockDevice, read_block_devices

FIXTURES = Path(__file__).parents[1] / "fixtures"
PROC = str(FIXTURES / "proc" / "storage1")
SYS = str(FIXTURES / "sys" / "storage1")
MONITORED = ["/srv/mail", "/srv/web", "/mnt/img", "/srv/mail archive", "/srv/btr"]


@pytest.fixture(scope="module")
def mounts():
    return read_mountinfo(PROC)


@pytest.fixture(scope="module")
def devices():
    return read_block_devices(SYS)


@pytest.fixture(scope="module")
def dmap():
    return load_device_map(MONITORED, proc_root=PROC, sys_root=SYS)


def by_point(mounts, point):
    (found,) = [m for m in mounts if m.mount_point == point]
    return found


def test_fields_of_an_lvm_mount(mounts):
    mail = by_point(mounts, "/srv/mail")
    assert (mail.mount_id, mail.parent_id, mail.devno, mail.root) == (30, 22, "253:0", "/")
    assert mail.fs_type == "xfs"
    assert mail.source == "/dev/mapper/vg0-mail"
    assert mail.options == ("rw", "noatime")
    assert mail.tags == ("shared:20",)
    assert "logbsize=32k" in mail.super_options
    assert not mail.read_only


def test_octal_escapes_are_decoded(mounts):
    archive = by_point(mounts, "/srv/mail archive")
    assert archive.source == "/dev/mapper/crypt-archive"
    remote = by_point(mounts, "/mnt/remote")
    assert remote.fs_type == "fuse.sshfs"
    assert remote.source == "backup@vault:/srv\ttabbed"


def test_several_optional_fields_and_bind_root(mounts):
    static = by_point(mounts, "/srv/static")
    assert static.tags == ("shared:28", "master:21")
    assert static.root == "/htdocs/static"
    assert static.fs_type == "ext4"


def test_read_only_from_mount_or_superblock(mounts):
    assert by_point(mounts, "/srv/mail archive").read_only
    # errors=remount-ro leaves the mount "rw" and marks only the superblock "ro".
    (remounted,) = parse_mountinfo(
        "50 22 8:1 / /data rw,relatime shared:1 - ext4 /dev/sda1 ro,errors=remount-ro\n"
    )
    assert remounted.read_only


@pytest.mark.parametrize(
    "line",
    [
        "22 1 8:1 / / rw,relatime shared:1 ext4 /dev/sda1 rw",  # no separator
        "22 1 8:1 / / rw - ext4 /dev/sda1",  # a field short after "-"
        "22 1 sda / / rw - ext4 /dev/sda1 rw",  # no MAJ:MIN
        "x 1 8:1 / / rw - ext4 /dev/sda1 rw",  # bad id
    ],
)
def test_malformed_line_is_rejected_with_its_number(line):
    text = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n" + line + "\n"
    with pytest.raises(ValueError, match="mountinfo line 2"):
        parse_mountinfo(text)


@pytest.mark.parametrize(
    ("path", "point"),
    [
        ("/srv/mail/users/alice", "/srv/mail"),
        ("/srv/mail", "/srv/mail"),
        ("/srv/mailbox", "/"),  # a prefix of the string, not of the path
        ("/srv/mail archive/2023.tar", "/srv/mail archive"),
        ("/srv/mail/tmp/spill", "/srv/mail/tmp"),  # a submount
        ("/srv/mail/../web/index.html", "/srv/web"),  # lexical, never resolved
        ("/srv/web/htdocs/old.html (deleted)", "/srv/web"),
    ],
)
def test_find_mount_takes_the_longest_containing_mount_point(mounts, path, point):
    found = find_mount(mounts, path)
    assert found is not None and found.mount_point == point


def test_find_mount_sees_the_top_of_stacked_mounts(mounts):
    found = find_mount(mounts, "/mnt/stack/file")
    assert found is not None and found.fs_type == "tmpfs"


@pytest.mark.parametrize("path", ["socket:[48213]", "relative/path", ""])
def test_pseudo_and_relative_paths_have_no_mount(mounts, path):
    assert find_mount(mounts, path) is None


def test_sysfs_partitions_know_their_disk(devices):
    assert devices["sda1"] == BlockDevice("sda1", "8:1", parent="sda")
    assert devices["nvme0n1p2"].parent == "nvme0n1"
    assert devices["sda"].parent is None
    assert devices["loop3"] == BlockDevice("loop3", "7:3")


def test_sysfs_stacked_devices_know_their_slaves(devices):
    assert devices["dm-0"] == BlockDevice("dm-0", "253:0", slaves=("sda2",), dm_name="vg0-mail")
    assert devices["dm-1"].slaves == ("md0",)
    assert devices["md0"].slaves == ("nvme0n1p2", "nvme1n1p1")


@pytest.mark.parametrize(
    ("mount", "backing"),
    [
        ("/srv/mail", ["dm-0", "sda2", "sda"]),
        ("/srv/web", ["dm-1", "md0", "nvme0n1p2", "nvme1n1p1", "nvme0n1", "nvme1n1"]),
        ("/mnt/img", ["loop3"]),
        ("/srv/btr", ["sdc"]),  # btrfs: anonymous 0:41, found by its source
        ("/srv/mail/users", ["dm-0", "sda2", "sda"]),  # any path on the mount
        ("/srv/mail/tmp", []),  # tmpfs
        ("/proc", []),
    ],
)
def test_backing_devices(dmap, mount, backing):
    assert dmap.backing_devices(mount) == backing


def test_mount_facts(dmap):
    assert dmap.device("/srv/mail archive") == "dm-2"
    mount = dmap.mount("/srv/mail archive")
    assert mount is not None and mount.read_only and mount.fs_type == "ext4"


@pytest.mark.parametrize(
    ("name", "mount"),
    [
        ("loop3", "/mnt/img"),
        ("dm-0", "/srv/mail"),
        ("sda2", "/srv/mail"),  # a slave
        ("sda", "/srv/mail"),  # the disk of a slave: "/" on sda1 is not monitored
        ("vg0-mail", "/srv/mail"),  # a dm name, as in "device-mapper: ... vg0-mail"
        ("/dev/mapper/vg1-web", "/srv/web"),
        ("nvme1n1", "/srv/web"),  # disk of a member of the md under the dm
        ("md0", "/srv/web"),
        ("253:2", "/srv/mail archive"),
        ("sdc", "/srv/btr"),
        ("sda1", None),  # only "/" sits on it, and "/" is not monitored
        ("nvme0n1p1", None),  # /boot/efi, not monitored
        ("loop0", None),  # hidden under the tmpfs stacked on /mnt/stack
        ("sdz", None),
        ("no-such-dm", None),
    ],
)
def test_mount_for_device(dmap, name, mount):
    assert dmap.mount_for_device(name) == mount


def test_a_disk_shared_by_two_monitored_mounts_names_neither(mounts, devices):
    dmap = DeviceMap(mounts, devices, ["/srv/mail", "/"])
    assert dmap.mount_for_device("sda") is None
    # "/" sits on sda1 directly, /srv/mail on dm-0 over sda2: "/" is nearer.
    assert dmap.mounts_for_device("sda") == ["/", "/srv/mail"]
    assert dmap.mount_for_device("sda1") == "/"


def test_monitored_mount_points_that_are_not_mounted_are_missing(mounts, devices):
    dmap = DeviceMap(mounts, devices, ["/srv/mail", "/srv/gone", "/srv/mail/"])
    assert dmap.monitored == ("/srv/mail",)
    assert dmap.missing == ("/srv/gone",)


def test_by_default_every_block_backed_mount_is_monitored(mounts, devices):
    dmap = DeviceMap(mounts, devices)
    assert set(dmap.monitored) == {
        "/",
        "/srv/mail",
        "/srv/web",
        "/mnt/img",
        "/boot/efi",
        "/srv/mail archive",
        "/var/www",
        "/srv/btr",
        "/srv/static",
    }
    # The same filesystem on three mount points: no single answer.
    assert dmap.mounts_for_device("dm-1") == ["/srv/static", "/srv/web", "/var/www"]
    assert dmap.mount_for_device("dm-1") is None
