"""Hypothesis against a real controller process over mutual TLS: every request message
of AdminService and AgentService, built from its descriptor with hostile values
(oversized and invalid UTF-8 strings, huge repeated fields, out-of-range enums and
times). The controller never crashes, refuses with a code that says why and a detail
that names the field, and a refused request changes nothing in the store (except the
audit entry of a refusal)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from clusterkit import FAST_CONTROLLER
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.api.admin import AdminApi
from controller.api.agent import AgentApi
from hangwatch.ids import new_ulid
from hangwatch.v1 import admin_service_pb2, agent_service_pb2
from hangwatch.v1 import admin_service_pb2_grpc as admin_grpc
from hangwatch.v1 import agent_service_pb2_grpc as agent_grpc
from lab.localcluster import LocalCluster

HOST = "fuzz-agent"
# Replaced in the encoded request by as many 0xff bytes: invalid UTF-8 on the wire,
# which no protobuf library would let a client build.
BAD_UTF8 = "BAD-UTF8-MARKER"
OVERSIZED = 9000
HUGE_LIST = 1001
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
            options.append(st.just("é" * OVERSIZED))
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
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    workdir = tmp_path_factory.mktemp("fuzz")
    c = LocalCluster(workdir, dict(FAST_CONTROLLER), pki=workdir / "pki")
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


def snapshot(cluster: LocalCluster) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, leaving out the audit entries of refusals."""
    db = sqlite3.connect(cluster.workdir / "controller-data" / "controller.db", timeout=10)
    try:
        tables = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
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
    examples = 5 if method.server_streaming else 40

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
        assert code in REFUSALS, (code, detail)
        if code in NAMED:
            assert re.match(r"[a-z_]+", detail) and detail.split(": ")[0], detail
            assert re.match(r"[a-z_]+", detail)[0] in fields, detail  # type: ignore[index]
        assert snapshot(cluster) == before, (code, detail)

    check()
    with cluster.channel() as probe:
        status = health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING


def test_descriptor_strategies_cover_both_services():
    names = {m.name for m, _, _ in METHODS}
    assert {"ApproveFailover", "ReportEvents", "WatchEvents", "Commands"} <= names
    assert len(names) == sum(len(s.methods) for s, _, _ in SERVICES)
