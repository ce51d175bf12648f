"""Retrying calls to the controller: exponential backoff with jitter, capped, for ever.

A certificate the controller refuses waits the longest backoff straight away.

Jitter keeps a fleet of agents from reconnecting in lock-step after a controller
restart; the cap keeps a long outage from stretching the first retry after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import grpc
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_random_exponential

from agent.config import ReconnectSettings
from agent.link.channel import CertificateRefused

log = logging.getLogger(__name__)


def retrying(
    settings: ReconnectSettings,
    what: str,
    on_retry: Callable[[], None] | None = None,
    final: Callable[[grpc.aio.AioRpcError], bool] = lambda _: False,
) -> AsyncRetrying:
    """Retries gRPC failures of `what`, logging each; `on_retry` runs before each wait.

    Failures `final` picks out are answers, not outages: they are raised at once.
    """

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry()
        exc = state.outcome.exception() if state.outcome else None
        detail = (
            f"{exc.code().name} {exc.details()}"
            if isinstance(exc, grpc.aio.AioRpcError)
            else str(exc)
        )
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s failed (attempt %d): %s; retrying in %.1fs",
            what,
            state.attempt_number,
            detail,
            wait,
        )

    exponential = wait_random_exponential(
        multiplier=settings.initial_backoff_seconds, max=settings.max_backoff_seconds
    )

    def wait(state: RetryCallState) -> float:
        # A refused certificate does not fix itself in a second: only a new one helps.
        if state.outcome is not None and isinstance(state.outcome.exception(), CertificateRefused):
            return settings.max_backoff_seconds
        return float(exponential(state))

    return AsyncRetrying(
        wait=wait,
        retry=retry_if_exception(lambda e: isinstance(e, grpc.aio.AioRpcError) and not final(e)),
        before_sleep=before_sleep,
        reraise=True,
    )
