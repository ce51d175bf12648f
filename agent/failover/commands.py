"""Failover commands on the agent: epochs as fencing tokens, each command run at most once.

docs/design.md#4-fence-before-promote rests on three promises kept here. An agent refuses a
command whose epoch is lower than the highest it has seen for the group (STALE_EPOCH,
hook not run): a controller that lost its leadership, or a command delayed in
flight, cannot undo a newer failover. It refuses a command that arrives after its
deadline (EXPIRED), and kills a hook by then: once the controller has counted a
promote as failed, the promote cannot start, or still run, behind its back. The
deadline is counted from `deadline_margin_seconds` before it by this host's clock,
so a clock up to that much behind the controller's changes nothing. And a command
id already handled is answered from its recorded result, so a command sent again
on every new stream, or after an agent restart, runs its hook once.

These promises must survive a restart, so the epoch is on disk before a hook runs.
The state dir may be frozen (the lockup may be on it): the state lives in a
`StateFile` (a child process per write, with a deadline), and an epoch that cannot
be recorded in time fails the command instead of running the hook: the controller
then fences this host rather than trusting a promise the agent could not make. A
record that cannot be read (the dir does not answer, the file is damaged) is never
replaced by an empty one: every command is refused, saying why, until it can be
read, or until a person repairs or removes the file. The epochs known are reported
in every heartbeat, so a controller that lost its own record catches up.

A hook interrupted by an agent crash has no recorded result and runs again when the
command comes back: hooks must be idempotent.

`CommandBook` is the decision part, free of I/O; `CommandHandler` adds the state
file and the hooks.
"""

from __future__ import annotations

import base64
import binascii
import collections
import enum
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from google.protobuf.message import DecodeError
from prometheus_client.core import GaugeMetricFamily, Metric

from agent.config import HookSettings
from agent.failover.hooks import action_name, hook_environment, output_tail, run_hook
from agent.workers.statefile import StateFile, StateFileError
from hangwatch import pbtime
from hangwatch.messages import enum_label
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

# Results kept for answering repeated command ids: far more than stay pending.
HISTORY_LIMIT = 1000
STATE_FILE = "commands.json"
# How long the state dir gets to take a write before the command fails.
STATE_TIMEOUT = 5.0
# Commands expire this long before their deadline, by this host's clock.
DEADLINE_MARGIN = 1.0
_FORMAT = 1
_ACTIONS = (pb.ACTION_DEMOTE, pb.ACTION_PROMOTE, pb.ACTION_CHECK)


class UnreadableRecord(StateFileError):
    """The saved command record is there but cannot be read: nothing may overwrite it."""


class Verdict(enum.Enum):
    RUN = "run"  # epoch accepted (in memory): record it, then run the hook
    ANSWERED = "answered"  # handled before: the recorded result is the answer
    REFUSED = "refused"  # stale epoch, expired or malformed: refusal recorded, no hook


def log_fields(command: pb.Command) -> dict[str, str]:
    """The journal fields of a log line about `command`."""
    return {"failover": command.failover_id, "group": command.group, "command": command.id}


def make_result(
    command: pb.Command,
    host_id: str,
    status: pb.CommandStatus.ValueType,
    now: float,
    *,
    note: str = "",
    known_epoch: int = 0,
) -> pb.CommandResult:
    """A result for a command whose hook did not run (or whose run is added by the caller)."""
    return pb.CommandResult(
        command_id=command.id,
        host_id=host_id,
        status=status,
        output_tail=output_tail(b"", note),
        epoch=command.epoch,
        known_epoch=known_epoch,
        finished_at=pbtime.timestamp(now),
    )


