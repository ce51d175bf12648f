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
from pathlib import Path

from agent import testing
from agent.config import AgentConfig
from agent.eventpolicy import EventPolicy
from agent.events import EventCounter, EventFactory, droppable
from agent.evidence.collector import EvidenceCollector, InOrder
from agent.evidence.facts import facts_of
from agent.failover.commands import CommandHandler
from agent.health import HealthEngine, HealthSettings, State
from agent.heartbeat import Heartbeats
from agent.host.inventory import boot_id
from agent.host.inventory_watch import InventoryWatch
from agent.kmsg.rules import load_rules
from agent.link.channel import ControllerLink
from agent.link.command_stream import CommandStream
from agent.link.outbox import Outbox
from agent.link.reporter import Reporter
from agent.link.session import Session
from agent.link.spool_replay import replay_spool
from agent.lockuptimer import LockupTimer
from agent.procfs.mountinfo import DeviceMap, load_device_map
from agent.selfcheck import SelfCheck
from agent.signals import Signal
from agent.sources.base import Source
from agent.sources.diskstats_source import DiskstatsSource
from agent.sources.dstate_source import DStateSource
from agent.sources.kmsg_source import KmsgSource
from agent.sources.mounttable import MountTableSource
from agent.sources.pressure_source import PressureSource
from agent.sources.probe_source import ProbeSource
from agent.sources.udev_source import UdevSource
from agent.status import status_line
from agent.workers.spool import Spool
from hangwatch.metrics import MetricsEndpoint
from hangwatch.sdnotify import Notifier
from hangwatch.tlsmetrics import CertificateExpiry
from hangwatch.v1 import types_pb2 as pb

log = logging.getLogger(__name__)

EVALUATE_INTERVAL = 0.5
# A confirmed lockup is an error (journalctl -p err); recovery is news, not trouble.
_TRANSITION_LEVEL = {State.LOCKED: logging.ERROR, State.OK: logging.INFO}


