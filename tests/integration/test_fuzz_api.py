"""Hypothesis against a real controller process over mutual TLS, over every RPC of
AdminService and AgentService.

Two kinds of requests: built from the descriptor with hostile values throughout
(oversized, control characters, invalid UTF-8, huge repeated fields, out-of-range
enums, times and non-finite numbers), and valid requests with one field made hostile
deep inside (negative nanos, sign-mixed durations, unknown enum numbers, control
characters, sizes past each limit, two events with one id). Each call is refused
with a code that says why and a detail that names the field, changing nothing in
the store (but the audit entry of a refusal), or is stored and then shows through
`hangwatchctl -o json` exactly as it was sent; never UNKNOWN. Afterwards every
listing still prints as JSON and a webhook receiver still gets a later event."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from clusterkit import FAST_CONTROLLER, kernel_event
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from receivers import Receiver

from controller.api.admin import AdminApi
from controller.api.agent import AgentApi
from hangwatch.ids import new_ulid
from hangwatch.messages import to_dict
from hangwatch.v1 import admin_service_pb2, agent_service_pb2
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from hangwatch.v1 import types_pb2 as pb
from lab.localcluster import LocalCluster, wait_for

HOST = "fuzz-agent"
# Replaced in the encoded request by as many 0xff bytes: invalid UTF-8 on the wire,
# which no protobuf library would let a client build.
BAD_UTF8 = "BAD-UTF8-MARKER"
OVERSIZED = 9000
HUGE_LIST = 1001
# Examples per method: descriptor-built requests, and valid ones with one hostile field.
EXAMPLES = 25
STREAM_EXAMPLES = 4
DEEP_EXAMPLES = 60
# Past each kind of text limit (hangwatch.limits), and what a terminal would obey.
HOSTILE_TEXT = [
    "x" * 257,
    "/" + "p" * 4096,
    "s" * 1025,
    "e" * 8193,
    "web1\x1b[2J",
    "/srv/\x1b[8mmail",
    "line\nbreak",
    "a\u202eb",
    "\x00",
    BAD_UTF8,
]
TIMES = {"google.protobuf.Timestamp", "google.protobuf.Duration"}
HOSTILE_SECONDS = [-(2**63), -62_135_596_801, -1, 0, 1, 253_402_300_800, 315_576_000_001]
HOSTILE_NANOS = [-(2**31), -1_000_000_000, -1, 0, 1, 999_999_999, 1_000_000_000, 2**31 - 1]
REFUSALS = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
}
# Refusals whose detail must start with the request field at fault.
NAMED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.PERMISSION_DENIED,
}
SERVICES = [
    (admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"], AdminApi, admin_grpc),
    (agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"], AgentApi, agent_grpc),
]
METHODS = [(m, api, module) for service, api, module in SERVICES for m in service.methods]

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def scalar(fd: FieldDescriptor, hostile: bool) -> st.SearchStrategy[Any]:
    if fd.type == FieldDescriptor.TYPE_STRING:
        plausible = st.sampled_from(
            ["", HOST, "web1", "/srv/mail", "mail-b", new_ulid(), "SYNTHETIC_TEST", "x y"]
        )
        options = [plausible, st.text(max_size=12), st.just(BAD_UTF8)]
        if hostile:
            options += [st.just("é" * OVERSIZED), st.sampled_from(HOSTILE_TEXT)]
        return st.one_of(*options)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=16)
    if fd.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if fd.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=32 if fd.type == FieldDescriptor.TYPE_FLOAT else 64)
    if fd.enum_type is not None:
        return st.one_of(
            st.sampled_from(list(fd.enum_type.values_by_number)), st.integers(-3, 10_000)
        )
    low, high = _INT_RANGES[fd.type]
    return st.one_of(st.integers(low, high), st.sampled_from([low, 0, 1, high]))


def field_values(fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if fd.is_repeated and fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        key = scalar(fd.message_type.fields_by_name["key"], hostile=False)
        return st.dictionaries(key, one(fd.message_type.fields_by_name["value"], depth), max_size=3)
    item = one(fd, depth)
    if not fd.is_repeated:
        return item
    small = st.lists(item, max_size=3)
    if depth > 0:
        return small
    # Only at the top and of plain items: a huge list of huge strings or lists would
    # exceed the 4 MiB message limit, which gRPC enforces before any handler runs.
    return st.one_of(small, one(fd, depth=2).map(lambda v: [v] * HUGE_LIST))


def one(fd: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if fd.message_type is None:
        return scalar(fd, hostile=depth <= 1)
    if fd.message_type.full_name in TIMES:
        return st.fixed_dictionaries(
            {
                "seconds": st.one_of(st.sampled_from(HOSTILE_SECONDS), st.integers(0, 2**33)),
                "nanos": st.one_of(st.sampled_from(HOSTILE_NANOS), st.integers(0, 10**9 - 1)),
            }
        )
    if depth >= 3:
        return st.just({})
    return message(fd.message_type, depth + 1)


def message(desc: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {}, optional={fd.name: field_values(fd, depth) for fd in desc.fields}
    )


def build(msg: Message, values: dict[str, Any]) -> Message:
    for name, value in values.items():
        fd = msg.DESCRIPTOR.fields_by_name[name]
        target = getattr(msg, name)
        if (
            fd.is_repeated
            and fd.message_type is not None
            and fd.message_type.GetOptions().map_entry
        ):
            for key, item in value.items():
                if isinstance(item, dict):
                    build(target[key], item)
                else:
                    target[key] = item
        elif fd.is_repeated and fd.message_type is not None:
            for item in value:
                build(target.add(), item)
        elif fd.is_repeated:
            target.extend(value)
        elif fd.message_type is not None:
            build(target, value)
            target.SetInParent()
        else:
            setattr(msg, name, value)
    return msg


def encode(msg: Message) -> bytes:
    raw = msg.SerializeToString()
    return raw.replace(BAD_UTF8.encode(), b"\xff" * len(BAD_UTF8))


@pytest.fixture(scope="module")
def sink() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, sink: Receiver) -> Iterator[LocalCluster]:
    workdir = tmp_path_factory.mktemp("fuzz")
    config = {
        **FAST_CONTROLLER,
        # The fuzzer's calls are the test, not a flood to limit.
        "limits": {"agent_calls_per_second": 100_000.0, "agent_burst": 100_000},
        "webhooks": [{"name": "json", "kind": "json", "url": sink.url("/json"), "secret": "s"}],
    }
    c = LocalCluster(workdir, config, pki=workdir / "pki")
    c.start_controller()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def channels(cluster: LocalCluster) -> Iterator[dict[str, grpc.Channel]]:
    opened = {
        "AdminService": cluster.channel("admin", "fuzzer"),
        "AgentService": cluster.channel("agent", HOST),
    }
    yield opened
    for channel in opened.values():
        channel.close()


# Events the controller accepted during the run: each must show exactly as it was sent.
ACCEPTED: dict[str, pb.Event] = {}


def snapshot(cluster: LocalCluster) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, leaving out the audit entries of refusals and the
    webhook sink's progress (it moves on by itself, after events accepted before)."""
    db = sqlite3.connect(cluster.workdir / "controller-data" / "controller.db", timeout=10)
    try:
        tables = [
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
            if not name.startswith("webhook_")
        ]
        return {
            table: db.execute(
                f"SELECT * FROM {table}" + (" WHERE allowed = 1" if table == "audit" else "")
            ).fetchall()
            for table in tables
        }
    finally:
        db.close()


