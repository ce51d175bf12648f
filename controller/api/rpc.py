"""Shared plumbing for the servicers: the one place a deliberate error becomes a gRPC
status. Each `hangwatch.errors` class names its code; its message is the detail."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc

from hangwatch.errors import HangwatchError

Ctx = grpc.aio.ServicerContext[Any, Any]
Req = TypeVar("Req")
Resp = TypeVar("Resp")


async def abort(context: Ctx, error: HangwatchError) -> NoReturn:
    """Ends the call with the error's status code and message."""
    await context.abort(grpc.StatusCode[error.code], str(error))
    raise AssertionError("unreachable") from error


def unary(
    fn: Callable[[Any, Req, Ctx], Awaitable[Resp]],
) -> Callable[[Any, Req, Ctx], Awaitable[Resp]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: Ctx) -> Resp:
        try:
            return await fn(self, request, context)
        except HangwatchError as exc:
            await abort(context, exc)

    return wrapper


def streaming(
    fn: Callable[[Any, Req, Ctx], AsyncIterator[Resp]],
) -> Callable[[Any, Req, Ctx], AsyncIterator[Resp]]:
    @functools.wraps(fn)
    async def wrapper(self: Any, request: Req, context: Ctx) -> AsyncIterator[Resp]:
        try:
            async for item in fn(self, request, context):
                yield item
        except HangwatchError as exc:
            await abort(context, exc)

    return wrapper