async def run(config: AgentConfig) -> None:
    """Builds the agent inside the event loop (grpc.aio channels bind to it) and runs it."""
    await Agent(config).run()


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.started_at = time.time()
        devices = load_device_map(config.mounts)
        for path in devices.missing:
            log.warning(
                "%s is not a mount point: watching the filesystem that holds it",
                path,
                extra={"mount": path},
            )
        det = config.detection
        self.health = HealthEngine(
            {p: devices.device(p) is not None for p in config.mounts},
            HealthSettings(
                confirm_after=det.confirm_after_seconds,
                no_progress_window=det.no_progress_window_seconds,
                suspect_hold=det.suspect_hold_seconds,
                recover_probes=det.recover_probes,
            ),
            now=self.started_at,
        )
        self.events = EventFactory(config.host_id)
        self.lockups = LockupTimer()
        self.published = EventCounter()
        self.policy = EventPolicy(det.repeat_event_after_seconds)
        self.outbox = Outbox(config.spool.memory_max_events, droppable)
        # A confirmed lockup leaves once its evidence is attached; later events queue behind.
        self.in_order = InOrder(self._publish_now)
        self.evidence = EvidenceCollector(self.in_order)
        self.spool = Spool(Path(config.state_dir) / "spool.db", config.spool.max_events)
        self.probes = ProbeSource(
            config.mounts,
            config.probe.interval_seconds,
            soft_deadline=config.probe.soft_deadline_seconds,
            hard_deadline=config.probe.hard_deadline_seconds,
            worker_name=f"probe-{config.host_id}",
        )
        self.sources = _sources(config, devices, self.probes)
        kmsg = next((s for s in self.sources if isinstance(s, KmsgSource)), None)
        self.kernel_log = kmsg.recent if kmsg else None
        self.selfcheck = SelfCheck(
            self.sources,
            self.spool,
            spool_stuck_after=config.spool.stuck_after_seconds,
            state_dir=config.state_dir,
        )
        self.inventory = InventoryWatch(
            list(config.mounts), devices, config.testing.kernel_release_override
        )
        self.command_handler = CommandHandler(config.host_id, config.hooks, Path(config.state_dir))
        heartbeats = Heartbeats(
            config.host_id,
            config.testing.boot_id_override or boot_id(),
            started_at=self.started_at,
            inventory=self.inventory,
            health=self.health,
            probes=self.probes,
            sources=self.sources,
            selfcheck=self.selfcheck,
            spool=self.spool,
            outbox=self.outbox,
            epochs=self.command_handler.known_epochs,
        )
        self.link = ControllerLink(config)
        # A clock stepped back across a restart must not number new events below what
        # the controller already holds.
        self.session = Session(
            config,
            self.link,
            heartbeats.registration,
            heartbeats.heartbeat,
            lambda reply: self.events.bump_seq(reply.last_host_seq),
        )
        self.reporter = Reporter(config, self.link, self.outbox, self.spool)
        self.commands = CommandStream(config, self.link, self.command_handler)
        self.metrics = MetricsEndpoint(
            "agent",
            [
                self.probes,
                self.health,
                self.lockups,
                self.published,
                self.spool,
                self.outbox,
                *(s for s in self.sources if isinstance(s, KmsgSource)),
                self.selfcheck,
                self.command_handler,
                self.session,
                self.link.calls,
                CertificateExpiry(lambda: self.link.material),
            ],
        )
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
            self.lockups.observe(transition)
            log.log(
                _TRANSITION_LEVEL.get(transition.after, logging.WARNING),
                "%s",
                transition.summary,
                extra={
                    "host": self.config.host_id,
                    "mount": transition.mount,
                    "state": transition.after.name,
                },
            )
            event = self.events.from_transition(transition)
            if transition.after is State.LOCKED:
                facts = facts_of(transition, self.kernel_log, self.inventory.inventory)
                self.evidence.attach(event, facts)
            else:
                self.publish(event)

    def publish(self, event: pb.Event) -> None:
        self.in_order.put(event)

    def _publish_now(self, event: pb.Event) -> None:
        self.published.count(event)
        self.outbox.put(event)
        self.spool.append(event)

    # The process.

    def summary(self) -> str:
        return status_line(self.health, self.selfcheck.stalled, self.session, self.link)

    def _reread(self) -> str:
        """SIGHUP: the TLS files, through a new channel; other settings apply on restart."""
        self.link.reload()
        return self.summary()

    async def _evaluate_loop(self) -> None:
        """Also the systemd watchdog's proof of life: pings only follow a finished self-check."""
        while True:
            self.evaluate()
            self.selfcheck.check(self.emit)
            self.notifier.status(self.summary())
            self.notifier.watchdog()
            await asyncio.sleep(EVALUATE_INTERVAL)

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.notifier.reload, self._reread)
        log.info(
            "agent %s watching %d mounts: %s",
            self.config.host_id,
            len(self.inventory.mounts),
            ", ".join(m.path for m in self.inventory.mounts) or "(none)",
        )
        await replay_spool(self.spool, self.outbox, self.events)
        self._ready.set()
        self.metrics.start(self.config.metrics.listen)
        tasks = [asyncio.create_task(s.run(self.emit), name=s.name) for s in self.sources]
        tasks += [
            asyncio.create_task(self.session.run(), name="session"),
            asyncio.create_task(self.reporter.run(self._ready), name="reporter"),
            asyncio.create_task(self.commands.run(), name="commands"),
            asyncio.create_task(self.inventory.run(self.session.register_again), name="inventory"),
        ]
        await asyncio.sleep(0)  # every task has now taken its first step
        self.notifier.ready(self.summary())
        tasks.append(asyncio.create_task(self._evaluate_loop(), name="evaluate"))
        hooks = testing.hooks(self.config.testing, self.publish, self.events, self.started_at)
        tasks += [asyncio.create_task(hook, name=name) for name, hook in hooks.items()]
        await stop.wait()
        log.info("stopping")
        self.notifier.stopping()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.metrics.stop()
        await self.evidence.close()
        await self.probes.close()
        await self.spool.close()
        await self.link.close()


def _sources(config: AgentConfig, devices: DeviceMap, probes: ProbeSource) -> list[Source]:
    """Every signal source the settings ask for, the probes first."""
    det = config.detection
    own_device = {p: d for p in config.mounts if (d := devices.device(p))}
    sources: list[Source] = [
        probes,
        DiskstatsSource(own_device, det.diskstats_interval_seconds, det.stall_after_seconds),
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
        sources.append(
            KmsgSource(
                load_rules([Path(f) for f in config.kmsg.rules_files]),
                devices,
                path=config.kmsg.path,
                from_start=config.kmsg.replay_since_boot,
                kernel_only=not config.kmsg.accept_user_facility,
                own_pids=probes.mount_of_pid,
            )
        )
    return sources


def _devices_to_mounts(devices: DeviceMap, paths: list[str]) -> dict[str, list[str]]:
    """Each backing device's kernel name and the monitored mounts above it."""
    out: dict[str, list[str]] = {}
    for path in paths:
        for name in devices.backing_devices(path):
            out.setdefault(name, []).append(path)
    return out