def call(channel: grpc.Channel, method: MethodDescriptor, raw: bytes) -> grpc.RpcError | None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.server_streaming:
            stream = channel.unary_stream(path)(raw, timeout=0.5)
            try:
                for _ in stream:
                    pass
            finally:
                # Ended here, not by the garbage collector: a sync gRPC call finalised
                # at a random point (inside a hypothesis draw) can deadlock on its thread.
                stream.cancel()
        else:
            channel.unary_unary(path)(raw, timeout=10)
    except grpc.RpcError as exc:
        return exc
    return None


def implemented(method: MethodDescriptor, api: type, module: Any) -> bool:
    base = getattr(module, f"{method.containing_service.name}Servicer")
    return getattr(api, method.name) is not getattr(base, method.name)


@pytest.mark.parametrize(("method", "api", "module"), METHODS, ids=[m.name for m, _, _ in METHODS])
def test_fuzz(cluster, channels, method, api, module):
    channel = channels[method.containing_service.name]
    fields = {fd.name for fd in method.input_type.fields} | {"request", "role"}
    request_class = GetMessageClass(method.input_type)
    examples = STREAM_EXAMPLES if method.server_streaming else EXAMPLES

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,
    )
    @given(message(method.input_type))
    def check(values: dict[str, Any]) -> None:
        raw = encode(build(request_class(), values))
        before = snapshot(cluster)
        error = call(channel, method, raw)
        assert cluster.procs[0].alive(), cluster.procs[0].log_text()[-3000:]
        if error is None:
            return
        code, detail = error.code(), error.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and method.server_streaming:
            return  # an accepted stream, still open
        if code == grpc.StatusCode.UNIMPLEMENTED and not implemented(method, api, module):
            return
        refused_without_a_trace(cluster, before, code, detail, fields)

    check()
    with cluster.channel() as probe:
        status = health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING


