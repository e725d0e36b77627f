"""AiClient: a protocol-driven multi-provider chat client whose every call is observed.

::

    client = await AiClient.builder().model("openai/gpt-4o").metrics(metrics).build()
    response, stats = await client.chat().user("Hello").execute_with_stats()

Each call goes through named stages — protocol loading, request compilation, HTTP
transport, pipeline processing, event mapping — each logged at DEBUG (and a span
when a tracer is set), with resilience around the transport: a circuit breaker,
a token-bucket rate limiter, an in-flight limit, retries with backoff that honour
Retry-After, and fallbacks to other models. Every call ends as one CallRecord in
the client's Scope, so metrics, costs, budgets and traces see it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from typing import Any

import httpx2

from aiscope.client._call import DEFAULT_MAX_OUTPUT_ESTIMATE, Call, CallContext, HttpErrors
from aiscope.client._compile import CompiledRequest, compile_request
from aiscope.client._parse import parse_response
from aiscope.client.errors import (
    ERROR_TYPES,
    ConfigurationError,
    ProviderError,
    ServerError,
    TransportError,
)
from aiscope.client.manifest import ProviderManifest, get_manifest
from aiscope.client.request import ChatRequest, api_key_for, base_url_for, provider_request
from aiscope.client.response import ChatResponse
from aiscope.client.streaming import StreamEvent
from aiscope.cost.tracker import CostTracker
from aiscope.masking import mask_headers
from aiscope.metrics.collector import MetricsCollector
from aiscope.record import CallRecord, CallStats
from aiscope.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    ErrorRateWindow,
    InflightLimiter,
    RateLimiter,
    RateLimiterLike,
    RetryPolicy,
    SignalsSnapshot,
    parse_retry_after,
)
from aiscope.scope import PendingCall, Scope, Sink, current_scope
from aiscope.sink import CIRCUIT_TRANSITION, CIRCUIT_WATCH

log = logging.getLogger("aiscope.client")

#: Output tokens assumed for a budget estimate when the request sets no max_tokens.
__all__ = ["DEFAULT_MAX_OUTPUT_ESTIMATE", "AiClient", "AiClientBuilder", "ChatRequestBuilder"]

PROVIDER_ALIASES = {"google": "gemini"}


def split_model(spec: str) -> tuple[str, str]:
    """``"openai/gpt-4o"`` -> ``("openai", "gpt-4o")``."""
    if not isinstance(spec, str) or "/" not in spec:
        raise ConfigurationError(f"a model is 'provider/model', e.g. 'openai/gpt-4o'; got {spec!r}")
    provider, model = spec.split("/", 1)
    if not provider or not model:
        raise ConfigurationError(f"a model is 'provider/model', e.g. 'openai/gpt-4o'; got {spec!r}")
    return PROVIDER_ALIASES.get(provider, provider), model


class AiClient:
    """A chat client for one provider/model, with fallbacks. Build it with
    :meth:`builder` or :meth:`from_model`; both work with and without ``await``."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        metrics: MetricsCollector | None = None,
        tracer: Sink | None = None,
        cost_tracker: CostTracker | None = None,
        feedback: Sink | None = None,
        retry: RetryPolicy | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        rate_limiter: RateLimiterLike | None = None,
        max_inflight: int | None = None,
        fallbacks: Sequence[str] = (),
        transport: httpx2.BaseTransport | httpx2.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        provider_id, model_name = split_model(model)
        t0 = time.perf_counter()
        try:
            self.manifest: ProviderManifest = get_manifest(provider_id)
        except KeyError as exc:
            raise ConfigurationError(str(exc.args[0])) from None
        log.debug(
            "stage protocol_loading provider=%s took %.3f ms",
            provider_id,
            (time.perf_counter() - t0) * 1e3,
        )
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigurationError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        self.model = model_name
        self.provider = provider_id
        self.spec = model
        self._api_key = api_key
        self._base_url = base_url
        self.timeout = float(timeout)
        self._headers = dict(headers or {})
        given = {
            k: v
            for k, v in (
                ("metrics", metrics),
                ("tracer", tracer),
                ("cost_tracker", cost_tracker),
                ("feedback", feedback),
            )
            if v is not None
        }
        # Sinks given to the client make its own scope; otherwise it follows the current one.
        self._scope: Scope | None = current_scope().with_sinks(**given) if given else None
        self.retry = retry or RetryPolicy()
        self._metrics_hint = metrics
        self.breaker = circuit_breaker or CircuitBreaker(provider_id)
        self.breaker.add_listener(self._on_transition)
        # its state is exported from the start, not from a change
        self.scope.event(
            None, CIRCUIT_WATCH, {"provider": self.manifest.pricing_id, "breaker": self.breaker}
        )
        if rate_limiter is not None and not isinstance(rate_limiter, RateLimiterLike):
            raise ConfigurationError(
                "rate_limiter must be a RateLimiter or RedisRateLimiter (acquire, "
                f"acquire_async, adjust, snapshot), got {rate_limiter!r}"
            )
        self.rate_limiter = rate_limiter
        self.inflight = InflightLimiter(max_inflight)
        self.errors = ErrorRateWindow()
        self._transport = transport
        self._transport_errors = HttpErrors(provider_id, self.timeout)
        self._server_cache: tuple[str, str | None, int] | None = None
        self._sync_http: httpx2.Client | None = None
        self._async_http: httpx2.AsyncClient | None = None
        self._call_context = CallContext(
            model=self.model,
            provider=provider_id,
            manifest=self.manifest,
            timeout=self.timeout,
            retry=self.retry,
            breaker=self.breaker,
            rate_limiter=rate_limiter,
            errors=self.errors,
            compile=self._compile,
            server=self._server,
        )
        self.fallbacks = [
            AiClient(
                spec,
                timeout=timeout,
                metrics=metrics,
                tracer=tracer,
                cost_tracker=cost_tracker,
                feedback=feedback,
                retry=retry,
                transport=transport,
                base_url=base_url,
                headers=headers,
            )
            for spec in fallbacks
        ]
        if self.manifest.auth.required and api_key_for(self.manifest, api_key) is None:
            env = " or ".join(self.manifest.auth.env)
            raise ConfigurationError(
                f"no API key for provider {provider_id!r}: set {env} or pass api_key="
            )

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def builder(cls) -> AiClientBuilder:
        """A builder: ``AiClient.builder().model("openai/gpt-4o").metrics(m).build()``."""
        return AiClientBuilder()

    @classmethod
    def from_model(cls, model: str, **kwargs: Any) -> AiClient:
        """A client for ``"provider/model"`` with defaults (awaitable, too)."""
        return cls(model, **kwargs)

    def __await__(self) -> Generator[Any, None, AiClient]:
        # Lets the seed's ``client = await AiClient.builder()...build()`` work unchanged.
        return _itself(self).__await__()

    @property
    def scope(self) -> Scope:
        """The scope this client's records go to."""
        return self._scope if self._scope is not None else current_scope()

    def chat(self) -> ChatRequestBuilder:
        """Start a chat request."""
        return ChatRequestBuilder(self)

    # -- signals --------------------------------------------------------------------------
    def circuit_state(self) -> CircuitState:
        """The provider's circuit breaker state (closed, open, half_open)."""
        return self.breaker.state

    def current_inflight(self) -> int:
        """Calls of this client in flight now."""
        return self.inflight.current

    def signals_snapshot(self) -> SignalsSnapshot:
        """Circuit state, in-flight count, limiter state and recent error rate at once."""
        ok, failed = self.errors.counts()
        return SignalsSnapshot(
            circuit_state=self.breaker.state,
            current_inflight=self.inflight.current,
            max_inflight=self.inflight.max_inflight,
            rate_limiter=self.rate_limiter.snapshot() if self.rate_limiter is not None else None,
            recent_error_rate=self.errors.rate(),
            recent_requests=ok + failed,
        )

    def _on_transition(self, name: str, old: CircuitState, new: CircuitState) -> None:
        log.info("circuit %s: %s -> %s", name, old, new)
        self.scope.event(
            None,
            CIRCUIT_TRANSITION,
            {"provider": self.manifest.pricing_id, "old": old, "new": new, "breaker": self.breaker},
        )

    # -- plumbing -------------------------------------------------------------------------
    def _http_sync(self) -> httpx2.Client:
        if self._sync_http is None:
            t = self._transport if isinstance(self._transport, httpx2.BaseTransport) else None
            self._sync_http = httpx2.Client(timeout=self.timeout, transport=t)
        return self._sync_http

    def _http_async(self) -> httpx2.AsyncClient:
        if self._async_http is None:
            t = self._transport if isinstance(self._transport, httpx2.AsyncBaseTransport) else None
            self._async_http = httpx2.AsyncClient(timeout=self.timeout, transport=t)
        return self._async_http

    def close(self) -> None:
        """Close the sync HTTP connections."""
        if self._sync_http is not None:
            self._sync_http.close()
            self._sync_http = None
        for f in self.fallbacks:
            f.close()

    async def aclose(self) -> None:
        """Close every HTTP connection."""
        self.close()
        if self._async_http is not None:
            await self._async_http.aclose()
            self._async_http = None
        for f in self.fallbacks:
            await f.aclose()

    async def __aenter__(self) -> AiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __enter__(self) -> AiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def provider_request(self, path: str) -> tuple[str, dict[str, str]]:
        """The URL and headers of a GET of ``path`` at this client's provider (its base
        URL and API key), as :class:`~aiscope.HealthChecker`'s provider probe sends it.
        The headers hold the API key: do not log them."""
        return provider_request(self.manifest, path, api_key=self._api_key, base_url=self._base_url)

    def _call(self, req: ChatRequest, tags: dict[str, str], stream: bool) -> Call:
        return Call(self._call_context, self.scope, req, tags, stream=stream)

    def _compile(self, req: ChatRequest, stream: bool, pending: PendingCall) -> CompiledRequest:
        with pending.stage("request_compilation"):
            compiled = compile_request(
                self.manifest,
                req,
                stream=stream,
                api_key=api_key_for(self.manifest, self._api_key),
                base_url=self._base_url,
                extra_headers=self._headers,
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "request %s %s headers=%s",
                compiled.method,
                compiled.url.split("?")[0],
                mask_headers(compiled.headers),
            )
        return compiled

    def _server(self) -> tuple[str | None, int]:
        # Parsed once per endpoint: the base URL only changes with its environment variable.
        base = base_url_for(self.manifest, self._base_url)
        cached = self._server_cache
        if cached is None or cached[0] != base:
            url = httpx2.URL(base)
            port = url.port or (443 if url.scheme == "https" else 80)
            cached = self._server_cache = (base, url.host or None, port)
        return cached[1], cached[2]

    def _error_from(self, resp: httpx2.Response, body: bytes) -> ProviderError:
        m = self.manifest
        data: Any = None
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        message = code = None
        if data is not None:
            mp, cp = m.error_paths.get("message"), m.error_paths.get("code")
            message = mp.first(data) if mp is not None else None
            code = cp.first(data) if cp is not None else None
        kind = (
            m.errors_by_code.get(str(code)) if code is not None else None
        ) or m.errors_by_status.get(resp.status_code)
        if kind is None:
            kind = "server_error" if resp.status_code >= 500 else "bad_request"
        cls = ERROR_TYPES.get(kind, ServerError)
        headers = {k.lower(): v for k, v in resp.headers.items()}
        retry_after = parse_retry_after(
            {h: headers[h] for h in m.retry_after_headers if h in headers}
        )
        rid = headers.get(m.request_id_header) if m.request_id_header else None
        return cls(
            str(message or body[:200].decode("utf-8", "replace") or resp.reason_phrase),
            provider=m.id,
            status=resp.status_code,
            code=None if code is None else str(code),
            request_id=rid,
            retry_after_s=retry_after,
        )

    def _chain(self) -> Iterator[tuple[AiClient, AiClient | None]]:
        """Each client to try (this one, then its fallbacks) with the one after it."""
        return zip((self, *self.fallbacks), (*self.fallbacks, None), strict=True)

    def _parse(self, call: Call, resp: httpx2.Response, body: bytes) -> ChatResponse:
        if resp.status_code >= 400:
            raise self._error_from(resp, body)
        with call.stage("pipeline_processing"):
            try:
                data = json.loads(body)
            except ValueError:
                raise ServerError(
                    f"response is not JSON: {body[:200]!r}",
                    provider=self.provider,
                    status=resp.status_code,
                ) from None
        with call.stage("event_mapping"):
            parsed = parse_response(self.manifest, data, call.prompt, len(call.req.messages))
        if self.manifest.request_id_header:
            parsed.request_id = resp.headers.get(self.manifest.request_id_header)
        return parsed

    def _connected(self, call: Call, resp: httpx2.Response) -> None:
        if self.manifest.request_id_header:
            call.record.upstream_request_id = resp.headers.get(self.manifest.request_id_header)

    # Below, each sync method has an async twin that differs only in its I/O: the
    # attempts, breaker, retries, limiter accounting and the record are in Call.

    # -- execution (sync) -----------------------------------------------------------------
    def _execute_sync(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> tuple[ChatResponse, CallRecord]:
        for client, after in self._chain():
            try:
                return client._execute_one_sync(req, tags)
            except FALLBACK_ON as exc:
                if after is None:
                    raise
                _log_fallback(client, exc, after)
        raise AssertionError("unreachable")  # pragma: no cover

    def _execute_one_sync(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> tuple[ChatResponse, CallRecord]:
        call = self._call(req, tags, False)
        with call, self.inflight.slot():
            while True:
                with call.attempt():
                    self._limit_sync(call)
                    return call.succeeded(self._send_sync(call))
                time.sleep(call.delay)

    def _limit_sync(self, call: Call) -> None:
        if self.rate_limiter is not None:
            call.waited(self.rate_limiter.acquire(call.limiter_tokens()))

    def _send_sync(self, call: Call) -> ChatResponse:
        c = call.compiled
        with call.pending.activate():
            with call.stage("http_transport"), self._transport_errors:
                resp = self._http_sync().post(c.url, json=c.body, headers=call.outgoing(c.headers))
            return self._parse(call, resp, resp.content)

    def _open_sync(self, call: Call) -> httpx2.Response:
        http, c = self._http_sync(), call.compiled
        with call.pending.activate(), call.stage("http_transport"), self._transport_errors:
            headers = call.outgoing(c.headers)
            request = http.build_request("POST", c.url, json=c.body, headers=headers)
            resp = http.send(request, stream=True)
        if resp.status_code >= 400:
            body = resp.read()
            resp.close()
            raise self._error_from(resp, body)
        self._connected(call, resp)
        return resp

    def _stream_sync(self, req: ChatRequest, tags: dict[str, str]) -> Iterator[StreamEvent]:
        call = self._call(req, tags, True)
        with call, self.inflight.slot():
            while True:
                with call.attempt():
                    self._limit_sync(call)
                    resp = self._open_sync(call)
                    break
                time.sleep(call.delay)
            try:
                with call.reading():
                    for chunk in resp.iter_bytes():
                        yield from call.events(chunk)
                    yield from call.flush()
            finally:
                resp.close()
            yield from call.end()

    # -- execution (async) ----------------------------------------------------------------
    async def _execute(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> tuple[ChatResponse, CallRecord]:
        for client, after in self._chain():
            try:
                return await client._execute_one(req, tags)
            except FALLBACK_ON as exc:
                if after is None:
                    raise
                _log_fallback(client, exc, after)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _execute_one(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> tuple[ChatResponse, CallRecord]:
        call = self._call(req, tags, False)
        with call:
            async with self.inflight.aslot():
                while True:
                    with call.attempt():
                        await self._limit_async(call)
                        return call.succeeded(await self._send_async(call))
                    await asyncio.sleep(call.delay)

    async def _limit_async(self, call: Call) -> None:
        if self.rate_limiter is not None:
            call.waited(await self.rate_limiter.acquire_async(call.limiter_tokens()))

    async def _send_async(self, call: Call) -> ChatResponse:
        c = call.compiled
        with call.pending.activate():
            with call.stage("http_transport"), self._transport_errors:
                resp = await self._http_async().post(
                    c.url, json=c.body, headers=call.outgoing(c.headers)
                )
            return self._parse(call, resp, resp.content)

    async def _open_async(self, call: Call) -> httpx2.Response:
        http, c = self._http_async(), call.compiled
        with call.pending.activate(), call.stage("http_transport"), self._transport_errors:
            headers = call.outgoing(c.headers)
            request = http.build_request("POST", c.url, json=c.body, headers=headers)
            resp = await http.send(request, stream=True)
        if resp.status_code >= 400:
            body = await resp.aread()
            await resp.aclose()
            raise self._error_from(resp, body)
        self._connected(call, resp)
        return resp

    async def _stream(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> AsyncGenerator[StreamEvent, None]:
        call = self._call(req, tags, True)
        with call:
            async with self.inflight.aslot():
                while True:
                    with call.attempt():
                        await self._limit_async(call)
                        resp = await self._open_async(call)
                        break
                    await asyncio.sleep(call.delay)
                try:
                    with call.reading():
                        async for chunk in resp.aiter_bytes():
                            for ev in call.events(chunk):
                                yield ev
                        for ev in call.flush():
                            yield ev
                finally:
                    await resp.aclose()
                for ev in call.end():
                    yield ev


#: Errors after which the next model of the fallback chain is tried.
FALLBACK_ON = (ProviderError, TransportError, CircuitOpenError)


def _log_fallback(client: AiClient, exc: BaseException, after: AiClient) -> None:
    log.warning("%s failed (%s); falling back to %s", client.spec, type(exc).__name__, after.spec)


async def _itself(client: AiClient) -> AiClient:
    return client


class ChatRequestBuilder:
    """``client.chat().system(...).user(...).temperature(...).execute()``."""

    def __init__(self, client: AiClient) -> None:
        self._client = client
        self._req = ChatRequest(model=client.model)
        self._tags: dict[str, str] = {}

    def system(self, text: str) -> ChatRequestBuilder:
        """Add a system message."""
        return self.message("system", text)

    def user(self, text: str) -> ChatRequestBuilder:
        """Add a user message."""
        return self.message("user", text)

    def assistant(self, text: str) -> ChatRequestBuilder:
        """Add an assistant message (conversation history)."""
        return self.message("assistant", text)

    def message(
        self, role: str, content: str | list[dict[str, Any]], **extra: Any
    ) -> ChatRequestBuilder:
        """Add any message (OpenAI shape)."""
        self._req.messages.append({"role": role, "content": content, **extra})
        return self

    def messages(self, messages: Sequence[dict[str, Any]]) -> ChatRequestBuilder:
        """Add several messages."""
        self._req.messages.extend(dict(m) for m in messages)
        return self

    def temperature(self, value: float) -> ChatRequestBuilder:
        """Sampling temperature."""
        self._req.temperature = value
        return self

    def top_p(self, value: float) -> ChatRequestBuilder:
        """Nucleus sampling."""
        self._req.top_p = value
        return self

    def max_tokens(self, value: int) -> ChatRequestBuilder:
        """Most output tokens (also bounds the budget estimate)."""
        self._req.max_tokens = value
        return self

    def stop(self, *sequences: str) -> ChatRequestBuilder:
        """Stop sequences."""
        self._req.stop = list(sequences)
        return self

    def tools(self, tools: Sequence[dict[str, Any]]) -> ChatRequestBuilder:
        """OpenAI-style function tools (translated for other providers)."""
        self._req.tools = [dict(t) for t in tools]
        return self

    def extra_body(self, **fields: Any) -> ChatRequestBuilder:
        """Raw provider fields merged into the request body."""
        self._req.extra_body.update(fields)
        return self

    def tags(self, **tags: str) -> ChatRequestBuilder:
        """Attribution tags (feature, team, user, ...) for this call."""
        for k, v in tags.items():
            if not isinstance(v, str):
                raise TypeError(f"tag {k!r} must be a str, got {type(v).__name__} {v!r}")
        self._tags.update(tags)
        return self

    def _ready(self) -> ChatRequest:
        self._req.validate()
        return self._req

    async def execute(self) -> ChatResponse:
        """Send the request; the response."""
        response, _ = await self._client._execute(self._ready(), self._tags)
        return response

    async def execute_with_stats(self) -> tuple[ChatResponse, CallStats]:
        """Send the request; the response and the call's stats."""
        response, record = await self._client._execute(self._ready(), self._tags)
        return response, record.stats()

    def stream(self) -> AsyncIterator[StreamEvent]:
        """Stream the response as unified events; the last is ``end`` with the stats."""
        return self._client._stream(self._ready(), self._tags)

    def execute_sync(self) -> ChatResponse:
        """Blocking :meth:`execute`."""
        response, _ = self._client._execute_sync(self._ready(), self._tags)
        return response

    def execute_with_stats_sync(self) -> tuple[ChatResponse, CallStats]:
        """Blocking :meth:`execute_with_stats`."""
        response, record = self._client._execute_sync(self._ready(), self._tags)
        return response, record.stats()

    def stream_sync(self) -> Iterator[StreamEvent]:
        """Blocking :meth:`stream`."""
        return self._client._stream_sync(self._ready(), self._tags)


class AiClientBuilder:
    """Fluent construction of an :class:`AiClient`."""

    def __init__(self) -> None:
        self._model: str | None = None
        self._kwargs: dict[str, Any] = {}

    def model(self, spec: str) -> AiClientBuilder:
        """``"provider/model"``, e.g. ``"openai/gpt-4o"``."""
        self._model = spec
        return self

    def _set(self, key: str, value: Any) -> AiClientBuilder:
        self._kwargs[key] = value
        return self

    def metrics(self, metrics: MetricsCollector) -> AiClientBuilder:
        """Record this client's calls in ``metrics``."""
        return self._set("metrics", metrics)

    def tracer(self, tracer: Sink) -> AiClientBuilder:
        """Trace this client's calls with ``tracer``."""
        return self._set("tracer", tracer)

    def cost_tracker(self, tracker: CostTracker) -> AiClientBuilder:
        """Price and budget this client's calls with ``tracker``."""
        return self._set("cost_tracker", tracker)

    def feedback(self, feedback: Sink) -> AiClientBuilder:
        """Join feedback to this client's calls."""
        return self._set("feedback", feedback)

    def api_key(self, key: str) -> AiClientBuilder:
        """The API key (else read from the provider's environment variable)."""
        return self._set("api_key", key)

    def base_url(self, url: str) -> AiClientBuilder:
        """Another endpoint for the provider's protocol (a proxy, a mock, a self-hosted server)."""
        return self._set("base_url", url)

    def timeout(self, seconds: float) -> AiClientBuilder:
        """Per-request timeout in seconds."""
        return self._set("timeout", seconds)

    def retry(self, policy: RetryPolicy) -> AiClientBuilder:
        """Retry policy (default: 2 retries with jittered backoff, honouring Retry-After)."""
        return self._set("retry", policy)

    def circuit_breaker(self, breaker: CircuitBreaker) -> AiClientBuilder:
        """The provider's circuit breaker."""
        return self._set("circuit_breaker", breaker)

    def rate_limit(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        request_capacity: float | None = None,
        token_capacity: float | None = None,
        max_wait_s: float | None = None,
    ) -> AiClientBuilder:
        """A token-bucket limit on requests and tokens per minute, in this process.

        The burst (``request_capacity`` / ``token_capacity``) defaults to one second's
        worth of the rate, at least one: ``requests_per_minute=60`` sends one request at
        once and the next ones a second apart. A call that would wait longer than
        ``max_wait_s`` is refused (``RateLimitExceededError``, nothing sent).
        ``signals_snapshot()`` shows it.
        """
        return self._set(
            "rate_limiter",
            RateLimiter(
                requests_per_minute,
                tokens_per_minute,
                request_capacity=request_capacity,
                token_capacity=token_capacity,
                max_wait_s=max_wait_s,
            ),
        )

    def rate_limiter(self, limiter: RateLimiterLike) -> AiClientBuilder:
        """A rate limiter made elsewhere: a :class:`~aiscope.resilience.RateLimiter`
        shared by several clients, or a :class:`~aiscope.resilience.RedisRateLimiter`
        shared by every process."""
        return self._set("rate_limiter", limiter)

    def max_inflight(self, n: int) -> AiClientBuilder:
        """At most ``n`` calls in flight; more wait for a slot."""
        return self._set("max_inflight", n)

    def fallbacks(self, *models: str) -> AiClientBuilder:
        """Models to try, in order, when this one fails."""
        return self._set("fallbacks", list(models))

    def transport(
        self, transport: httpx2.BaseTransport | httpx2.AsyncBaseTransport
    ) -> AiClientBuilder:
        """An httpx transport (e.g. ``httpx2.MockTransport`` in tests)."""
        return self._set("transport", transport)

    def headers(self, **headers: str) -> AiClientBuilder:
        """Extra request headers."""
        return self._set("headers", headers)

    def build(self) -> AiClient:
        """The client (also awaitable: ``await builder.build()``)."""
        if self._model is None:
            raise ConfigurationError("AiClient.builder() needs .model('provider/model')")
        return AiClient(self._model, **self._kwargs)
