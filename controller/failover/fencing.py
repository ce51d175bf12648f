"""Controller-side fencing in the ClusterLabs fence-agent convention.

The agent reads `key=value` lines on stdin (`action=off` plus the device's
options) and exits 0 once the node is off, so real agents such as fence_ipmilan
plug in unchanged.
"""

from __future__ import annotations

from controller.config import FenceSettings
from hangwatch.executables import ExecResult, run_executable


def fence_input(settings: FenceSettings, host: str) -> bytes:
    options = {"action": "off", **settings.options}
    options.setdefault("nodename", host)
    return "".join(f"{k}={v}\n" for k, v in options.items()).encode()


async def fence(
    settings: FenceSettings, host: str, group: str, epoch: int, failover_id: str
) -> ExecResult:
    """Powers `host` off. The environment names the failover for logs and tests; real
    fence agents read only stdin."""
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HANGWATCH_GROUP": group,
        "HANGWATCH_EPOCH": str(epoch),
        "HANGWATCH_FAILOVER_ID": failover_id,
    }
    return await run_executable(
        [settings.agent],
        timeout=settings.timeout_seconds,
        stdin=fence_input(settings, host),
        env=env,
        what=f"fence agent {settings.agent}",
    )
