"""The udev and mount-table sources' decisions, without devices (pure)."""

from __future__ import annotations

from agent.procfs.mountinfo import Mount
from agent.signals import Kind, Severity
from agent.sources.mounttable import mount_changes
from agent.sources.udev_source import device_event_signal


def mount(mount_id: int, options: tuple[str, ...] = ("rw",)) -> Mount:
    return Mount(
        mount_id=mount_id,
        parent_id=1,
        devno="7:3",
        root="/",
        mount_point="/srv/mail",
        options=options,
        tags=(),
        fs_type="ext4",
        source="/dev/loop3",
        super_options=("rw",),
    )


def test_removed_device_is_critical_for_its_only_mount():
    s = device_event_signal("remove", "sdb", {}, ["/srv/mail"], at=1.0)
    assert s is not None and s.kind == Kind.DEVICE_REMOVED and s.severity is Severity.CRITICAL
    assert s.mount == "/srv/mail" and s.device == "sdb"


def test_media_change_and_offline_are_device_offline_and_other_events_nothing():
    assert (
        device_event_signal("change", "sr0", {"DISK_MEDIA_CHANGE": "1"}, [], 1.0).kind
        == Kind.DEVICE_OFFLINE
    )  # type: ignore[union-attr]
    assert device_event_signal("offline", "sdb", {}, ["/a", "/b"], 1.0).mount is None  # type: ignore[union-attr]
    assert device_event_signal("change", "sdb", {}, ["/srv/mail"], 1.0) is None
    assert device_event_signal("add", "sdb", {}, ["/srv/mail"], 1.0) is None


def test_mount_table_changes():
    path = ["/srv/mail"]
    # First reading: a missing mount is news, a read-only one is by design.
    assert [s.kind for s in mount_changes(path, None, {"/srv/mail": None}, 1.0)] == [
        Kind.MOUNT_GONE
    ]
    assert mount_changes(path, None, {"/srv/mail": mount(5, ("ro",))}, 1.0) == []
    # Later readings.
    rw, ro = {"/srv/mail": mount(5)}, {"/srv/mail": mount(5, ("ro",))}
    assert [s.kind for s in mount_changes(path, rw, ro, 2.0)] == [Kind.MOUNT_READONLY]
    assert [s.kind for s in mount_changes(path, ro, rw, 3.0)] == [Kind.MOUNT_RESTORED]
    assert [s.kind for s in mount_changes(path, rw, {"/srv/mail": None}, 4.0)] == [Kind.MOUNT_GONE]
    assert [s.kind for s in mount_changes(path, rw, {"/srv/mail": mount(9)}, 5.0)] == [
        Kind.MOUNT_RESTORED
    ]
    assert mount_changes(path, rw, rw, 6.0) == []
