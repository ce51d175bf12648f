"""Who may call what: one gate in front of every AdminService and AgentService call.

A server interceptor wraps each handler, so no method can forget a check:

- AdminService: the caller's role must reach the method's entry in ADMIN_ROLES
  (a test holds it to every method of the proto; a method missing from it needs
  admin);
- AgentService: the request's host id must be one the agent's certificate proves
  (its DNS SANs), and every call but the Commands stream is rate limited per host;
- every request passes `hangwatch.limits.check_request` (every field within the
  limits of its kind, times and enums valid, the message within its size), and a
  request that is not even valid protobuf (bad UTF-8) is INVALID_ARGUMENT, not UNKNOWN.

A refusal is a `hangwatch.errors` error, answered by `controller.api.rpc` like any
handler's; every PERMISSION_DENIED is audited (allowed=False) before it is answered,
a caller's repeats of one summarised per window (`controller.api.refusals`).
Over plaintext (--insecure, loopback) callers are admins and host ids unproven.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

from controller.api.identity import AGENT, Caller, Identify, set_caller
from controller.api.ratelimit import TokenBuckets
from controller.api.refusals import Audit, RefusalLog
from controller.api.rpc import abort
from controller.config import ACCESS_ROLES, LimitSettings
from hangwatch import limits
from hangwatch.errors import HangwatchError, Invalid, OverLimit, PermissionDenied
from hangwatch.v1 import admin_service_pb2, agent_service_pb2

ADMIN_SERVICE = admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
AGENT_SERVICE = agent_service_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name

VIEWER, OPERATOR, APPROVER, ADMIN = "viewer", "operator", "approver", "admin"
# The least role each AdminService method needs; every role can do what the ones
# before it in ACCESS_ROLES can.
ADMIN_ROLES: dict[str, str] = {
    # Reading.
    "ListHosts": VIEWER,
    "GetHost": VIEWER,
    "ListEvents": VIEWER,
    "WatchEvents": VIEWER,
    "ListGroups": VIEWER,
    "ListFailovers": VIEWER,
    "GetFailover": VIEWER,
    "ListMaintenance": VIEWER,
    "ListAdvisories": VIEWER,
    "ListAdvisoryDrafts": VIEWER,
    "GetUpgradePlan": VIEWER,
    "ListUpgradePlans": VIEWER,
    "ListIncidents": VIEWER,
    "GetIncident": VIEWER,
    "GetIncidentEvidence": VIEWER,
    "ListAudit": VIEWER,
    "VerifyAudit": VIEWER,
    "ListDeadLetters": VIEWER,
    # Starting things.
    "ProposeFailover": OPERATOR,
    "Switchover": OPERATOR,
    "SetMaintenance": OPERATOR,
    "SetAutomation": OPERATOR,
    "ClearHost": OPERATOR,
    # Deciding things.
    "ApproveFailover": APPROVER,
    "RejectFailover": APPROVER,
    "CancelFailover": APPROVER,
    "ConfirmFenced": APPROVER,
    "AckGroup": APPROVER,
    "AddAdvisory": APPROVER,
    "RemoveAdvisory": APPROVER,
    "AcceptAdvisoryDraft": APPROVER,
    "DismissAdvisoryDraft": APPROVER,
    "CreateUpgradePlan": APPROVER,
    "SetUpgradePlanState": APPROVER,
    "MarkUpgradeHost": APPROVER,
    "RetryDeadLetters": APPROVER,
    "RemoveHost": APPROVER,
}
# The field naming the host each AgentService request speaks for.
AGENT_HOSTS: dict[str, str] = {
    "Register": "host_id",
    "Heartbeat": "host_id",
    "ReportEvents": "host_id",
    "Commands": "host_id",
    "ReportCommandResult": "result.host_id",
}
# Every AgentService call but the stream: each one writes to the store (and a command
# result wakes the coordinator).
RATE_LIMITED = frozenset({"Register", "Heartbeat", "ReportEvents", "ReportCommandResult"})

if TYPE_CHECKING:  # generic in the stubs only
    Handler = grpc.RpcMethodHandler[Any, Any]


def host_of(method: str, request: Any) -> str:
    """The host an AgentService request speaks for."""
    value = request
    for part in AGENT_HOSTS[method].split("."):
        value = getattr(value, part)
    return str(value)


def allows(role: str, needed: str) -> bool:
    return role in ACCESS_ROLES and ACCESS_ROLES.index(role) >= ACCESS_ROLES.index(needed)


def audited(refusal: HangwatchError) -> bool:
    """Whether the gate writes a refusal to the audit log: a caller that may not make
    the call is worth keeping; a malformed or over-limit request is not."""
    return isinstance(refusal, PermissionDenied)


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request that did not parse, so the gate can answer it."""

    problem: str