def refused_without_a_trace(
    cluster: LocalCluster,
    before: dict[str, list[tuple[Any, ...]]],
    code: grpc.StatusCode,
    detail: str,
    fields: set[str],
) -> None:
    """A deliberate refusal (never UNKNOWN) naming the field at fault, that changed
    nothing but the audit entry of a refusal."""
    assert code in REFUSALS, (code, detail)
    if code in NAMED:
        named = re.match(r"[a-z_]+", detail)
        assert named and named[0] in fields, detail
    assert snapshot(cluster) == before, (code, detail)


def valid_requests(now: Timestamp) -> dict[str, Message]:
    """A request of each AgentService method the controller takes as it is, every field
    filled in (so there is something deep to spoil), and an AdminService one with a
    filter."""
    events = [kernel_event(seq, ["INFO: task imapd:42 blocked"], host=HOST) for seq in (1, 2)]
    for event in events:
        event.evidence.stuck_tasks.add(pid=42, comm="imapd", wchan="fsync", stack=["f"])
        event.evidence.stuck_tasks[0].blocked_for.seconds = 41
        event.mount = "/srv/mail"
        event.state = pb.HEALTH_STATE_LOCKED
    return {
        "Register": agent_pb.RegisterRequest(
            host_id=HOST,
            boot_id="boot-1",
            agent_version="1.0",
            mounts=[
                pb.Mount(
                    path="/srv/mail",
                    fs_type="xfs",
                    device="/dev/loop3",
                    dev_id="7:3",
                    options=["rw"],
                    backing_devices=["loop3"],
                    fs_features={"crc": "1"},
                )
            ],
            inventory=pb.Inventory(
                kernel_release="6.1.0",
                kernel_version="#1 SMP",
                os_release="Debian",
                boot_time=now,
                fs_tools={"xfsprogs": "6.1.0"},
                agent_version="1.0",
                architecture="x86_64",
            ),
            agent_started_at=now,
        ),
        "Heartbeat": agent_pb.HeartbeatRequest(
            host_id=HOST,
            boot_id="boot-1",
            mounts=[
                pb.MountHealth(
                    mount="/srv/mail",
                    state=pb.HEALTH_STATE_OK,
                    since=now,
                    reason="probes pass",
                    last_probe_latency=Duration(nanos=5_000_000),
                    probe_in_flight_for=Duration(seconds=1),
                )
            ],
            sources=[pb.SourceHealth(source="kmsg", running=True, last_tick=now, detail="ok")],
            spool_depth=3,
            sent_at=now,
        ),
        "ReportEvents": agent_pb.ReportEventsRequest(host_id=HOST, events=events),
        "ReportCommandResult": agent_pb.ReportCommandResultRequest(
            result=pb.CommandResult(
                command_id=new_ulid(),
                host_id=HOST,
                status=pb.COMMAND_STATUS_SUCCEEDED,
                output_tail="done",
                duration=Duration(seconds=2),
                finished_at=now,
            )
        ),
        "ListEvents": admin_pb.ListEventsRequest(
            filter=admin_pb.EventFilter(min_severity=pb.SEVERITY_INFO, mount="/srv/mail"),
            page_size=10,
        ),
    }


