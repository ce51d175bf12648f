"""The agent process: wires sources, health, events and the controller session together.

Everything runs on one asyncio loop that never touches a monitored filesystem:
probes and the spool live in child processes, /proc scans that may take
milliseconds run in a thread. Heartbeats therefore keep going while every
monitored mount (and the state dir) is frozen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import Counter
from pathlib import Path

from agent.config import AgentConfig
from agent.eventpolicy import EventPolicy
from agent.events import EventFactory, droppable
from agent.failover.commands import CommandHandler
from agent.health import HealthEngine, HealthSettings, State
from agent.host import inventory, mounts
from agent.kmsg.rules import load_rules
from agent.link.channel import ControllerLink
from agent.link.command_stream import CommandStream
from agent.link.outbox import Outbox
from agent.link.reporter import Reporter
from agent.link.session import Session
from agent.metrics import AgentCollector
from agent.procfs.mountinfo import DeviceMap, load_device_map
from agent.signals import Kind, Severity, Signal
from agent.sources.base import Source
from agent.sources.diskstats_source import DiskstatsSource
from agent.sources.dstate_source import DStateSource
from agent.sources.kmsg_source import KmsgSource
from agent.sources.mounttable import MountTableSource
from agent.sources.pressure_source import PressureSource
from agent.sources.probe_source import ProbeSource
from agent.sources.udev_source import UdevSource
from agent.workers.probe import ProbeRunner
from agent.workers.spool import Spool
from hangwatch import __version__, pbtime, tls
from hangwatch.metrics import MetricsEndpoint
from hangwatch.sdnotify import Notifier
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

EVALUATE_INTERVAL = 0.5
# A spool that has not answered its first load by then is reported; sending starts anyway.
SPOOL_LOAD_TIMEOUT = 3.0
# A source that has not ticked for this many intervals (at least STALL_MIN_SECONDS) stalled.
STALL_INTERVALS = 5
STALL_MIN_SECONDS = 10.0
# Inventory and mount descriptions are read again this often; a change re-registers.
INVENTORY_CHECK_SECONDS = 60.0


async def run(config: AgentConfig) -> None:
    """Builds the agent inside the event loop (grpc.aio channels bind to it) and runs it."""
    await Agent(config).run()


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.started_at = time.time()
        self.boot_id = config.testing.boot_id_override or inventory.boot_id()
        self.inventory = inventory.collect(config.testing.kernel_release_override)
        devices = load_device_map(config.mounts)
        for path in devices.missing:
            log.warning("%s is not a mount point: watching the filesystem that holds it", path)
        self.mounts = mounts.describe(devices, config.mounts)
        own_device = {p: devices.device(p) for p in config.mounts}
        det = config.detection
        self.health = HealthEngine(
            {p: dev is not None for p, dev in own_device.items()},
            HealthSettings(
                confirm_after=det.confirm_after_seconds,
                no_progress_window=det.no_progress_window_seconds,
                suspect_hold=det.suspect_hold_seconds,
                recover_probes=det.recover_probes,
            ),
            now=self.started_at,
        )
        self.events = EventFactory(config.host_id)
        self.policy = EventPolicy(det.repeat_event_after_seconds)
        self.outbox = Outbox(config.spool.memory_max_events, droppable)
        self.spool = Spool(Path(config.state_dir) / "spool.db", config.spool.max_events)
        self.link = ControllerLink(config)
        # A clock stepped back across a restart must not number new events below what
        # the controller already holds.
        self.session = Session(
            config,
            self.link,
            self.registration,
            self.heartbeat,
            lambda reply: self.events.bump_seq(reply.last_host_seq),
        )
        self.reporter = Reporter(config, self.link, self.outbox, self.spool)
        self.command_handler = CommandHandler(config.host_id, config.hooks, Path(config.state_dir))
        self.commands = CommandStream(config, self.link, self.command_handler)
        probe = config.probe
        self.probes = ProbeSource(
            [
                ProbeRunner(
                    p,
                    soft_deadline=probe.soft_deadline_seconds,
                    hard_deadline=probe.hard_deadline_seconds,
                    name=f"probe-{config.host_id}",
                )
                for p in config.mounts
            ],
            probe.interval_seconds,
        )
        self.sources: list[Source] = [
            self.probes,
            DiskstatsSource(
                {p: d for p, d in own_device.items() if d},
                det.diskstats_interval_seconds,
                det.stall_after_seconds,
            ),
            PressureSource(
                det.pressure_interval_seconds,
                det.pressure_some_threshold,
                det.pressure_full_threshold,
            ),
            DStateSource(devices, det.dstate_interval_seconds, det.dstate_min_seconds),
            MountTableSource(list(config.mounts), det.diskstats_interval_seconds),
            UdevSource(_devices_to_mounts(devices, config.mounts)),
        ]
        if config.kmsg.enabled:
            rules = load_rules([Path(f) for f in config.kmsg.rules_files])
            self.sources.append(
                KmsgSource(
                    rules,
                    devices,
                    path=config.kmsg.path,
                    from_start=config.kmsg.replay_since_boot,
                    kernel_only=not config.kmsg.accept_user_facility,
                    own_pids=self.probes.mount_of_pid,
                )
            )
        self._stalled: set[str] = set()
        # Events published, by (kind, severity): read by the metrics collector.
        self.published: Counter[tuple[str, int]] = Counter()
        self.metrics = MetricsEndpoint("agent", [AgentCollector(self)])
        self._spool_stuck = False
        self._ready = asyncio.Event()
        self.notifier = Notifier()

    # Signals, health and events.

    def emit(self, signal: Signal) -> None:
        self.health.observe(signal)
        if self.policy.admit(signal):
            self.publish(self.events.from_signal(signal))
        self.evaluate()

    def evaluate(self) -> None:
        for transition in self.health.evaluate(time.time()):
            level = logging.INFO if transition.after is State.OK else logging.WARNING
            log.log(level, "%s", transition.summary)
            self.publish(self.events.from_transition(transition))

    def publish(self, event: pb.Event) -> None:
        self.published[(event.kind, event.severity)] += 1
        self.outbox.put(event)
        self.spool.append(event)

    # What the controller hears.

    def registration(self) -> agent_pb.RegisterRequest:
        return agent_pb.RegisterRequest(
            host_id=self.config.host_id,
            boot_id=self.boot_id,
            agent_version=__version__,
            mounts=self.mounts,
            inventory=self.inventory,
            agent_started_at=pbtime.timestamp(self.started_at),
        )

    def heartbeat(self) -> agent_pb.HeartbeatRequest:
        request = agent_pb.HeartbeatRequest(
            host_id=self.config.host_id,
            boot_id=self.boot_id,
            spool_depth=max(self.spool.depth, len(self.outbox)),
            sent_at=pbtime.timestamp(time.time()),
            epochs=self.command_handler.known_epochs(),
        )
        now = time.time()
        for mount, (state, since, reason) in self.health.snapshot().items():
            health = request.mounts.add(
                mount=mount,
                state=int(state),
                since=pbtime.timestamp(since),
                reason=reason[:1000],
            )
            last = self.probes.last.get(mount)
            if last is not None:
                if last.stuck_pid is not None and last.outcome.value == "STUCK":
                    health.probe_in_flight_for.CopyFrom(
                        pbtime.duration(max(0.0, now - last.started_at))
                    )
                else:
                    health.last_probe_latency.CopyFrom(pbtime.duration(last.latency))
        mono = time.monotonic()
        for source in self.sources:
            request.sources.add(
                source=source.name,
                running=source.name not in self._stalled,
                last_tick=pbtime.timestamp(now - (mono - source.last_tick)),
                detail=source.error[:1000],
            )
        return request

    # The agent's own health.

    def check_self(self) -> None:
        mono, now = time.monotonic(), time.time()
        for source in self.sources:
            late = mono - source.last_tick
            limit = max(STALL_INTERVALS * source.interval, STALL_MIN_SECONDS)
            if late > limit and source.name not in self._stalled:
                self._stalled.add(source.name)
                self.emit(
                    Signal(
                        source="agent",
                        kind=Kind.SOURCE_STALLED,
                        severity=Severity.ERROR,
                        at=now,
                        summary=f"source {source.name} has not run for {late:.0f}s"
                        + (f": {source.error}" if source.error else ""),
                        attributes={"stalled_source": source.name},
                    )
                )
            elif late <= limit and source.name in self._stalled:
                self._stalled.discard(source.name)
                self.emit(
                    Signal(
                        source="agent",
                        kind=Kind.SOURCE_RECOVERED,
                        severity=Severity.INFO,
                        at=now,
                        summary=f"source {source.name} runs again",
                        attributes={"stalled_source": source.name},
                    )
                )
        busy = self.spool.busy_for(mono)
        stuck = busy > self.config.spool.stuck_after_seconds or bool(self.spool.failed)
        if stuck and not self._spool_stuck:
            self.emit(
                Signal(
                    source="agent",
                    kind=Kind.SPOOL_STUCK,
                    severity=Severity.ERROR,
                    at=now,
                    summary=f"event spool in {self.config.state_dir} is stuck "
                    f"({self.spool.failed or f'a write pending for {busy:.0f}s'}); "
                    "events are kept in memory",
                    attributes={"busy_s": f"{busy:.1f}"},
                )
            )
        self._spool_stuck = stuck

    def summary(self) -> str:
        """One line for `systemctl status`: mount health, stalled sources, the controller."""
        counts = Counter(state for state, _, _ in self.health.snapshot().values())
        health = ", ".join(f"{counts[s]} {s.name}" for s in State if counts[s]) or "none"
        stalled = f"; stalled: {', '.join(sorted(self._stalled))}" if self._stalled else ""
        link = "connected" if self.session.connected.is_set() else "not connected"
        if self.link.refused:
            link = f"{tls.REFUSED} ({self.link.refusals} times): {self.link.refused}"
        return f"mounts: {health}{stalled}; controller {link}"

    def read_inventory(self) -> tuple[pb.Inventory, list[pb.Mount]]:
        """Inventory and mount descriptions as they are now (blocking: run in a thread)."""
        paths = list(self.config.mounts)
        return (
            inventory.collect(self.config.testing.kernel_release_override),
            mounts.describe(load_device_map(paths), paths),
        )

    async def _inventory_loop(self) -> None:
        """Re-registers when the kernel, the fs tools or a mount's features change."""
        while True:
            await asyncio.sleep(INVENTORY_CHECK_SECONDS)
            try:
                now_inventory, now_mounts = await asyncio.to_thread(self.read_inventory)
            except Exception:
                log.exception("reading the inventory failed; keeping the last one")
                continue
            if now_inventory != self.inventory or now_mounts != self.mounts:
                self.inventory, self.mounts = now_inventory, now_mounts
                self.session.register_again()

    def _reread(self) -> str:
        """SIGHUP: the TLS files, through a new channel; other settings apply on restart."""
        self.link.reload()
        return self.summary()

    async def _evaluate_loop(self) -> None:
        """Also the systemd watchdog's proof of life: pings only follow a finished self-check."""
        wedge_after = self.config.testing.wedge_main_loop_after_seconds
        while True:
            self.evaluate()
            self.check_self()
            if wedge_after and time.time() - self.started_at > wedge_after:
                _wedge_forever()
            self.notifier.status(self.summary())
            self.notifier.watchdog()
            await asyncio.sleep(EVALUATE_INTERVAL)

    async def _replay_spool(self) -> None:
        loaded = await self.spool.start()
        try:
            self._merge_spooled(await asyncio.wait_for(asyncio.shield(loaded), SPOOL_LOAD_TIMEOUT))
        except TimeoutError:
            log.error(
                "the spool did not load within %.0fs; sending new events without it, and "
                "its events when it loads",
                SPOOL_LOAD_TIMEOUT,
            )
            loaded.add_done_callback(
                lambda done: self._merge_spooled(done.result()) if not done.exception() else None
            )
        except Exception as exc:
            log.error("the spool could not be read: %s", exc)
        self._ready.set()

    def _merge_spooled(self, pending: list[pb.Event]) -> None:
        if pending:
            log.info("replaying %d spooled events", len(pending))
            self.events.bump_seq(max(e.host_seq for e in pending))
            self.outbox.merge(pending)

    async def _synthetic(self) -> None:
        """Test-only: a burst of synthetic events through the real spool and delivery."""
        cfg = self.config.testing
        per_tick = max(1, int(cfg.synthetic_rate_per_second / 100))
        sent = 0
        while sent < cfg.synthetic_events:
            for _ in range(min(per_tick, cfg.synthetic_events - sent)):
                sent += 1
                self.publish(
                    self.events.from_signal(
                        Signal(
                            source="testing",
                            kind="SYNTHETIC_TEST",
                            severity=Severity.INFO,
                            summary=f"synthetic event {sent}",
                            at=time.time(),
                            attributes={"n": str(sent)},
                        )
                    )
                )
            await asyncio.sleep(0.01)

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.notifier.reload, self._reread)
        log.info(
            "agent %s watching %d mounts: %s",
            self.config.host_id,
            len(self.mounts),
            ", ".join(m.path for m in self.mounts) or "(none)",
        )
        await self._replay_spool()
        self.metrics.start(self.config.metrics.listen)
        tasks = [asyncio.create_task(s.run(self.emit), name=s.name) for s in self.sources]
        tasks += [
            asyncio.create_task(self.session.run(), name="session"),
            asyncio.create_task(self.reporter.run(self._ready), name="reporter"),
            asyncio.create_task(self.commands.run(), name="commands"),
            asyncio.create_task(self._inventory_loop(), name="inventory"),
        ]
        await asyncio.sleep(0)  # every task has now taken its first step
        self.notifier.ready(self.summary())
        tasks.append(asyncio.create_task(self._evaluate_loop(), name="evaluate"))
        if self.config.testing.synthetic_events:
            tasks.append(asyncio.create_task(self._synthetic(), name="synthetic"))
        await stop.wait()
        log.info("stopping")
        self.notifier.stopping()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.metrics.stop()
        await self.probes.close()
        await self.spool.close()
        await self.link.close()


def _wedge_forever() -> None:
    """Test-only ([testing] wedge_main_loop_after_seconds): stalls the event loop like a
    blocking call would, so tests can watch the systemd watchdog pings stop."""
    log.warning("testing: wedging the main loop on purpose")
    while True:
        time.sleep(3600)


def _devices_to_mounts(devices: DeviceMap, paths: list[str]) -> dict[str, list[str]]:
    """Each backing device's kernel name and the monitored mounts above it."""
    out: dict[str, list[str]] = {}
    for path in paths:
        for name in devices.backing_devices(path):
            out.setdefault(name, []).append(path)
    return out
