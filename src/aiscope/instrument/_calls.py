"""Starting and ending one SDK call's record around the SDK's own method.

A wrapper (see :mod:`aiscope.instrument._patch`) calls :func:`start_call` before
the SDK sends anything — this is where a budget in block mode refuses — and
:func:`end_call` with whatever the SDK returned: a response, a stream (watched
until it ends), or a raw-response object. Nothing here raises into the
application except :class:`~aiscope.BudgetExceededError`.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from aiscope.capture import LLMCall, approx_prompt_tokens, approx_tokens, estimate_tokens
from aiscope.cost.budget import BudgetExceededError
from aiscope.instrument._endpoint import Endpoint, count
from aiscope.instrument._raw import observe_raw
from aiscope.instrument._streams import finish_call, observe_stream
from aiscope.record import consistent_counts
from aiscope.resilience.ratelimit import RateLimiterLike
from aiscope.scope import Scope, current_scope
from aiscope.sink import RATE_LIMIT_WAIT

log = logging.getLogger("aiscope.instrument")

#: True while an instrumented SDK method runs, so a client that is both
#: wrapped and globally instrumented (or an SDK helper calling another
#: instrumented method) is recorded once.
inside_call: ContextVar[bool] = ContextVar("aiscope_inside_sdk_call", default=False)


_servers: weakref.WeakKeyDictionary[Any, tuple[Any, str | None, int | None]] = (
    weakref.WeakKeyDictionary()
)


def _server(resource: Any) -> tuple[str | None, int | None]:
    """The host and port a resource's client sends to (cached per client and base URL)."""
    client = getattr(resource, "_client", None)
    if client is None:
        return None, None
    url = getattr(client, "_base_url", None)
    try:
        cached = _servers.get(client)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and url is not None and cached[0] is url:
        return cached[1], cached[2]
    if url is None:
        url = getattr(client, "base_url", None)
    host = getattr(url, "host", None)
    if not isinstance(host, str) or not host:
        return None, None
    port = getattr(url, "port", None)
    if not isinstance(port, int):
        port = 443 if getattr(url, "scheme", "") == "https" else 80
    with contextlib.suppress(TypeError):
        _servers[client] = (url, host, port)
    return host, port


def start_call(
    ep: Endpoint, kwargs: Mapping[str, Any], resource: Any, scope: Scope | None
) -> LLMCall | None:
    """Begin the call's record (raises BudgetExceededError in block mode); None if
    aiscope cannot record it (the call then goes ahead unobserved)."""
    try:
        model = kwargs.get("model")
        if not isinstance(model, str) or not model:
            model = "unknown"
        active = scope if scope is not None else current_scope()
        est_in, max_out = 0, None
        tracker = active.cost_tracker
        # The prompt is only read when a budget may refuse on it: it is the costly part.
        if tracker is not None and tracker.mode == "block":
            est_in, max_out = request_estimate(ep, kwargs)
        call = LLMCall(
            model,
            ep.provider,
            ep.operation,
            input_tokens=est_in,
            max_output_tokens=max_out,
            scope=active,
        )
        server = _server(resource)
    except Exception:
        log.warning("aiscope could not start recording an SDK call", exc_info=True)
        return None
    try:
        call.__enter__()
    except BudgetExceededError:
        raise
    except Exception:
        log.warning("aiscope could not start recording an SDK call", exc_info=True)
        return None
    call.server_address, call.server_port = server  # after __enter__, which resets the call
    if ep.input_messages is not None and call.captures_content:
        try:
            call.set_input(ep.input_messages(kwargs))
        except Exception:
            log.debug("aiscope could not read an SDK call's messages", exc_info=True)
    return call


def request_estimate(ep: Endpoint, kwargs: Mapping[str, Any]) -> tuple[int, int | None]:
    """The prompt's token estimate and the request's output cap (None: not set)."""
    est_in = estimate_tokens(ep.prompt_text(kwargs))
    for key in ep.max_output_keys:
        value = kwargs.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return est_in, value
    return est_in, None


def _limiter_tokens(ep: Endpoint, kwargs: Mapping[str, Any]) -> int:
    """Tokens a rate limiter takes up front, as AiClient's: the prompt's estimate plus
    the output cap."""
    try:
        est_in, max_out = request_estimate(ep, kwargs)
    except Exception:
        log.warning("aiscope could not estimate an SDK call's tokens", exc_info=True)
        return 0
    return est_in + (max_out or 0)


def _count_wait(ep: Endpoint, scope: Scope | None, waited: float) -> None:
    # before the call starts: an event of the scope outside any call
    if waited > 0:
        (scope if scope is not None else current_scope()).event(
            None, RATE_LIMIT_WAIT, {"provider": ep.provider, "seconds": waited}
        )


def take_limit(
    limiter: RateLimiterLike | None, ep: Endpoint, kwargs: Mapping[str, Any], scope: Scope | None
) -> int:
    """Wait for the rate limiter (RateLimitExceededError: refused); the tokens taken."""
    if limiter is None:
        return 0
    tokens = _limiter_tokens(ep, kwargs)
    _count_wait(ep, scope, limiter.acquire(tokens))
    return tokens


async def atake_limit(
    limiter: RateLimiterLike | None, ep: Endpoint, kwargs: Mapping[str, Any], scope: Scope | None
) -> int:
    """:func:`take_limit` for asyncio."""
    if limiter is None:
        return 0
    tokens = _limiter_tokens(ep, kwargs)
    _count_wait(ep, scope, await limiter.acquire_async(tokens))
    return tokens