class AccessGate(grpc.aio.ServerInterceptor):
    def __init__(self, identify: Identify, tls: bool, limits: LimitSettings, audit: Audit) -> None:
        self._identify = identify
        self._tls = tls
        self._refusals = RefusalLog(audit)
        self.buckets = TokenBuckets(limits.agent_calls_per_second, limits.agent_burst)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        if handler is None or service not in (ADMIN_SERVICE, AGENT_SERVICE):
            return handler
        return self._wrap(handler, service, method)

    def check(self, service: str, method: str, who: Caller, request: Any) -> None:
        """Raises PermissionDenied, Invalid or OverLimit when `who` may not make this
        call (pure, for tests too)."""
        if isinstance(request, Undecodable):
            raise Invalid("request", request.problem)
        if service == ADMIN_SERVICE:
            needed = ADMIN_ROLES.get(method, ADMIN)
            if not allows(who.role, needed):
                raise PermissionDenied(
                    f"role: {who.name} has the role {who.role!r}; {method} needs {needed}",
                )
        else:
            host = host_of(method, request)
            if self._tls and host not in who.hosts:
                proves = (
                    f"is for {', '.join(sorted(who.hosts))}"
                    if who.role == AGENT
                    else "is not an agent's"
                )
                raise PermissionDenied(
                    f"{AGENT_HOSTS[method]}: {host[:80]!r} refused: the client "
                    f"certificate {proves}",
                )
        limits.check_request(request)
        if method in RATE_LIMITED and service == AGENT_SERVICE:
            host = host_of(method, request)
            if not self.buckets.take(host):
                raise OverLimit(
                    f"{AGENT_HOSTS[method]}: {host[:80]!r} is over the limit of "
                    f"{self.buckets.rate:g} AgentService calls per second "
                    f"(burst {self.buckets.burst}); slow down"
                )

    async def _admit(self, service: str, method: str, request: Any, context: Any) -> Caller:
        who = self._identify(context)
        try:
            self.check(service, method, who, request)
        except HangwatchError as refusal:
            if audited(refusal):
                target = host_of(method, request)[:253] if service == AGENT_SERVICE else service
                await self._refusals.refused(who, method, target, refusal)
            await abort(context, refusal)
        return who

    def _wrap(self, handler: Handler, service: str, method: str) -> Handler:
        parse = _lenient(handler.request_deserializer)
        if handler.unary_unary is not None:
            behavior = handler.unary_unary

            async def unary(request: Any, context: Any) -> Any:
                set_caller(await self._admit(service, method, request, context))
                return await behavior(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=parse, response_serializer=handler.response_serializer
            )
        if handler.unary_stream is not None:
            stream: Any = handler.unary_stream

            async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
                set_caller(await self._admit(service, method, request, context))
                async for item in stream(request, context):
                    yield item

            return grpc.unary_stream_rpc_method_handler(
                streaming,
                request_deserializer=parse,
                response_serializer=handler.response_serializer,
            )
        raise TypeError(f"{service}/{method}: client streaming is not guarded")


def _lenient(parse: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """The handler's deserializer, answering bad bytes with Undecodable, not UNKNOWN."""
    assert parse is not None

    def lenient(raw: bytes) -> Any:
        try:
            return parse(raw)
        except DecodeError as exc:
            return Undecodable(f"not a valid message ({exc})")

    return lenient
