"""Routing and answering: from an incoming request to the outcome the server writes.

Paths are matched by suffix, so any base-URL prefix works (``/v1``,
``/openai/v1``, ``/api/v1``, none):

========================================  =========  ==========================
path (POST unless noted)                  format     endpoint
========================================  =========  ==========================
``…/chat/completions``                    OpenAI     ``chat.completions``
``…/responses``                           OpenAI     ``responses``
``…/embeddings``                          OpenAI     ``embeddings``
``…/messages``                            Anthropic  ``messages``
``…/messages/count_tokens``               Anthropic  ``count_tokens``
``…/models/{m}:generateContent``          Gemini     ``generateContent``
``…/models/{m}:streamGenerateContent``    Gemini     ``streamGenerateContent``
``…/models/{m}:countTokens``              Gemini     ``countTokens``
GET ``…/models``, ``…/models/{id}``       by headers ``models``, ``model``
========================================  =========  ==========================

A GET (and an unknown path's 404) answers in Gemini's format if the request has
``x-goog-api-key``, ``?key=`` or a ``/v1beta/`` path, in Anthropic's if it has
``anthropic-version`` or ``x-api-key``, else in OpenAI's.

Per request: authenticate, parse and validate the body, take the next fault
(model endpoints only: the six above that generate), then answer — an error
status, or a completion planned by :func:`aiscope.testing.plan.plan` and
written by the provider's wire module, with the fault's stream damage applied.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from aiscope.testing import _wire_anthropic as wire_anthropic
from aiscope.testing import _wire_gemini as wire_gemini
from aiscope.testing import _wire_openai as wire_openai
from aiscope.testing._frames import Frame, Headers, Incoming, Outcome, Rendered, corrupt, dumps
from aiscope.testing.config import Behavior, Fault
from aiscope.testing.plan import Completion, plan
from aiscope.testing.records import RecordedRequest, RequestLog

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from aiscope.testing.config import BehaviorChanges

#: Endpoints that generate, and so take faults.
MODEL_ENDPOINTS = frozenset(
    {
        "chat.completions",
        "responses",
        "embeddings",
        "messages",
        "generateContent",
        "streamGenerateContent",
    }
)
#: The status of an in-stream error when the fault names none.
DEFAULT_STREAM_ERROR_STATUS = 529

_GEMINI_METHOD_RE = re.compile(
    r"/(?P<model>(?:models|tunedModels)/[^/:]+):(?P<method>generateContent|streamGenerateContent|countTokens)$"
)
_MODEL_RE = re.compile(r"/models/(?P<model>[^/:]+)$")

#: Builds the in-stream error frame: (status, code, message, position in the stream).
ErrorFrame = Callable[[int, str | None, str | None, int], Frame]


class MockState:
    """The mutable, thread-safe state of one mock provider."""

    def __init__(
        self, api_key: str | None, behavior: Behavior, log_limit: int | None = 10_000
    ) -> None:
        self.api_key = api_key
        self.log = RequestLog(log_limit)
        self._lock = threading.Lock()
        self._behavior = behavior
        self._faults: deque[Fault] = deque()

    @property
    def behavior(self) -> Behavior:
        """The standing behaviour."""
        with self._lock:
            return self._behavior

    @behavior.setter
    def behavior(self, value: Behavior) -> None:
        with self._lock:
            self._behavior = value

    def update(self, **changes: Unpack[BehaviorChanges]) -> Behavior:
        """Change some fields of the behaviour; return the new one."""
        with self._lock:
            self._behavior = replace(self._behavior, **changes)
            return self._behavior

    def push_faults(self, fault: Fault, times: int) -> None:
        """Queue ``fault`` for the next ``times`` model requests."""
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.extend([fault] * times)

    def take_fault(self) -> Fault | None:
        """The next queued fault, else the standing one, else None."""
        with self._lock:
            if self._faults:
                return self._faults.popleft()
            return self._behavior.fault

    def pending_faults(self) -> int:
        """How many queued faults are left."""
        with self._lock:
            return len(self._faults)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()


@dataclass(frozen=True, slots=True)
class Route:
    """Which provider format and endpoint a request is for."""

    provider: str
    endpoint: str
    model: str | None = None


def guess_provider(incoming: Incoming) -> str:
    """The format to answer a GET or an unknown path in (see the module docstring)."""
    headers = incoming.headers
    if "x-goog-api-key" in headers or "key" in incoming.query or "/v1beta/" in incoming.path:
        return "gemini"
    if "anthropic-version" in headers or "x-api-key" in headers:
        return "anthropic"
    return "openai"


def route(incoming: Incoming) -> Route | None:
    """The :class:`Route` of a request, or None for an unknown path."""
    path = incoming.path.rstrip("/")
    if incoming.method == "POST":
        for suffix, provider, endpoint in (
            ("/chat/completions", "openai", "chat.completions"),
            ("/responses", "openai", "responses"),
            ("/embeddings", "openai", "embeddings"),
            ("/messages/count_tokens", "anthropic", "count_tokens"),
            ("/messages", "anthropic", "messages"),
        ):
            if path.endswith(suffix):
                return Route(provider, endpoint)
        match = _GEMINI_METHOD_RE.search(path)
        if match:
            model = match.group("model").split("/", 1)[1]
            return Route("gemini", match.group("method"), model)
        return None
    if incoming.method == "GET":
        if path.endswith("/models"):
            return Route(guess_provider(incoming), "models")
        match = _MODEL_RE.search(path)
        if match:
            return Route(guess_provider(incoming), "model", match.group("model"))
    return None


def _error(
    provider: str,
    status: int,
    code: str | None = None,
    message: str | None = None,
    retry_after: float | None = None,
) -> Outcome:
    if provider == "anthropic":
        return wire_anthropic.error_outcome(
            status, code=code, message=message, retry_after=retry_after
        )
    if provider == "gemini":
        return wire_gemini.error_outcome(
            status, code=code, message=message, retry_after=retry_after
        )
    return wire_openai.error_outcome(status, code=code, message=message, retry_after=retry_after)


def _stream_error_frame(provider: str, sse: bool = True) -> ErrorFrame:
    if provider == "anthropic":
        return lambda s, c, m, _i: wire_anthropic.stream_error_frame(s, c, m)
    if provider == "gemini":
        return lambda s, c, m, i: wire_gemini.stream_error_frame(s, c, m, sse=sse, first=i == 0)
    return lambda s, c, m, _i: wire_openai.stream_error_frame(s, c, m)


class Dispatcher:
    """The server's application: answers each :class:`Incoming` with an :class:`Outcome`."""

    def __init__(self, state: MockState) -> None:
        self.state = state

    def __call__(self, incoming: Incoming) -> Outcome:
        """Answer one request, logging it first."""
        behavior = self.state.behavior
        body: Any = None
        body_error = False
        if incoming.body:
            try:
                body = json.loads(incoming.body)
            except ValueError:
                body_error = True
        record = self.state.log.add(
            incoming.method, incoming.path, incoming.query, incoming.headers, body, incoming.client
        )
        outcome = self._answer(incoming, body, body_error, behavior, record)
        outcome.record = record
        outcome.delay_s += behavior.latency_s
        record.status = outcome.status
        return outcome

    # ------------------------------------------------------------------ steps

    def _answer(
        self,
        incoming: Incoming,
        body: Any,
        body_error: bool,
        behavior: Behavior,
        record: RecordedRequest,
    ) -> Outcome:
        route_ = route(incoming)
        if route_ is None:
            provider = guess_provider(incoming)
            record.provider = provider
            message = f"Invalid URL ({incoming.method} {incoming.path})"
            return _error(provider, 404, message=message)
        record.provider, record.endpoint = route_.provider, route_.endpoint
        record.model = route_.model
        denied = self._auth(route_, incoming)
        if denied is not None:
            return denied
        if route_.endpoint in ("models", "model"):
            return self._models(route_)
        if body_error or body is None:
            message = "We could not parse the JSON body of your request."
            return _error(route_.provider, 400, message=message)
        if route_.provider == "openai":
            return self._openai(route_, body, behavior, record)
        if route_.provider == "anthropic":
            return self._anthropic(route_, body, behavior, record)
        return self._gemini(route_, incoming, body, behavior, record)

    def _auth(self, route_: Route, incoming: Incoming) -> Outcome | None:
        key = self.state.api_key
        if route_.provider == "anthropic":
            return wire_anthropic.auth_error(incoming.headers, key)
        if route_.provider == "gemini":
            return wire_gemini.auth_error(incoming.headers, incoming.query, key)
        return wire_openai.auth_error(incoming.headers, key)

    def _models(self, route_: Route) -> Outcome:
        module: Any = {"anthropic": wire_anthropic, "gemini": wire_gemini}.get(
            route_.provider, wire_openai
        )
        if route_.endpoint == "models":
            payload = module.models_list()
        else:
            payload = module.model_object(route_.model)
        return Outcome(200, module.response_headers(), dumps(payload).encode())

    def _take_fault(
        self, route_: Route, record: RecordedRequest, stream: bool
    ) -> tuple[Fault | None, Outcome | None]:
        """The next queued fault, and the error answer it makes (None: the request goes on)."""
        fault = self.state.take_fault()
        failed = self._fault_error(route_, fault, stream)
        if failed is not None:
            record.fault = fault
        return fault, failed

    def _fault_error(self, route_: Route, fault: Fault | None, stream: bool) -> Outcome | None:
        if fault is None or fault.status is None:
            return None
        if stream and fault.stream_error_after is not None:
            return None
        out = _error(route_.provider, fault.status, fault.code, fault.message, fault.retry_after)
        out.delay_s = fault.first_byte_delay_s
        return out

    def _deliver(
        self,
        rendered: Rendered,
        completion: Completion | None,
        headers: Headers,
        fault: Fault | None,
        behavior: Behavior,
        record: RecordedRequest,
        provider: str,
        *,
        sse: bool = True,
        content_type: str = "text/event-stream; charset=utf-8",
        closing: list[Frame] | None = None,
    ) -> Outcome:
        record.response_id = rendered.response_id or None
        record.finish_reason = rendered.finish_reason or None
        record.tool_call = rendered.tool_call
        record.planned_usage = rendered.usage
        if completion is not None and completion.tool_call is None:
            record.reply_text = completion.text
        if rendered.frames is None:
            body = dumps(rendered.body).encode()
            out = Outcome(200, headers, body, usage=rendered.usage, wire_usage=rendered.wire_usage)
            if fault is not None:
                if fault.malformed_at is not None:
                    out.body, out.usage, out.wire_usage = (
                        corrupt(body.decode()).encode(),
                        None,
                        None,
                    )
                if fault.drop_after_chunks is not None:
                    out.drop_after = 0
        else:
            frames = rendered.frames
            if fault is not None and fault.stream_error_after is not None:
                n = fault.stream_error_after
                status = fault.status or DEFAULT_STREAM_ERROR_STATUS
                error_frame = _stream_error_frame(provider, sse)
                frames = [*frames[:n], error_frame(status, fault.code, fault.message, n)]
                frames.extend(closing or [])
            out = Outcome(
                200,
                headers,
                frames=frames,
                content_type=content_type,
                first_frame_delay_s=behavior.first_token_delay_s,
                chunk_delay_s=behavior.chunk_delay_s,
            )
            if fault is not None:
                if fault.chunk_delay_s is not None:
                    out.chunk_delay_s = fault.chunk_delay_s
                out.drop_after = fault.drop_after_chunks
                out.malformed_at = fault.malformed_at
        if fault is not None:
            record.fault = fault
            out.delay_s = fault.first_byte_delay_s
        return out

    # ------------------------------------------------------------------ providers

    def _openai(
        self, route_: Route, body: Any, behavior: Behavior, record: RecordedRequest
    ) -> Outcome:
        if route_.endpoint == "embeddings":
            invalid = wire_openai.validate_embeddings(body)
            if invalid is not None:
                return invalid
            record.model = body["model"]
            fault, failed = self._take_fault(route_, record, False)
            if failed is not None:
                return failed
            model = behavior.model or body["model"]
            rendered = wire_openai.embeddings_response(body, behavior.embedding_dimensions, model)
            headers = wire_openai.response_headers(
                rendered.usage.input_tokens if rendered.usage else 0
            )
            return self._deliver(rendered, None, headers, fault, behavior, record, "openai")
        if route_.endpoint == "chat.completions":
            invalid = wire_openai.validate_chat(body)
            info = None if invalid else wire_openai.chat_prompt_info(body)
        else:
            invalid = wire_openai.validate_responses(body)
            info = None if invalid else wire_openai.responses_prompt_info(body)
        if invalid is not None or info is None:
            return invalid or _error("openai", 400)
        stream = body.get("stream") is True
        record.model, record.stream = info.model, stream
        fault, failed = self._take_fault(route_, record, stream)
        if failed is not None:
            return failed
        c = plan(info, behavior)
        n = behavior.tokens_per_chunk
        if route_.endpoint == "chat.completions":
            options = body.get("stream_options")
            include_usage = behavior.stream_usage_always or (
                isinstance(options, dict) and options.get("include_usage") is True
            )
            rendered = (
                wire_openai.chat_stream(c, include_usage=include_usage, tokens_per_chunk=n)
                if stream
                else wire_openai.chat_completion(c)
            )
        else:
            rendered = (
                wire_openai.responses_stream(body, c, tokens_per_chunk=n)
                if stream
                else wire_openai.responses_response(body, c)
            )
        headers = wire_openai.response_headers(c.prompt_tokens)
        return self._deliver(rendered, c, headers, fault, behavior, record, "openai")

    def _anthropic(
        self, route_: Route, body: Any, behavior: Behavior, record: RecordedRequest
    ) -> Outcome:
        if route_.endpoint == "count_tokens":
            invalid = wire_anthropic.validate_count(body)
            if invalid is not None:
                return invalid
            counted = plan(wire_anthropic.prompt_info({**body, "max_tokens": 1}), behavior)
            payload = wire_anthropic.count_tokens(counted)
            return Outcome(200, wire_anthropic.response_headers(), dumps(payload).encode())
        invalid = wire_anthropic.validate(body)
        if invalid is not None:
            return invalid
        info = wire_anthropic.prompt_info(body)
        stream = body.get("stream") is True
        record.model, record.stream = info.model, stream
        fault, failed = self._take_fault(route_, record, stream)
        if failed is not None:
            return failed
        c = plan(info, behavior)
        rendered = (
            wire_anthropic.message_stream(c, tokens_per_chunk=behavior.tokens_per_chunk)
            if stream
            else wire_anthropic.message(c)
        )
        headers = wire_anthropic.response_headers(c.prompt_tokens)
        return self._deliver(rendered, c, headers, fault, behavior, record, "anthropic")

    def _gemini(
        self,
        route_: Route,
        incoming: Incoming,
        body: Any,
        behavior: Behavior,
        record: RecordedRequest,
    ) -> Outcome:
        invalid = wire_gemini.validate(body)
        if invalid is not None:
            return invalid
        model = route_.model or ""
        info = wire_gemini.prompt_info(body, model)
        if route_.endpoint == "countTokens":
            payload = wire_gemini.count_tokens(plan(info, behavior))
            return Outcome(200, wire_gemini.response_headers(), dumps(payload).encode())
        stream = route_.endpoint == "streamGenerateContent"
        sse = incoming.query.get("alt") == "sse"
        record.stream = stream
        fault, failed = self._take_fault(route_, record, stream)
        if failed is not None:
            return failed
        c = plan(info, behavior)
        n = behavior.tokens_per_chunk
        rendered = (
            wire_gemini.stream_generate_content(c, sse=sse, tokens_per_chunk=n)
            if stream
            else wire_gemini.generate_content(c)
        )
        return self._deliver(
            rendered,
            c,
            wire_gemini.response_headers(),
            fault,
            behavior,
            record,
            "gemini",
            sse=sse,
            content_type="text/event-stream" if sse else "application/json; charset=UTF-8",
            closing=None if sse else [Frame("]", sse=False)],
        )
