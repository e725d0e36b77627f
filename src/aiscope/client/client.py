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

import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from aiscope.capture import estimate_tokens
from aiscope.client.errors import (
    ERROR_TYPES,
    AiClientError,
    ConfigurationError,
    ProviderError,
    RequestTimeoutError,
    ServerError,
    StreamError,
    StreamInterruptedError,
    TransportError,
)
from aiscope.client.manifest import ProviderManifest, get_manifest
from aiscope.client.request import (
    ChatRequest,
    CompiledRequest,
    api_key_for,
    base_url_for,
    compile_request,
)
from aiscope.client.response import ChatResponse, estimate_usage, parse_response
from aiscope.client.streaming import EventMapper, SSEDecoder, StreamEvent, StreamState
from aiscope.cost.tracker import CostTracker
from aiscope.logs import mask_headers
from aiscope.metrics.collector import MetricsCollector
from aiscope.record import CallRecord, CallStats
from aiscope.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    CircuitPermit,
    CircuitState,
    ErrorRateWindow,
    InflightLimiter,
    RateLimiter,
    RetryPolicy,
    SignalsSnapshot,
    parse_retry_after,
)
from aiscope.scope import PendingCall, Scope, Sink, current_scope

log = logging.getLogger("aiscope.client")

#: Output tokens assumed for a budget estimate when the request sets no max_tokens.
DEFAULT_MAX_OUTPUT_ESTIMATE = 4096

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
        rate_limiter: RateLimiter | None = None,
        max_inflight: int | None = None,
        fallbacks: Sequence[str] = (),
        transport: httpx.BaseTransport | httpx.AsyncBaseTransport | None = None,
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
        self.rate_limiter = rate_limiter
        self.inflight = InflightLimiter(max_inflight)
        self.errors = ErrorRateWindow()
        self._transport = transport
        self._sync_http: httpx.Client | None = None
        self._async_http: httpx.AsyncClient | None = None
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
        metrics = self.scope.metrics
        if metrics is not None:
            metrics.circuit_transition(self.manifest.pricing_id, str(old), str(new))

    # -- plumbing -------------------------------------------------------------------------
    def _http_sync(self) -> httpx.Client:
        if self._sync_http is None:
            t = self._transport if isinstance(self._transport, httpx.BaseTransport) else None
            self._sync_http = httpx.Client(timeout=self.timeout, transport=t)
        return self._sync_http

    def _http_async(self) -> httpx.AsyncClient:
        if self._async_http is None:
            t = self._transport if isinstance(self._transport, httpx.AsyncBaseTransport) else None
            self._async_http = httpx.AsyncClient(timeout=self.timeout, transport=t)
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

    @contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        tracer = self.scope.tracer
        span_cm = getattr(tracer, "span", None) if tracer is not None else None
        t0 = time.perf_counter()
        if span_cm is not None:
            with span_cm(name):
                yield
        else:
            yield
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "stage %s provider=%s model=%s took %.3f ms",
                name,
                self.provider,
                self.model,
                (time.perf_counter() - t0) * 1e3,
            )

    def _compile(self, req: ChatRequest, stream: bool) -> CompiledRequest:
        with self._stage("request_compilation"):
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

    def _new_record(self, req: ChatRequest, tags: dict[str, str], stream: bool) -> CallRecord:
        url = httpx.URL(base_url_for(self.manifest, self._base_url))
        return CallRecord(
            model=self.model,
            provider=self.manifest.pricing_id,
            operation="chat",
            tags=dict(tags),
            streaming=stream,
            server_address=url.host or None,
            server_port=url.port or (443 if url.scheme == "https" else 80),
        )

    def _begin(self, req: ChatRequest) -> PendingCall:
        est_in = estimate_tokens(req.prompt_text())
        max_out = (
            req.max_tokens
            or self.manifest.defaults.get("max_tokens")
            or DEFAULT_MAX_OUTPUT_ESTIMATE
        )
        return self.scope.begin(self.model, self.manifest.pricing_id, est_in, int(max_out))

    def _error_from(self, resp: httpx.Response, body: bytes) -> ProviderError:
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

    def _retry_delay(self, exc: AiClientError, attempt: int, record: CallRecord) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        retryable = getattr(exc, "retryable", False)
        status = getattr(exc, "status", None)
        if not retryable or not self.retry.should_retry(
            attempt, status=status, exc=exc if status is None else None
        ):
            return None
        delay = self.retry.delay_s(attempt, getattr(exc, "retry_after_s", None))
        record.retry_count += 1
        metrics = self.scope.metrics
        if metrics is not None:
            metrics.count_retry(self.model, self.manifest.pricing_id, type(exc).__name__)
        log.info(
            "retrying %s/%s after %s in %.2fs (attempt %d)",
            self.provider,
            self.model,
            type(exc).__name__,
            delay,
            attempt + 1,
        )
        return delay

    def _count_limiter_wait(self, waited: float) -> None:
        if waited > 0:
            metrics = self.scope.metrics
            if metrics is not None:
                metrics.rate_limit_wait(self.manifest.pricing_id, waited)

    @staticmethod
    def _breaker_outcome(permit: CircuitPermit, exc: BaseException | None) -> None:
        # Client errors (4xx other than 408/409/429) say nothing about the provider's health.
        if exc is None:
            permit.success()
        elif isinstance(exc, StreamError) or getattr(exc, "retryable", False):
            permit.failure()
        elif isinstance(exc, ProviderError):
            permit.success()
        else:
            permit.release()

    def _request_tokens(self, req: ChatRequest) -> int:
        return estimate_tokens(req.prompt_text()) + (req.max_tokens or 0)

    def _settle_limiter(self, req: ChatRequest, response: ChatResponse | None) -> None:
        # The limiter took an estimate up front; correct it with what was really used.
        if self.rate_limiter is not None and response is not None:
            self.rate_limiter.adjust(self._request_tokens(req), response.usage.total_tokens)

    def _finish(
        self,
        record: CallRecord,
        t0: float,
        response: ChatResponse | None,
        exc: BaseException | None,
    ) -> None:
        record.latency_s = time.perf_counter() - t0
        if response is not None:
            record.usage = response.usage
            record.response_model = response.model
            record.upstream_request_id = response.request_id or response.id
            if response.finish_reason:
                record.finish_reasons = (response.finish_reason,)
        if exc is not None:
            record.status = "error"
            record.error_type = type(exc).__name__
        self.errors.record(exc is None)

    def _emit(self, record: CallRecord, pending: PendingCall) -> None:
        try:
            self.scope.emit(record, pending)
        except (TypeError, ValueError):  # a malformed provider report must not break the call
            log.exception("could not record call %s", record.request_id)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s/%s status=%s latency=%.0fms tokens=%d/%d cost=%s retries=%d",
                record.operation,
                self.provider,
                self.model,
                record.status,
                record.latency_s * 1e3,
                record.usage.input_tokens,
                record.usage.output_tokens,
                "?" if record.cost_usd is None else f"${record.cost_usd:.6f}",
                record.retry_count,
            )

    # -- execution (async) ----------------------------------------------------------------
    async def _execute(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> tuple[ChatResponse, CallRecord]:
        chain = (self, *self.fallbacks)
        for i, client in enumerate(chain):
            try:
                return await client._execute_one(req, tags)
            except (ProviderError, TransportError, CircuitOpenError) as exc:
                if i == len(chain) - 1:
                    raise
                log.warning(
                    "%s failed (%s); falling back to %s",
                    client.spec,
                    type(exc).__name__,
                    chain[i + 1].spec,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _execute_one(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> tuple[ChatResponse, CallRecord]:
        req = ChatRequest(**{**_fields(req), "model": self.model})
        compiled = self._compile(req, stream=False)
        pending = self._begin(req)
        record = self._new_record(req, tags, stream=False)
        t0 = time.perf_counter()
        response: ChatResponse | None = None
        error: BaseException | None = None
        try:
            async with self.inflight.aslot():
                attempt = 0
                while True:
                    permit = self.breaker.acquire()
                    try:
                        if self.rate_limiter is not None:
                            self._count_limiter_wait(
                                await self.rate_limiter.acquire_async(self._request_tokens(req))
                            )
                        response = await self._send_async(compiled, req)
                    except (ProviderError, TransportError) as exc:
                        self._breaker_outcome(permit, exc)
                        delay = self._retry_delay(exc, attempt, record)
                        if delay is None:
                            raise
                        attempt += 1
                        await _asleep(delay)
                        continue
                    except BaseException:
                        permit.release()
                        raise
                    self._breaker_outcome(permit, None)
                    self._settle_limiter(req, response)
                    return response, record
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._finish(record, t0, response, error)
            self._emit(record, pending)

    async def _send_async(self, compiled: CompiledRequest, req: ChatRequest) -> ChatResponse:
        http = self._http_async()
        with self._stage("http_transport"):
            try:
                resp = await http.post(compiled.url, json=compiled.body, headers=compiled.headers)
            except httpx.TimeoutException as exc:
                raise RequestTimeoutError(
                    f"no answer within {self.timeout}s ({exc})", provider=self.provider
                ) from None
            except httpx.TransportError as exc:
                raise TransportError(
                    f"{type(exc).__name__}: {exc}", provider=self.provider
                ) from None
        return self._parse(resp, resp.content, req)

    def _parse(self, resp: httpx.Response, body: bytes, req: ChatRequest) -> ChatResponse:
        if resp.status_code >= 400:
            raise self._error_from(resp, body)
        with self._stage("pipeline_processing"):
            try:
                data = json.loads(body)
            except ValueError:
                raise ServerError(
                    f"response is not JSON: {body[:200]!r}",
                    provider=self.provider,
                    status=resp.status_code,
                ) from None
        with self._stage("event_mapping"):
            parsed = parse_response(self.manifest, data, req.prompt_text())
        if self.manifest.request_id_header:
            parsed.request_id = resp.headers.get(self.manifest.request_id_header)
        return parsed

    # -- execution (sync) -----------------------------------------------------------------
    def _execute_sync(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> tuple[ChatResponse, CallRecord]:
        chain = (self, *self.fallbacks)
        for i, client in enumerate(chain):
            try:
                return client._execute_one_sync(req, tags)
            except (ProviderError, TransportError, CircuitOpenError) as exc:
                if i == len(chain) - 1:
                    raise
                log.warning(
                    "%s failed (%s); falling back to %s",
                    client.spec,
                    type(exc).__name__,
                    chain[i + 1].spec,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _execute_one_sync(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> tuple[ChatResponse, CallRecord]:
        req = ChatRequest(**{**_fields(req), "model": self.model})
        compiled = self._compile(req, stream=False)
        pending = self._begin(req)
        record = self._new_record(req, tags, stream=False)
        t0 = time.perf_counter()
        response: ChatResponse | None = None
        error: BaseException | None = None
        try:
            with self.inflight.slot():
                attempt = 0
                while True:
                    permit = self.breaker.acquire()
                    try:
                        if self.rate_limiter is not None:
                            self._count_limiter_wait(
                                self.rate_limiter.acquire(self._request_tokens(req))
                            )
                        response = self._send_sync(compiled, req)
                    except (ProviderError, TransportError) as exc:
                        self._breaker_outcome(permit, exc)
                        delay = self._retry_delay(exc, attempt, record)
                        if delay is None:
                            raise
                        attempt += 1
                        time.sleep(delay)
                        continue
                    except BaseException:
                        permit.release()
                        raise
                    self._breaker_outcome(permit, None)
                    self._settle_limiter(req, response)
                    return response, record
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._finish(record, t0, response, error)
            self._emit(record, pending)

    def _send_sync(self, compiled: CompiledRequest, req: ChatRequest) -> ChatResponse:
        http = self._http_sync()
        with self._stage("http_transport"):
            try:
                resp = http.post(compiled.url, json=compiled.body, headers=compiled.headers)
            except httpx.TimeoutException as exc:
                raise RequestTimeoutError(
                    f"no answer within {self.timeout}s ({exc})", provider=self.provider
                ) from None
            except httpx.TransportError as exc:
                raise TransportError(
                    f"{type(exc).__name__}: {exc}", provider=self.provider
                ) from None
        return self._parse(resp, resp.content, req)

    # -- streaming ------------------------------------------------------------------------
    async def _stream(
        self, req: ChatRequest, tags: dict[str, str]
    ) -> AsyncGenerator[StreamEvent, None]:
        req = ChatRequest(**{**_fields(req), "model": self.model})
        compiled = self._compile(req, stream=True)
        pending = self._begin(req)
        record = self._new_record(req, tags, stream=True)
        state = StreamState()
        mapper = EventMapper(self.manifest)
        t0 = time.perf_counter()
        error: BaseException | None = None
        response: ChatResponse | None = None
        http = self._http_async()
        try:
            async with self.inflight.aslot():
                attempt = 0
                while True:
                    permit = self.breaker.acquire()
                    try:
                        if self.rate_limiter is not None:
                            self._count_limiter_wait(
                                await self.rate_limiter.acquire_async(self._request_tokens(req))
                            )
                        with self._stage("http_transport"):
                            try:
                                resp = await http.send(
                                    http.build_request(
                                        "POST",
                                        compiled.url,
                                        json=compiled.body,
                                        headers=compiled.headers,
                                    ),
                                    stream=True,
                                )
                            except httpx.TimeoutException as exc:
                                raise RequestTimeoutError(
                                    str(exc), provider=self.provider
                                ) from None
                            except httpx.TransportError as exc:
                                raise TransportError(
                                    f"{type(exc).__name__}: {exc}", provider=self.provider
                                ) from None
                        if resp.status_code >= 400:
                            body = await resp.aread()
                            await resp.aclose()
                            raise self._error_from(resp, body)
                    except (ProviderError, TransportError) as exc:
                        self._breaker_outcome(permit, exc)
                        delay = self._retry_delay(exc, attempt, record)
                        if delay is None:
                            raise
                        attempt += 1
                        await _asleep(delay)
                        continue
                    except BaseException:
                        permit.release()
                        raise
                    break
                if self.manifest.request_id_header:
                    record.upstream_request_id = resp.headers.get(self.manifest.request_id_header)
                decoder = SSEDecoder()
                try:
                    try:
                        async for chunk in resp.aiter_bytes():
                            for frame in decoder.feed(chunk):
                                for ev in self._map_frame(mapper, frame, state, t0, record):
                                    yield ev
                        for frame in decoder.flush():
                            for ev in self._map_frame(mapper, frame, state, t0, record):
                                yield ev
                    except httpx.TransportError as exc:
                        raise StreamInterruptedError(
                            f"stream cut: {type(exc).__name__}: {exc}", provider=self.provider
                        ) from None
                    finally:
                        await resp.aclose()
                    self._check_complete(state)
                except BaseException as exc:
                    self._breaker_outcome(permit, exc)
                    raise
                self._breaker_outcome(permit, None)
                response = state.response(self.manifest, req.prompt_text())
                response.request_id = record.upstream_request_id
                yield StreamEvent("usage", usage=response.usage)
                self._finish(record, t0, response, None)
                self._emit(record, pending)
                pending = None  # type: ignore[assignment]
                yield StreamEvent(
                    "end",
                    response=response,
                    stats=record.stats(),
                    finish_reason=response.finish_reason,
                )
        except GeneratorExit:
            # The consumer stopped early: record what was seen, once.
            if pending is not None:
                response = state.response(self.manifest, req.prompt_text())
                if not state.usage_values:
                    response.usage = estimate_usage(req.prompt_text(), response.text)
                response.finish_reason = response.finish_reason or "abandoned"
            raise
        except BaseException as exc:
            error = exc
            if pending is not None:
                response = (
                    state.response(self.manifest, req.prompt_text()) if state.frames else None
                )
            raise
        finally:
            if pending is not None:
                self._finish(record, t0, response, error)
                self._emit(record, pending)

    def _map_frame(
        self, mapper: EventMapper, frame: Any, state: StreamState, t0: float, record: CallRecord
    ) -> list[StreamEvent]:
        events = mapper.frame(frame, state)
        if state.error is not None:
            err = state.error
            message = err.get("message") if isinstance(err, dict) else str(err)
            kind = err.get("type") if isinstance(err, dict) else None
            cls = ERROR_TYPES.get(self.manifest.errors_by_code.get(str(kind), ""), ServerError)
            raise cls(
                f"error in stream: {message}",
                provider=self.provider,
                code=str(kind) if kind else None,
            )
        if state.first_token_at is None:
            for ev in events:
                if ev.kind in ("text_delta", "tool_call_delta"):
                    state.first_token_at = time.perf_counter()
                    record.time_to_first_token_s = state.first_token_at - t0
                    break
        return events

    def _check_complete(self, state: StreamState) -> None:
        has_end_signal = self.manifest.done_data is not None or any(
            r.emit == "end" for r in self.manifest.events
        )
        complete = state.done if has_end_signal else state.finish_reason is not None
        if not complete:
            raise StreamInterruptedError(
                f"stream ended after {state.frames} frames without its end signal",
                provider=self.provider,
            )

    def _stream_sync(self, req: ChatRequest, tags: dict[str, str]) -> Iterator[StreamEvent]:
        import asyncio

        # One private loop drives the async stream; events are handed over one by one.
        loop = asyncio.new_event_loop()
        agen = self._stream(req, tags)
        try:
            while True:
                try:
                    ev = loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
                yield ev
        finally:
            loop.run_until_complete(agen.aclose())
            if self._async_http is not None:
                loop.run_until_complete(self._async_http.aclose())
                self._async_http = None
            loop.close()


async def _itself(client: AiClient) -> AiClient:
    return client


async def _asleep(delay: float) -> None:
    import asyncio

    await asyncio.sleep(delay)


def _fields(req: ChatRequest) -> dict[str, Any]:
    return {k: getattr(req, k) for k in req.__slots__}


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
        self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None
    ) -> AiClientBuilder:
        """A token-bucket limit on requests and tokens per minute."""
        return self._set("rate_limiter", RateLimiter(requests_per_minute, tokens_per_minute))

    def max_inflight(self, n: int) -> AiClientBuilder:
        """At most ``n`` calls in flight; more wait for a slot."""
        return self._set("max_inflight", n)

    def fallbacks(self, *models: str) -> AiClientBuilder:
        """Models to try, in order, when this one fails."""
        return self._set("fallbacks", list(models))

    def transport(
        self, transport: httpx.BaseTransport | httpx.AsyncBaseTransport
    ) -> AiClientBuilder:
        """An httpx transport (e.g. ``httpx.MockTransport`` in tests)."""
        return self._set("transport", transport)

    def headers(self, **headers: str) -> AiClientBuilder:
        """Extra request headers."""
        return self._set("headers", headers)

    def build(self) -> AiClient:
        """The client (also awaitable: ``await builder.build()``)."""
        if self._model is None:
            raise ConfigurationError("AiClient.builder() needs .model('provider/model')")
        return AiClient(self._model, **self._kwargs)
