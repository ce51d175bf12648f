"""Block device names as the kernel prints them, and where they hide in a message.

The names go to a device -> mount mapping written elsewhere, so only shapes that can
name a block device (or a MAJ:MIN pair) are returned.
"""

from __future__ import annotations

import re

_NAME = (
    r"(?:sd[a-z]{1,3}|vd[a-z]{1,3}|xvd[a-z]{1,3})\d*"
    r"|nvme\d+n\d+(?:p\d+)?|mmcblk\d+(?:p\d+)?|(?:loop|nbd|rbd|zd|bcache|md)\d+(?:p\d+)?"
    r"|dm-\d+|pmem\d+[a-z.\d]*|dasd[a-z]+\d*|sr\d+|fd\d+"
)
_DEVICE = re.compile(rf"(?:{_NAME}|\d+:\d+)")
# A device inside free text: not glued to a longer word on either side.
_IN_TEXT = re.compile(rf"(?<![\w.-])({_NAME})(?!\w|-[A-Za-z])")
# Kernel thread and workqueue names that carry the device they serve.
_TASK_DEVICE = re.compile(
    r"(?:jbd2/(?P<jbd2>.+)-\d+|(?:xfsaild|xfs-\w+|dio|ext4-\w+|kdmflush|loop)/(?P<dev>.+)"
    r"|.*\bflush-(?P<bdi>\d+:\d+)|(?P<md>md\d+)_\w+|(?P<loop>loop\d+))"
)


def is_device(name: str) -> bool:
    return _DEVICE.fullmatch(name) is not None


def device_in_text(text: str) -> str | None:
    """First block device named in a message, e.g. `sdb` in `dev sdb, sector 0`."""
    match = _IN_TEXT.search(text)
    return match[1] if match else None


def device_of_task(name: str) -> str | None:
    """Device served by a kernel thread or workqueue (`jbd2/sda1-8` -> `sda1`)."""
    match = _TASK_DEVICE.fullmatch(name)
    if match is None:
        return None
    device = next(group for group in match.groups() if group is not None)
    return device if is_device(device) else None
