"""The exceptions hangwatch raises on purpose, one tree so callers catch by meaning.

Each class carries the gRPC status code a call answers with when a handler lets it
escape (`code`); `controller.api.rpc` does that mapping, for every kind of call.
Each message names what is wrong and where (the field, the failover, the plan).

HangwatchError              UNKNOWN              base of every deliberate error
├── ConfigError             FAILED_PRECONDITION  a config file, flag or environment value is
│   │                                            wrong (a program exits 2)
│   └── AddressError                             an address is malformed or not allowed
├── TlsError                                     certificates or keys cannot be used
│                                                (hangwatch.tls)
├── StartupError                                 the program cannot start: its address or data
│   │                                            dir is held by another process (exit 2)
│   └── StoreUnusable                            the store is damaged, empty or not ours
├── StoreFull               RESOURCE_EXHAUSTED   a write refused for lack of space: nothing of
│                                                it was stored; retried, it succeeds later
├── Invalid                 INVALID_ARGUMENT     a request field is wrong: "field: problem"
├── NotFound                NOT_FOUND            the request names something that does not exist
├── AlreadyExists           ALREADY_EXISTS       the request would create something that exists
├── PermissionDenied        PERMISSION_DENIED    the caller's role or certificate does not allow
│                                                the call (audited)
├── OverLimit               RESOURCE_EXHAUSTED   the caller is over its rate limit
├── Refused                 FAILED_PRECONDITION  the state of things does not allow the request
│   ├── TransitionRefused                        a failover's state does not allow the step
│   ├── ProposalRefused                          the group cannot fail over as asked
│   ├── GroupBusy                                a new failover of a group that has one open
│   ├── StaleFailover                            a failover step written from a record that
│   │                                            changed since it was read
│   ├── PolicyHold                               an automatic approval the storm limits no
│   │                                            longer allow (checked as it is written)
│   └── UpgradeRefused                           an upgrade plan's state does not allow the change
├── StoreUnavailable        UNAVAILABLE          the shared store (etcd) cannot be reached now
├── NotLeader               UNAVAILABLE          a write only the leader may make, from a
│                                                controller that is not (or no longer) leader
└── DeliveryError           UNAVAILABLE          a webhook receiver did not take an event
    ├── DeliveryRefused                          it said no for good: no retry
    └── DeliveryRetryable                        worth another attempt (network, 429, 5xx)
"""

from __future__ import annotations

from typing import ClassVar


class HangwatchError(Exception):
    """Base of every error hangwatch raises deliberately."""

    # The gRPC status code's name (grpc.StatusCode[code]): kept as text so that pure
    # modules raising these errors do not import grpc.
    code: ClassVar[str] = "UNKNOWN"


class ConfigError(HangwatchError):
    """A configuration value is wrong; the message names where and which key."""

    # The server must be set up differently before the call can succeed.
    code = "FAILED_PRECONDITION"


class AddressError(ConfigError):
    """An address cannot be parsed or is not allowed for this transport."""


class Invalid(HangwatchError):
    """A request field is wrong: the message is "field: problem", so a caller knows what
    to fix."""

    code = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotFound(HangwatchError):
    """The request names a host, failover, plan or other record that does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(HangwatchError):
    """The request would create a record whose name or id is taken."""

    code = "ALREADY_EXISTS"


class PermissionDenied(HangwatchError):
    """The caller's role, or the host its certificate proves, does not allow the call."""

    code = "PERMISSION_DENIED"


class OverLimit(HangwatchError):
    """The caller makes more calls than its rate limit allows."""

    code = "RESOURCE_EXHAUSTED"


class Refused(HangwatchError):
    """The request is well formed but the state of things does not allow it; the message
    says why."""

    code = "FAILED_PRECONDITION"


class TransitionRefused(Refused):
    """A failover's state does not allow the step asked for (approve, reject, cancel,
    confirm-fenced)."""


class ProposalRefused(Refused):
    """The group cannot fail over as asked: one is open already, or no target is
    eligible (an ineligible one needs force)."""


class GroupBusy(Refused):
    """A new failover for a group that already has one open: refused, atomically, so an
    automatic proposal and a person's can never both go ahead."""


class StaleFailover(Refused):
    """A failover step written from a record that changed since it was read: refused, so
    nobody's decision is silently undone."""


class PolicyHold(Refused):
    """An automatic approval that the storm limits no longer allow, found in the
    approval's own transaction: the proposal stays PROPOSED for a later pass."""


class UpgradeRefused(Refused):
    """An upgrade plan's state, or its hosts', does not allow the change asked for."""


class StoreUnavailable(HangwatchError):
    """No member of the shared store answered in time: the call changed nothing it can
    know of, and may be tried again (the message names each member and its error)."""

    code = "UNAVAILABLE"


class NotLeader(HangwatchError):
    """A write only the leader may make (a failover step, a plan, a webhook cursor),
    refused because this controller does not hold leadership, or held it in a term that
    has ended: a paused or partitioned ex-leader changes nothing."""

    code = "UNAVAILABLE"


class DeliveryError(HangwatchError):
    """A webhook receiver did not take an event."""

    code = "UNAVAILABLE"


class DeliveryRefused(DeliveryError):
    """The receiver said no for good (a 4xx other than 429, a redirect): no retry."""


class DeliveryRetryable(DeliveryError):
    """Worth another attempt: a network error, a timeout, 429 or 5xx."""


class StartupError(HangwatchError):
    """The program cannot start with what it was given; the message says what to do."""


class StoreUnusable(StartupError):
    """The store cannot be opened as it is (damaged, empty, not ours): the message names
    the file and the way out; the controller does not start."""


class StoreFull(HangwatchError):
    """A write refused for lack of space: nothing of it was stored, and the same write
    succeeds once space is freed."""

    code = "RESOURCE_EXHAUSTED"
