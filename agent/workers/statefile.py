"""A small file in the state dir, read and replaced by short-lived child processes.

The state dir may sit on a filesystem that freezes (docs/design.md#1-no-waiting), so the agent
never touches it itself: each read or replace is one child
(`agent.workers.statefile_worker`) awaited up to a deadline. A child past its deadline is
killed and left behind (in D state the SIGKILL lands on thaw). Operations are
serialised and none starts while an earlier child still lives: a stale writer
finishing after a newer one would otherwise put old state back.

One child per operation, unlike the spool's long-lived worker: these writes are
rare (a few per failover), and a stuck one-shot child needs no retiring or
restarting, only to be waited out.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from agent.workers.childproc import python_argv


class StateFileError(Exception):
    """The state dir did not answer in time, or refused the operation."""


class StateFile:
    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self._lock = asyncio.Lock()
        self._stuck: asyncio.subprocess.Process | None = None

    async def read(self) -> bytes:
        """The file's bytes; empty when there is no file."""
        return await self._run("read", b"", "readable")

    async def replace(self, data: bytes) -> None:
        await self._run("replace", data, "writable")

    async def _run(self, op: str, data: bytes, able: str) -> bytes:
        async with self._lock:
            stuck = self._stuck
            if stuck is not None and stuck.returncode is None:
                raise StateFileError(
                    f"state dir {self.path.parent} not {able}: an earlier child "
                    f"(pid {stuck.pid}) is still stuck on it"
                )
            proc = await asyncio.create_subprocess_exec(
                *python_argv("agent.workers.statefile_worker", "main", op, str(self.path)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd="/",
            )
            try:
                out, err = await asyncio.wait_for(proc.communicate(data), self.timeout)
            except TimeoutError:
                raise StateFileError(
                    f"state dir {self.path.parent} not {able} within {self.timeout:g}s"
                ) from None
            finally:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    self._stuck = proc
            if proc.returncode != 0:
                detail = err.decode(errors="replace").strip()
                raise StateFileError(detail or f"state file worker exited {proc.returncode}")
            return out