class CommandBook:
    """Per group the highest epoch seen; per command id its result (the latest `limit`)."""

    def __init__(
        self, host_id: str, limit: int = HISTORY_LIMIT, margin: float = DEADLINE_MARGIN
    ) -> None:
        self.host_id = host_id
        self.limit = limit
        self.margin = margin
        self.epochs: dict[str, int] = {}
        self.results: collections.OrderedDict[str, pb.CommandResult] = collections.OrderedDict()

    def decide(self, command: pb.Command, now: float) -> tuple[Verdict, pb.CommandResult | None]:
        """What to do with `command`, and the answer when no hook is to run.

        A repeated id wins over a stale epoch: that command did run, in its time.
        An epoch equal to the highest seen is accepted (a failover's demote and
        promote share theirs).
        """
        recorded = self.results.get(command.id)
        if recorded is not None:
            return Verdict.ANSWERED, recorded
        problem = _malformed(command)
        known = self.epochs.get(command.group, 0)
        left = self.time_left(command, now)
        if problem is None and command.epoch < known:
            problem = f"stale epoch {command.epoch}: group {command.group} is at epoch {known}"
            status = pb.COMMAND_STATUS_STALE_EPOCH
        elif problem is None and left is not None and left <= 0:
            problem = self.expired(command, now)
            status = pb.COMMAND_STATUS_EXPIRED
        else:
            status = pb.COMMAND_STATUS_FAILED
        if problem is not None:
            result = make_result(
                command, self.host_id, status, now, note=f"refused: {problem}", known_epoch=known
            )
            self.record(result)
            return Verdict.REFUSED, result
        self.epochs[command.group] = command.epoch
        return Verdict.RUN, None

    def time_left(self, command: pb.Command, now: float) -> float | None:
        """How long the command's hook may still run (None: it has no deadline)."""
        if not command.HasField("deadline"):
            return None
        return pbtime.seconds(command.deadline) - self.margin - now

    def expired(self, command: pb.Command, now: float) -> str:
        late = now - pbtime.seconds(command.deadline)
        return (
            f"expired: {late:+.1f}s past its deadline by this host's clock, which counts "
            f"from {self.margin:g}s before it (check the clocks if this is unexpected)"
        )

    def record(self, result: pb.CommandResult) -> None:
        self.results[result.command_id] = result
        self.results.move_to_end(result.command_id)
        while len(self.results) > self.limit:
            self.results.popitem(last=False)

    def merge(self, saved: CommandBook) -> None:
        """Adds what a saved book knows: its epochs where higher, its results as older ones."""
        for group, epoch in saved.epochs.items():
            self.epochs[group] = max(epoch, self.epochs.get(group, 0))
        newer = self.results
        self.results = collections.OrderedDict(
            (i, r) for i, r in saved.results.items() if i not in newer
        )
        for result in newer.values():
            self.record(result)

    def dumps(self) -> bytes:
        return json.dumps(
            {
                "format": _FORMAT,
                "epochs": self.epochs,
                "results": [
                    base64.b64encode(r.SerializeToString()).decode() for r in self.results.values()
                ],
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def loads(cls, data: bytes, host_id: str, limit: int = HISTORY_LIMIT) -> CommandBook:
        """Raises ValueError, saying what is wrong, for anything but a dumps() output."""
        try:
            state = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"not a command state of format {_FORMAT}")
        epochs, results = state.get("epochs"), state.get("results")
        if not isinstance(epochs, dict) or not all(
            isinstance(e, int) and e >= 0 for e in epochs.values()
        ):
            raise ValueError("'epochs' is not a table of group epochs")
        if not isinstance(results, list) or not all(isinstance(r, str) for r in results):
            raise ValueError("'results' is not a list of encoded results")
        book = cls(host_id, limit)
        book.epochs = {str(g): e for g, e in epochs.items()}
        for i, encoded in enumerate(results):
            try:
                book.record(pb.CommandResult.FromString(base64.b64decode(encoded, validate=True)))
            except (binascii.Error, DecodeError) as exc:
                raise ValueError(f"result {i} cannot be decoded: {exc}") from None
        return book


def _malformed(command: pb.Command) -> str | None:
    if not command.group:
        return "the command names no group"
    if command.action not in _ACTIONS:
        return f"unknown action {command.action}"
    return None


class CommandHandler:
    """Decides, records and runs commands; one at a time per group is the caller's job."""

    def __init__(
        self,
        host_id: str,
        hooks: HookSettings,
        state_dir: Path,
        *,
        state_timeout: float = STATE_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = CommandBook(host_id, margin=hooks.deadline_margin_seconds)
        self._hooks = hooks
        self._state = StateFile(state_dir / STATE_FILE, state_timeout)
        self._clock = clock
        self._loaded = False

    def collect(self) -> Iterator[Metric]:
        results = GaugeMetricFamily(
            "hangwatch_command_results",
            "Results in the agent's command record (its latest commands), by status",
            labels=["status"],
        )
        # Copied first: the loop may record a result while this runs on the scrape thread.
        recorded = list(self.book.results.values())
        counts = collections.Counter(
            enum_label(pb.CommandStatus, r.status).lower() for r in recorded
        )
        for status, n in sorted(counts.items()):
            results.add_metric([status], n)
        yield results

    async def start(self) -> None:
        """Loads the saved record; when it cannot be read, every command is refused (and
        the record left as it is) until it can."""
        try:
            await self._load()
        except StateFileError as exc:
            log.error("command state NOT LOADED: %s; every command is refused until it loads", exc)

    async def handle(self, command: pb.Command) -> pb.CommandResult:
        if not self._loaded:
            # Deciding against an empty record would accept a stale epoch or run a
            # command id again: the saved record must be read first.
            try:
                await self._load()
            except StateFileError as exc:
                log.error("command %s not run: command state not loaded: %s", command.id, exc)
                return make_result(
                    command,
                    self.book.host_id,
                    pb.COMMAND_STATUS_FAILED,
                    self._clock(),
                    note=f"not run: the saved epochs cannot be read: {exc}",
                )
        verdict, answer = self.book.decide(command, self._clock())
        if verdict is Verdict.ANSWERED:
            assert answer is not None
            log.info("command %s was handled before: answering from the record", command.id)
            return answer
        if verdict is Verdict.REFUSED:
            assert answer is not None
            log.warning(
                "command %s refused: %s",
                command.id,
                answer.output_tail.strip(),
                extra=log_fields(command),
            )
            await self._save_quietly()
            return answer
        try:
            await self._save()
        except StateFileError as exc:
            log.error("command %s not run: cannot record epoch: %s", command.id, exc)
            result = make_result(
                command,
                self.book.host_id,
                pb.COMMAND_STATUS_FAILED,
                self._clock(),
                note=f"not run: cannot record epoch: {exc}",
            )
        else:
            result = await self._run(command)
        self.book.record(result)
        await self._save_quietly()
        return result

    async def _run(self, command: pb.Command) -> pb.CommandResult:
        name = action_name(command.action)
        path: str = getattr(self._hooks, name)
        if not path:
            return make_result(
                command,
                self.book.host_id,
                pb.COMMAND_STATUS_NO_HOOK,
                self._clock(),
                note=f"no {name} hook configured ([hooks] {name})",
            )
        timeout = pbtime.seconds(command.timeout) or self._hooks.timeout_seconds
        left = self.book.time_left(command, self._clock())
        if left is not None and left <= 0:
            # Recording the epoch took the rest of its time.
            note = f"not run: {self.book.expired(command, self._clock())}"
            log.warning("command %s %s", command.id, note)
            return make_result(
                command, self.book.host_id, pb.COMMAND_STATUS_EXPIRED, self._clock(), note=note
            )
        if left is not None:
            timeout = min(timeout, left)
        log.info(
            "command %s: running %s hook %s for group %s",
            command.id,
            name,
            path,
            command.group,
            extra=log_fields(command),
        )
        run = await run_hook(path, hook_environment(command, self.book.host_id), timeout)
        log.log(
            logging.INFO if run.status == pb.COMMAND_STATUS_SUCCEEDED else logging.ERROR,
            "command %s: %s hook %s after %.1fs (exit %d)",
            command.id,
            name,
            enum_label(pb.CommandStatus, run.status),
            run.duration,
            run.exit_code,
            extra=log_fields(command),
        )
        result = make_result(command, self.book.host_id, run.status, self._clock())
        result.exit_code = run.exit_code
        result.output_tail = run.output_tail
        result.duration.CopyFrom(pbtime.duration(run.duration))
        return result

    async def _load(self) -> None:
        data = await self._state.read()
        if data:
            try:
                saved = CommandBook.loads(data, self.book.host_id, self.book.limit)
            except ValueError as exc:
                raise UnreadableRecord(
                    f"{self._state.path} is damaged ({exc}): repair it, or remove it to "
                    "forget the epochs this host has seen"
                ) from None
            self.book.merge(saved)
        self._loaded = True

    def known_epochs(self) -> dict[str, int]:
        """The highest epoch seen per group, once the saved record is read (else none)."""
        return dict(self.book.epochs) if self._loaded else {}

    async def _save(self) -> None:
        """Writes the book; a state not loaded yet is loaded first, or saving would lose it."""
        if not self._loaded:
            await self._load()
        await self._state.replace(self.book.dumps())

    async def _save_quietly(self) -> None:
        """For results: the answer goes to the controller even when the disk does not take it."""
        try:
            await self._save()
        except StateFileError as exc:
            log.error("command state not saved: %s", exc)
