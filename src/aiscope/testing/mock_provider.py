"""``MockProvider``: a real HTTP server on a loopback port that speaks OpenAI,
Anthropic and Gemini, streaming and not, and misbehaves on request.

::

    with MockProvider() as mock:
        client = openai.OpenAI(base_url=mock.base_url("openai"), api_key="test")
        mock.fail_next(429, retry_after=0.1, times=2)
        client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert [r.status for r in mock.requests] == [429, 429, 200]
        assert mock.last_request.usage.input_tokens == prompt_tokens("chat.completions", body)

Token counts follow :mod:`aiscope.testing.tokens`; routing, authentication and
fault handling are described in :mod:`aiscope.testing._dispatch`.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from aiscope.testing import _wire_anthropic as wire_anthropic
from aiscope.testing import _wire_gemini as wire_gemini
from aiscope.testing import _wire_openai as wire_openai
from aiscope.testing._dispatch import Dispatcher, MockState
from aiscope.testing._server import MockHTTPServer
from aiscope.testing.config import Behavior, Fault
from aiscope.testing.plan import Completion, PromptInfo, plan
from aiscope.testing.records import RecordedRequest
from aiscope.testing.tokens import count_prompt_tokens

if TYPE_CHECKING:
    from typing import Self

    from typing_extensions import Unpack

    from aiscope.testing.config import BehaviorChanges

#: The path each SDK's base URL adds to the server's root URL.
BASE_PATHS: dict[str, str] = {
    "openai": "/v1",
    "anthropic": "",
    "gemini": "/v1beta",
    "google": "/v1beta",
    "groq": "/openai/v1",
    "openrouter": "/api/v1",
    "deepseek": "",
    "mistral": "/v1",
    "together": "/v1",
    "vllm": "/v1",
    "ollama": "/v1",
}

_API_ALIASES = {
    "openai": "chat.completions",
    "chat": "chat.completions",
    "anthropic": "messages",
    "gemini": "generateContent",
    "streamGenerateContent": "generateContent",
}


def _prompt_info(api: str, body: Mapping[str, Any]) -> PromptInfo:
    api = _API_ALIASES.get(api, api)
    if api == "chat.completions":
        return wire_openai.chat_prompt_info(body)
    if api == "responses":
        return wire_openai.responses_prompt_info(body)
    if api == "messages":
        return wire_anthropic.prompt_info(body)
    if api == "generateContent":
        return wire_gemini.prompt_info(body, "")
    raise ValueError(f"unknown api {api!r}")


def prompt_tokens(api: str, body: Mapping[str, Any]) -> int:
    """The input tokens the mock reports for a request ``body`` sent to ``api``:
    ``"chat.completions"`` (or ``"openai"``), ``"responses"``, ``"messages"`` (or
    ``"anthropic"``), ``"generateContent"`` (or ``"gemini"``), ``"embeddings"``.

    Cached tokens are part of this total (Anthropic's ``input_tokens`` field
    reports it minus the cache reads and writes)."""
    if api == "embeddings":
        return sum(wire_openai.embedding_tokens(i) for i in wire_openai.embedding_inputs(body))
    return count_prompt_tokens(_prompt_info(api, body).texts)


def expected_completion(
    api: str, body: Mapping[str, Any], behavior: Behavior | None = None
) -> Completion:
    """What the mock answers to ``body`` under ``behavior``: text or tool call,
    finish reason and every token count (``api`` as for :func:`prompt_tokens`)."""
    return plan(_prompt_info(api, body), behavior or Behavior())


class MockProvider:
    """A mock LLM provider: a real HTTP/1.1 server on ``host:port`` (port 0: any free one).

    ``api_key`` None accepts any non-empty key; a string requires exactly it.
    Every request is logged; the log keeps the last ``log_limit`` records (None:
    all, 0: none — for long benchmarks). Thread-safe: tests may change the
    behaviour and queue faults while requests are in flight.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        *,
        behavior: Behavior | None = None,
        log_limit: int | None = 10_000,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._initial_behavior = behavior or Behavior()
        self._initial_api_key = api_key
        self._state = MockState(api_key, self._initial_behavior, log_limit)
        self._server: MockHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Bind and serve on a background thread; returns self."""
        if self._server is not None:
            raise RuntimeError("MockProvider is already started")
        server = MockHTTPServer((self._host, self._requested_port), Dispatcher(self._state))
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"aiscope-mock-provider:{server.server_port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("MockProvider is not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        """The server's root URL, e.g. ``http://127.0.0.1:54321``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    def base_url(self, provider: str = "openai") -> str:
        """The base URL ``provider``'s SDK or aiscope protocol expects (see :data:`BASE_PATHS`):
        ``…/v1`` for openai, the root for anthropic, ``…/v1beta`` for gemini, …"""
        try:
            return self.url + BASE_PATHS[provider]
        except KeyError:
            known = ", ".join(sorted(BASE_PATHS))
            raise ValueError(f"unknown provider {provider!r}; known: {known}") from None

    # ------------------------------------------------------------------ log

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every logged request, oldest first (a snapshot)."""
        return self._state.log.snapshot()

    @property
    def last_request(self) -> RecordedRequest | None:
        """The most recent request, or None."""
        items = self._state.log.snapshot()
        return items[-1] if items else None

    def clear_requests(self) -> None:
        """Forget the logged requests."""
        self._state.log.clear()

    def reset(self) -> None:
        """Forget the log, drop queued faults, restore the initial behaviour and API key."""
        self._state.log.clear()
        self._state.clear_faults()
        self._state.behavior = self._initial_behavior
        self._state.api_key = self._initial_api_key

    # ------------------------------------------------------------------ behaviour

    @property
    def api_key(self) -> str | None:
        """The required API key (None: any non-empty key)."""
        return self._state.api_key

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self._state.api_key = value

    @property
    def behavior(self) -> Behavior:
        """The standing behaviour."""
        return self._state.behavior

    @behavior.setter
    def behavior(self, value: Behavior) -> None:
        self._state.behavior = value

    def behave(self, **changes: Unpack[BehaviorChanges]) -> Behavior:
        """Change fields of the standing :class:`Behavior`, e.g.
        ``behave(latency_s=0.2, chunk_delay_s=0.01, reply_text="hi")``."""
        return self._state.update(**changes)

    # ------------------------------------------------------------------ faults

    def enqueue(self, fault: Fault, *, times: int = 1) -> None:
        """Queue ``fault`` for each of the next ``times`` model requests."""
        self._state.push_faults(fault, times)

    def fail_next(
        self,
        status: int = 500,
        *,
        times: int = 1,
        retry_after: float | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next ``times`` model requests get ``status`` with the provider's error body
        (and ``retry-after`` if given)."""
        fault = Fault(status=status, retry_after=retry_after, code=code, message=message)
        self._state.push_faults(fault, times)

    def rate_limit(self, *, times: int = 1, retry_after: float | None = 1.0) -> None:
        """The next ``times`` model requests get 429 with ``retry-after``."""
        self.fail_next(429, times=times, retry_after=retry_after)

    def overloaded(self, *, times: int = 1, retry_after: float | None = None) -> None:
        """The next ``times`` model requests are "overloaded": Anthropic 529
        ``overloaded_error``; OpenAI 503; Gemini 503 ``UNAVAILABLE``."""
        self.fail_next(529, times=times, retry_after=retry_after)

    def slow_first_byte(self, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` model requests wait ``seconds`` before their first byte."""
        self._state.push_faults(Fault(first_byte_delay_s=seconds), times)

    def drop_stream_after(self, n_chunks: int, *, times: int = 1) -> None:
        """The next ``times`` model requests send ``n_chunks`` frames, then the connection
        is closed without the rest (a whole body is cut after half)."""
        self._state.push_faults(Fault(drop_after_chunks=n_chunks), times)

    def malformed_frame_at(self, n: int, *, times: int = 1) -> None:
        """In the next ``times`` model requests, stream frame ``n`` (0-based) carries
        invalid JSON (a whole body is invalid JSON)."""
        self._state.push_faults(Fault(malformed_at=n), times)

    def error_mid_stream(
        self,
        after_chunks: int,
        *,
        status: int = 529,
        code: str | None = None,
        message: str | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` streams send ``after_chunks`` frames, then the provider's
        in-stream error event, and end (a non-streaming request gets ``status``)."""
        fault = Fault(status=status, code=code, message=message, stream_error_after=after_chunks)
        self._state.push_faults(fault, times)

    @property
    def pending_faults(self) -> int:
        """How many queued faults have not been used yet."""
        return self._state.pending_faults()

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self._state.clear_faults()


def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    api_key: str | None = None,
    behavior: Behavior | None = None,
    out: TextIO | None = None,
    stop_event: threading.Event | None = None,
) -> None:
    """Run a :class:`MockProvider` in the foreground until Ctrl+C (or ``stop_event``).

    Prints the URL and each provider's base URL to ``out`` (stdout by default).
    """
    stream = out if out is not None else sys.stdout
    mock = MockProvider(host, port, api_key, behavior=behavior)
    mock.start()
    try:
        print(f"aiscope mock provider listening on {mock.url}", file=stream)
        for provider in ("openai", "anthropic", "gemini"):
            print(f"  {provider:<10} base_url={mock.base_url(provider)}", file=stream)
        print("Press Ctrl+C to stop.", file=stream, flush=True)
        event = stop_event or threading.Event()
        while not event.wait(0.2):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        mock.stop()


__all__ = [
    "BASE_PATHS",
    "MockProvider",
    "expected_completion",
    "prompt_tokens",
    "serve",
]