def settle_limit(limiter: RateLimiterLike | None, taken: int, call: LLMCall) -> None:
    """Correct the limiter's estimate with the usage of a call recorded now (a stream,
    recorded when it ends, keeps the estimate)."""
    record = call.record
    if limiter is None or record is None or record.status != "ok":
        return
    try:
        limiter.adjust(taken, record.usage.total_tokens)
    except Exception:
        log.warning("aiscope could not correct a rate limiter", exc_info=True)


def stream_kwargs(ep: Endpoint, kwargs: dict[str, Any], include_usage: bool) -> dict[str, Any]:
    """The request's arguments, with OpenAI's ``include_usage`` added when asked for."""
    if not (include_usage and ep.usage_option):
        return kwargs
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping) and "include_usage" in options:
        return kwargs  # the application chose: keep it
    merged = (
        {**options, "include_usage": True}
        if isinstance(options, Mapping)
        else {"include_usage": True}
    )
    return {**kwargs, "stream_options": merged}


def _prompt_estimate(ep: Endpoint, kwargs: Mapping[str, Any]) -> int:
    """The input tokens recorded for a stream that reports no usage: a best estimate
    from the prompt's text and its messages (not the budget's upper bound)."""
    try:
        return approx_prompt_tokens(ep.prompt_text(kwargs), _messages(kwargs))
    except Exception:
        return 0


def _messages(kwargs: Mapping[str, Any]) -> int:
    """How many messages a request's prompt has (a system prompt or instructions is one)."""
    given = kwargs.get("messages", kwargs.get("input"))
    n = len(given) if isinstance(given, list | tuple) else 1 if isinstance(given, str) else 0
    return n + (1 if kwargs.get("system") or kwargs.get("instructions") else 0)


_raw_types: dict[type, bool] = {}


def _is_raw(result: Any) -> bool:
    """True for the SDKs' raw-response wrappers (``with_raw_response``), which carry
    the ``http_response``. Cached per class: on a pydantic response model, looking
    for a missing attribute raises and catches an AttributeError every time."""
    cls = type(result)
    raw = _raw_types.get(cls)
    if raw is None:
        raw = _raw_types[cls] = hasattr(result, "http_response")
    return raw


def end_call(
    call: LLMCall,
    ep: Endpoint,
    kwargs: Mapping[str, Any],
    result: Any,
    *,
    streaming: bool,
    is_async: bool,
) -> None:
    """Record ``result`` on ``call``: now for a response, when it ends for a stream."""
    try:
        if _is_raw(result):  # with_raw_response / with_streaming_response
            call.set_response(request_id=result.http_response.headers.get(ep.request_id_header))
            if type(result).__name__ != "LegacyAPIResponse":
                # with_streaming_response: the body is the application's to read; it is
                # recorded when the application parses it, or closes the response.
                stream_reader = (
                    ep.new_reader(_prompt_estimate(ep, kwargs))
                    if streaming and ep.new_reader is not None
                    else None
                )
                observe_raw(result, call, ep, stream_reader, is_async=is_async)
                return
            result = result.parse()  # cached by the SDK: the application gets the same object
        if streaming and ep.new_reader is not None:
            call.streaming = True
            response = getattr(result, "response", None)
            headers = getattr(response, "headers", None)
            if headers is not None:
                call.upstream_request_id = headers.get(ep.request_id_header)
            reader = ep.new_reader(_prompt_estimate(ep, kwargs))
            if observe_stream(result, call, reader, is_async=is_async):
                return
            finish_call(call, None)
            return
        ep.read_response(call, result)
    except Exception:
        log.warning("aiscope could not read an SDK response", exc_info=True)
    finish_call(call, None)


def set_counts(
    call: LLMCall,
    input_tokens: Any,
    output_tokens: Any,
    cache_read: Any = 0,
    cache_write: Any = 0,
    reasoning: Any = 0,
    *,
    estimated: bool = False,
) -> None:
    """Set usage from SDK fields, clamping the parts so the record stays valid."""
    if consistent_counts(input_tokens, output_tokens, cache_read, cache_write, reasoning):
        # what the SDKs send: consistent counts, nothing to clamp
        call.set_usage(input_tokens, output_tokens, cache_read, cache_write, reasoning, estimated)
        return
    i, o = count(input_tokens), count(output_tokens)
    cr = min(count(cache_read), i)
    cw = min(count(cache_write), i - cr)
    call.set_usage(i, o, cr, cw, min(count(reasoning), o), estimated)


def set_estimated(call: LLMCall, input_tokens: int, texts: list[str]) -> None:
    """Usage for a stream that reported none: the prompt's estimate and the text seen,
    counted as the prompt is (:func:`~aiscope.capture.approx_tokens`)."""
    out = approx_tokens("".join(texts)) if texts else 0
    set_counts(call, input_tokens, out, estimated=True)


def request_id_of(model: Any) -> str | None:
    """The SDK's ``_request_id`` of a response model (read from pydantic's private
    attributes directly: ``getattr`` on a private name takes pydantic's slow path)."""
    private = getattr(model, "__pydantic_private__", None)
    rid = private.get("_request_id") if isinstance(private, dict) else None
    if rid is None and not isinstance(private, dict):
        rid = getattr(model, "_request_id", None)
    return rid if isinstance(rid, str) else None