def leaves(msg: Message, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The paths of every set field of `msg`, to the scalars (list items and map
    entries included; the seconds and nanos of times)."""
    out: list[tuple[str | int, ...]] = []
    for fd, value in msg.ListFields():
        here = (*path, fd.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            out.append(here)  # spoilt by adding an entry
        elif fd.message_type is not None and fd.is_repeated:
            for i, item in enumerate(value):
                out += leaves(item, (*here, i))
        elif fd.message_type is not None:
            out += leaves(value, here)
        else:
            out.append(here)
    return out


def hostile(fd: FieldDescriptor) -> st.SearchStrategy[Any]:
    """A value of the field's type from just past some limit (or a valid one)."""
    if fd.containing_type.full_name in TIMES:
        return st.sampled_from(HOSTILE_NANOS if fd.name == "nanos" else HOSTILE_SECONDS)
    if fd.type == FieldDescriptor.TYPE_STRING:
        return st.sampled_from(["", *HOSTILE_TEXT])
    if fd.enum_type is not None:
        return st.sampled_from([0, -1, 99, *fd.enum_type.values_by_number])
    return scalar(fd, hostile=True)


@st.composite
def spoilt(draw: st.DrawFn, name: str) -> tuple[Message, str, str]:
    """A valid request of `name` with one field made hostile; the top-level field that
    a refusal must name, and a description for failures."""
    request = valid_requests(Timestamp(seconds=int(time.time())))[name]
    if name == "ReportEvents" and draw(st.booleans()):
        events = request.events  # type: ignore[attr-defined]
        same = draw(st.booleans())
        if same:
            events[1].CopyFrom(events[0])
        else:
            events[1].id = events[0].id
        return request, "events", f"a second event with id {events[0].id} (same: {same})"
    path = draw(st.sampled_from(leaves(request)))
    parent: Any = request
    for step in path[:-1]:
        parent = parent[step] if isinstance(step, int) else getattr(parent, step)
    fd = parent.DESCRIPTOR.fields_by_name[path[-1]]
    target = getattr(parent, fd.name)
    if fd.message_type is not None:  # a map: a hostile key or value
        key_fd, value_fd = (
            fd.message_type.fields_by_name["key"],
            fd.message_type.fields_by_name["value"],
        )
        key, value = draw(hostile(key_fd)), draw(hostile(value_fd))
        target[key] = value
    elif fd.is_repeated:
        target.append(draw(hostile(fd)))
    else:
        setattr(parent, fd.name, draw(hostile(fd)))
    return request, str(path[0]), ".".join(str(p) for p in path)


DEEP = ["Register", "Heartbeat", "ReportEvents", "ReportCommandResult", "ListEvents"]


@pytest.mark.parametrize("name", DEEP)
def test_fuzz_deep(cluster, channels, name):
    """One hostile field deep in a valid request: refused naming it, or stored and
    shown as sent."""
    method = next(m for m, _, _ in METHODS if m.name == name)
    channel = channels[method.containing_service.name]

    @settings(
        max_examples=DEEP_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        derandomize=True,
    )
    @given(spoilt(name))
    def check(case: tuple[Message, str, str]) -> None:
        request, field, where = case
        before = snapshot(cluster)
        error = call(channel, method, encode(request))
        assert cluster.procs[0].alive(), cluster.procs[0].log_text()[-3000:]
        if error is None:
            outcomes["stored"] += 1
            for event in getattr(request, "events", []):
                ACCEPTED[event.id] = event
            return
        outcomes["refused"] += 1
        code, detail = error.code(), error.details() or ""
        refused_without_a_trace(cluster, before, code, detail, {field, "request"})
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert detail.startswith((field, "request")), (where, detail)

    outcomes: Counter[str] = Counter()
    check()
    # Both ways were taken (a result for a command never sent is always refused).
    assert outcomes["refused"] and (outcomes["stored"] or name == "ReportCommandResult")


def test_after_the_fuzz_every_listing_prints_as_json_and_webhooks_still_deliver(
    cluster: LocalCluster, channels, sink: Receiver
):
    """Nothing the fuzzing stored keeps a listing, `-o json` or a webhook from working."""
    for args in (
        ["hosts"],
        ["events", "--limit", "1000"],
        ["audit", "--limit", "0"],
        ["failover", "list"],
        ["incident", "list"],
        ["advisory", "list"],
        ["upgrade", "list"],
        ["webhooks", "dead-letters"],
    ):
        out = cluster.ctl("-o", "json", *args)
        assert out.returncode == 0, (args, out.stderr)
        json.loads(out.stdout)
    shown = json.loads(cluster.ctl("-o", "json", "events", "--limit", "1000").stdout)["events"]
    by_id = {e["id"]: e for e in shown}
    server_set = ("cursor", "received_at")
    for event_id, sent in ACCEPTED.items():
        got = {k: v for k, v in by_id[event_id].items() if k not in server_set}
        assert got == {k: v for k, v in to_dict(sent).items() if k not in server_set}, event_id
    last = kernel_event(10**9, host=HOST)
    last.severity = pb.SEVERITY_CRITICAL
    stub = agent_grpc.AgentServiceStub(channels["AgentService"])
    stub.ReportEvents(agent_pb.ReportEventsRequest(host_id=HOST, events=[last]), timeout=10)
    wait_for(
        lambda: any(b["id"] == last.id for b in sink.bodies("/json")),
        30,
        "the last event at the webhook receiver",
    )


def test_descriptor_strategies_cover_both_services():
    names = {m.name for m, _, _ in METHODS}
    assert {"ApproveFailover", "ReportEvents", "WatchEvents", "Commands"} <= names
    assert len(names) == sum(len(s.methods) for s, _, _ in SERVICES)
