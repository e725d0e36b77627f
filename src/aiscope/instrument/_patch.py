"""Wrapping SDK methods: on their classes (``instrument()``) or on one client (``wrap()``).

A wrapper keeps the SDK method's signature and return value: it starts the
record, calls the original, and hands the result to :func:`end_call`. The
original function is kept on the wrapper (``__aiscope_original__``), so removal
puts back the very same object.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiscope.instrument._calls import (
    atake_limit,
    end_call,
    inside_call,
    settle_limit,
    start_call,
    stream_kwargs,
    take_limit,
)
from aiscope.instrument._endpoint import Endpoint
from aiscope.instrument._streams import finish_call
from aiscope.resilience.ratelimit import RateLimiterLike
from aiscope.scope import Scope

ORIGINAL = "__aiscope_original__"


@dataclass(slots=True)
class Settings:
    """Process-wide instrumentation options (set by :func:`aiscope.instrument`)."""

    include_usage: bool = False
    #: the rate limiter instrumented calls wait for (None: none)
    rate_limiter: RateLimiterLike | None = None


settings = Settings()


@dataclass(frozen=True, slots=True)
class Target:
    """A method to wrap: ``cls.name``, async or not, recorded as ``endpoint``.

    ``kind`` is ``"call"`` for methods that send the request themselves and
    ``"stream_manager"`` for anthropic's ``messages.stream``, which returns a
    manager that sends on ``__enter__``.
    """

    cls: type
    name: str
    endpoint: Endpoint
    is_async: bool
    kind: str = "call"


def is_wrapped(fn: Any) -> bool:
    """True if ``fn`` is an aiscope wrapper."""
    return hasattr(fn, ORIGINAL)


def _include_usage(scope_settings: Settings | None) -> bool:
    return (scope_settings or settings).include_usage


def wrap_call(
    original: Callable[..., Any],
    ep: Endpoint,
    *,
    is_async: bool,
    resource: Any = None,
    scope: Scope | None = None,
    options: Settings | None = None,
    rate_limiter: RateLimiterLike | None = None,
) -> Callable[..., Any]:
    """A wrapper for an SDK method that sends one request (``create``).

    ``resource`` None: ``original`` is a class's function and ``args[0]`` is the resource.
    ``rate_limiter`` None: the process-wide one (``settings.rate_limiter``), if any.
    """
    if is_async:

        @functools.wraps(original)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            if inside_call.get():
                return await original(*args, **kwargs)
            res = resource if resource is not None else (args[0] if args else None)
            call = start_call(ep, kwargs, res, scope)
            if call is None:
                return await original(*args, **kwargs)
            streaming = kwargs.get("stream") is True
            if streaming:
                kwargs = stream_kwargs(ep, kwargs, _include_usage(options))
            limiter = rate_limiter or settings.rate_limiter
            token = inside_call.set(True)
            try:
                taken = await atake_limit(limiter, ep, kwargs, scope)
                result = await original(*args, **kwargs)
            except BaseException as exc:
                finish_call(call, exc)
                raise
            finally:
                inside_call.reset(token)
            end_call(call, ep, kwargs, result, streaming=streaming, is_async=True)
            settle_limit(limiter, taken, call)
            return result

        setattr(awrapper, ORIGINAL, original)
        return awrapper

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if inside_call.get():
            return original(*args, **kwargs)
        res = resource if resource is not None else (args[0] if args else None)
        call = start_call(ep, kwargs, res, scope)
        if call is None:
            return original(*args, **kwargs)
        streaming = kwargs.get("stream") is True
        if streaming:
            kwargs = stream_kwargs(ep, kwargs, _include_usage(options))
        limiter = rate_limiter or settings.rate_limiter
        token = inside_call.set(True)
        try:
            taken = take_limit(limiter, ep, kwargs, scope)
            result = original(*args, **kwargs)
        except BaseException as exc:
            finish_call(call, exc)
            raise
        finally:
            inside_call.reset(token)
        end_call(call, ep, kwargs, result, streaming=streaming, is_async=False)
        settle_limit(limiter, taken, call)
        return result

    setattr(wrapper, ORIGINAL, original)
    return wrapper


# anthropic's stream managers keep the request to send in a name-mangled attribute.
_SYNC_REQUEST = "_MessageStreamManager__api_request"
_ASYNC_REQUEST = "_AsyncMessageStreamManager__api_request"


def wrap_stream_manager(
    original: Callable[..., Any],
    ep: Endpoint,
    *,
    is_async: bool,
    resource: Any = None,
    scope: Scope | None = None,
    rate_limiter: RateLimiterLike | None = None,
) -> Callable[..., Any]:
    """A wrapper for anthropic's ``messages.stream``: the manager it returns is the
    SDK's own; only the request it sends on ``__enter__`` is observed (so a budget
    refusal comes from the ``with`` line, before anything is sent)."""

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        manager = original(*args, **kwargs)
        if inside_call.get():
            return manager
        res = resource if resource is not None else (args[0] if args else None)
        attr = _ASYNC_REQUEST if is_async else _SYNC_REQUEST
        request = getattr(manager, attr, None)
        if request is None:
            return manager  # an SDK version aiscope does not know: leave it alone
        limiter = rate_limiter or settings.rate_limiter
        if is_async:
            observed = _observed_async_request(request, ep, kwargs, res, scope, limiter)
            setattr(manager, attr, observed)
        else:
            setattr(manager, attr, _observed_request(request, ep, kwargs, res, scope, limiter))
        return manager

    setattr(wrapper, ORIGINAL, original)
    return wrapper


def _observed_request(
    request: Callable[[], Any], ep: Endpoint, kwargs: dict[str, Any], res: Any,
    scope: Scope | None, limiter: RateLimiterLike | None,
) -> Callable[[], Any]:  # fmt: skip
    def send() -> Any:
        call = start_call(ep, kwargs, res, scope)
        if call is None:
            return request()
        try:
            take_limit(limiter, ep, kwargs, scope)
            raw = request()
        except BaseException as exc:
            finish_call(call, exc)
            raise
        end_call(call, ep, kwargs, raw, streaming=True, is_async=False)
        return raw

    return send


async def _observed_async_request(
    request: Any, ep: Endpoint, kwargs: dict[str, Any], res: Any,
    scope: Scope | None, limiter: RateLimiterLike | None,
) -> Any:  # fmt: skip
    try:
        call = start_call(ep, kwargs, res, scope)
    except BaseException:
        request.close()  # the SDK's coroutine will never run: no "never awaited" warning
        raise
    if call is None:
        return await request
    try:
        await atake_limit(limiter, ep, kwargs, scope)
    except BaseException as exc:
        request.close()  # refused: the SDK's coroutine never runs
        finish_call(call, exc)
        raise
    try:
        raw = await request
    except BaseException as exc:
        finish_call(call, exc)
        raise
    end_call(call, ep, kwargs, raw, streaming=True, is_async=True)
    return raw


def make_wrapper(
    target: Target,
    original: Callable[..., Any],
    *,
    resource: Any = None,
    scope: Scope | None = None,
    rate_limiter: RateLimiterLike | None = None,
) -> Callable[..., Any]:
    """The wrapper for ``target`` around ``original``."""
    wrapper = wrap_stream_manager if target.kind == "stream_manager" else wrap_call
    return wrapper(
        original,
        target.endpoint,
        is_async=target.is_async,
        resource=resource,
        scope=scope,
        rate_limiter=rate_limiter,
    )
