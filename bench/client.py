"""Overhead of aiscope's AiClient over a bare httpx2 request, next to ai-lib-python's client.

Run it with the dev interpreter (``.venv/bin/python bench/client.py``) or the bench
one (``.venv-bench/bin/python bench/client.py``, as ``bench/run`` does); ``--quick``
is a short run. The ai-lib-python 1.2.0 part runs in a worker process with an
interpreter that has it (this one if it can import it, else ``.venv-bench``, which
``bench/run`` creates); without one that part is skipped, with the reason printed.

Every contender makes the same request: the chat body, URL and headers aiscope
compiles for ``openai/gpt-4o`` (a system and a user message), so the bare
baselines put exactly aiscope's bytes on the wire. What is timed, per call:

1. in-process: an ``httpx2.MockTransport`` answering the OpenAI chat completion that
   ``MockProvider`` sends (its bytes and headers, captured once at start). Bare:
   ``httpx2.Client.post`` + ``.json()`` + the text and usage fields (and the
   ``httpx2.AsyncClient`` twin). aiscope: ``execute_sync()`` / ``await execute()``
   on an AiClient with the same transport, (a) with no sinks (nothing configured:
   the default scope has no metrics or cost tracker), (b) with a MetricsCollector
   and a CostTracker (a $1e12 budget, ``block`` mode).
2. loopback: the same against ``MockProvider`` over real HTTP/1.1 with keep-alive
   (one persistent client each). The mock runs in a process of its own, so that no
   client shares its interpreter (and GIL) with the server.
3. streaming: a ``MockProvider`` stream of ``--chunks`` text deltas, one token each
   (plus its role, finish and usage frames and ``[DONE]``). Bare: ``stream()`` +
   a minimal SSE line split + ``json.loads`` of each frame + the delta's content.
   aiscope: ``stream_sync()`` / ``async for ... in stream()``, consuming every
   event. In-process (the captured SSE body served one frame per chunk by a
   MockTransport: no server noise) and over loopback.
4. ai-lib-python's ``AiClient`` (async only) on the same endpoints, next to a bare
   ``httpx2.AsyncClient`` in its own worker process; see the notes it prints.

Timing: each contender makes a fixed number of calls per pass; every round runs
one pass of each, in rotating order (the peer's passes are interleaved with
aiscope's, on request over a pipe), with the garbage collector off during each
pass. A pass is timed by the thread's CPU time (``--clock cpu``, the default: other
processes on a shared machine do not inflate it, and it leaves out the time spent
waiting for the server, so the loopback rows' ``x base`` compare client-side work)
or by wall time (``--clock wall``). The table gives medians over the rounds, and
the overhead as the median of the per-round differences from the baseline (both
measured in the same round). ``--profile`` adds cProfile evidence of where an
in-process aiscope call spends its time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import importlib.metadata
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx2

from _timing import (
    Contender,
    one_pass,
    paired_differences,
    print_table,
    progress,
    quartiles,
    time_rounds,
)

MODEL = "openai/gpt-4o"
API_KEY = "sk-bench-0000"
SYSTEM = "You are a concise assistant."
PROMPT = "Summarize the plot of Hamlet in two sentences."
INPROC_BASE = "http://mock.local/v1"  # never resolved: served by an httpx2.MockTransport
TIMEOUT_S = 60.0
ROOT = Path(__file__).resolve().parent.parent
BENCH_PYTHON = Path(os.environ.get("BENCH_VENV", ROOT / ".venv-bench")) / "bin" / "python"

#: The OpenAI provider manifest ai-lib-python loads (it ships none: protocol/loader.py
#: looks for an ai-protocol checkout, then GitHub). A copy of ailib-official/ai-protocol
#: dist/v2/providers/openai.json (v5.3.0) without the sections its chat and streaming
#: paths do not read (multimodal, computer_use, mcp, metadata).
AILIB_OPENAI_MANIFEST: dict[str, Any] = {
    "id": "openai",
    "protocol_version": "2.0",
    "name": "OpenAI",
    "version": "5.3.0",
    "status": "stable",
    "category": "ai_provider",
    "endpoint": {
        "base_url": "https://api.openai.com/v1",
        "chat": "/chat/completions",
        "auth": {
            "type": "bearer",
            "header": "Authorization",
            "prefix": "Bearer",
            "token_env": "OPENAI_API_KEY",
        },
    },
    "error_classification": {
        "by_http_status": {
            "400": "invalid_request",
            "401": "authentication",
            "403": "permission_denied",
            "404": "not_found",
            "413": "request_too_large",
            "429": "rate_limited",
            "500": "server_error",
            "503": "overloaded",
        },
    },
    "capabilities": {"required": ["text", "streaming", "tools"], "optional": ["vision"]},
    "streaming": {
        "decoder": {
            "format": "sse",
            "strategy": "openai_chat",
            "done_signal": "[DONE]",
            "prefix": "data: ",
        },
        "event_map": [
            {
                "match": "$.choices[0].delta.content",
                "emit": "PartialContentDelta",
                "extract": {"content": "$.choices[0].delta.content"},
            },
            {
                "match": "$.choices[0].delta.tool_calls",
                "emit": "PartialToolCall",
                "extract": {"tool_calls": "$.choices[0].delta.tool_calls"},
            },
            {
                "match": "$.choices[0].finish_reason",
                "emit": "StreamEnd",
                "extract": {"finish_reason": "$.choices[0].finish_reason"},
            },
            {"match": "$.usage", "emit": "UsageReport", "extract": {"usage": "$.usage"}},
        ],
        "candidate": {"candidate_id_path": "$.choices[*].index", "fan_out": True},
        "accumulator": {
            "stateful_tool_parsing": True,
            "key_path": "$.choices[0].delta.tool_calls[0].function.arguments",
            "flush_on": "$.choices[0].finish_reason == 'tool_calls'",
        },
    },
    "api_families": ["chat_completions", "completions", "embeddings", "assistants", "realtime"],
    "default_api_family": "chat_completions",
    "endpoints": {"chat": {"path": "/chat/completions", "method": "POST", "adapter": "openai"}},
    "rate_limit_headers": {
        "requests_limit": "x-ratelimit-limit-requests",
        "requests_remaining": "x-ratelimit-remaining-requests",
        "tokens_limit": "x-ratelimit-limit-tokens",
        "tokens_remaining": "x-ratelimit-remaining-tokens",
        "retry_after": "retry-after",
    },
    "retry_policy": {
        "strategy": "exponential_backoff",
        "max_retries": 3,
        "min_delay_ms": 1000,
        "max_delay_ms": 60000,
        "jitter": "full",
        "retry_on_http_status": [429, 500, 502, 503],
    },
    "termination": {
        "source_field": "finish_reason",
        "mapping": {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"},
    },
}

#: Why the ai-lib-python rows look as they do (paths in its 1.2.0 wheel).
AILIB_NOTES = (
    "base URL: AiClientBuilder.base_url() (client/builder.py:110) reaches "
    "HttpTransport (transport/http.py:100), whose httpx2.AsyncClient gets base_url= "
    "(transport/http.py:144-150): the loopback rows use only public API.",
    "no transport injection: that AsyncClient is built without transport= "
    "(transport/http.py:144-150) and the builder has no transport option "
    "(client/builder.py:45-60); the in-process rows replace the private "
    "HttpTransport._client (transport/http.py:134) with an AsyncClient on the same "
    "MockTransport handler.",
    "async only: ChatRequestBuilder has only `async def execute` (client/builder.py:563) "
    "and `async def stream` (client/builder.py:581): no sync rows.",
    "no bundled manifests: ProtocolLoader searches ai-protocol/ checkouts, then fetches "
    "from GitHub (protocol/loader.py:26-33, 290-305); the worker writes the OpenAI "
    "manifest to a temporary directory given to .protocol_path().",
    "no per-call observability on its call path (no metrics, cost or budget sinks): "
    "compare it with aiscope's no-sinks rows. It sends model 'openai/gpt-4o' as given "
    "(client/core.py:201, builder.py:509); the mock echoes it.",
)


# -- wire helpers (parent and peer worker) -----------------------------------------------


def read_chat(resp: httpx2.Response) -> str:
    """What a bare caller reads from a chat completion: text and usage."""
    if resp.status_code != 200:
        raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
    data = resp.json()
    usage = data["usage"]
    if usage["prompt_tokens"] < 0 or usage["completion_tokens"] < 0:
        raise RuntimeError("bad usage")
    text: str = data["choices"][0]["message"]["content"]
    return text


class BareSSE:
    """The minimal SSE reader a bare caller writes: split lines, json.loads each
    ``data:`` frame, keep the delta's content (and the usage)."""

    __slots__ = ("buf", "parts", "usage")

    def __init__(self) -> None:
        self.buf = b""
        self.parts: list[str] = []
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> None:
        lines = (self.buf + chunk).split(b"\n")
        self.buf = lines.pop()
        for line in lines:
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                continue
            obj = json.loads(data)
            choices = obj["choices"]
            if choices:
                content = choices[0]["delta"].get("content")
                if content:
                    self.parts.append(content)
            elif obj.get("usage"):
                self.usage = obj["usage"]

    def text(self) -> str:
        return "".join(self.parts)


class FrameStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """A response body delivered one SSE frame per chunk, sync or async."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._frames)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for frame in self._frames:
            yield frame


def canned_transport(
    headers: list[tuple[str, str]], body: bytes | None = None, frames: list[bytes] | None = None
) -> httpx2.MockTransport:
    """A MockTransport answering every request with the captured response."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        if frames is not None:
            return httpx2.Response(200, headers=headers, stream=FrameStream(frames))
        return httpx2.Response(200, headers=headers, content=body)

    return httpx2.MockTransport(handler)


#: The clock of a timed pass: this thread's CPU time (the default, ``--clock cpu``), which
#: other processes on a shared machine do not inflate and which leaves out the wait for
#: the server; or wall time (``--clock wall``). Set once in the parent and the worker.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}
CLOCK = CLOCKS["cpu"]


def sync_runner(one: Callable[[], str], calls: int) -> Callable[[], float]:
    def run() -> float:
        t0 = CLOCK()
        for _ in range(calls):
            one()
        return CLOCK() - t0

    return run


def async_runner(
    one: Callable[[], Coroutine[Any, Any, str]], loop: asyncio.AbstractEventLoop, calls: int
) -> Callable[[], float]:
    async def go() -> float:
        t0 = CLOCK()
        for _ in range(calls):
            await one()
        return CLOCK() - t0

    return lambda: loop.run_until_complete(go())


def bare_chat_sync(http: httpx2.Client, req: dict[str, Any]) -> Callable[[], str]:
    post, url, body, headers = http.post, req["url"], req["body"], req["headers"]
    return lambda: read_chat(post(url, json=body, headers=headers))


def bare_chat_async(
    http: httpx2.AsyncClient, req: dict[str, Any]
) -> Callable[[], Coroutine[Any, Any, str]]:
    post, url, body, headers = http.post, req["url"], req["body"], req["headers"]

    async def one() -> str:
        return read_chat(await post(url, json=body, headers=headers))

    return one


def bare_stream_sync(http: httpx2.Client, req: dict[str, Any]) -> Callable[[], str]:
    url, body, headers = req["url"], req["body"], req["headers"]

    def one() -> str:
        sse = BareSSE()
        with http.stream("POST", url, json=body, headers=headers) as resp:
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}")
            for chunk in resp.iter_bytes():
                sse.feed(chunk)
        return sse.text()

    return one


def bare_stream_async(
    http: httpx2.AsyncClient, req: dict[str, Any]
) -> Callable[[], Coroutine[Any, Any, str]]:
    url, body, headers = req["url"], req["body"], req["headers"]

    async def one() -> str:
        sse = BareSSE()
        async with http.stream("POST", url, json=body, headers=headers) as resp:
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}")
            async for chunk in resp.aiter_bytes():
                sse.feed(chunk)
        return sse.text()

    return one


def check(key: str, got: str, want: str) -> None:
    if got != want:
        raise RuntimeError(f"{key}: unexpected reply {got[:80]!r}, want {want[:80]!r}")


# -- the mock server process -------------------------------------------------------------


def serve_main(chunks: int) -> int:
    """``--serve``: two MockProviders (chat; streams of ``chunks`` deltas) until stdin closes."""
    from aiscope.testing import MockProvider

    chat = MockProvider(log_limit=0).start()
    stream = MockProvider(log_limit=0).start()
    stream.behave(reply_tokens=chunks, tokens_per_chunk=1)
    urls = {"chat": chat.base_url("openai"), "stream": stream.base_url("openai")}
    print(json.dumps(urls), flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    finally:
        chat.stop()
        stream.stop()
    return 0


# -- the ai-lib-python worker process ----------------------------------------------------


def worker_main() -> int:
    """``--worker``: time ai-lib-python (and a bare AsyncClient) on request, over stdio."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    sys.stdout = sys.stderr  # nothing but the protocol goes to the pipe

    def reply(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")

    cfg = json.loads(sys.stdin.readline())
    try:
        from ai_lib_python import AiClient as AiLibClient
    except ImportError as exc:
        reply({"ok": False, "reason": f"cannot import ai_lib_python: {exc}"})
        return 0
    loop = asyncio.new_event_loop()
    protocol_dir = tempfile.TemporaryDirectory(prefix="bench-ai-protocol-")
    path = Path(protocol_dir.name) / "dist" / "v2" / "providers" / "openai.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(cfg["manifest"]))
    inproc_chat = canned_transport(cfg["chat_headers"], body=base64.b64decode(cfg["chat_body"]))
    sse_frames = [base64.b64decode(f) for f in cfg["sse_frames"]]
    inproc_sse = canned_transport(cfg["sse_headers"], frames=sse_frames)
    reqs, calls, want = cfg["requests"], cfg["calls"], cfg["expected"]
    global CLOCK
    CLOCK = CLOCKS[cfg["clock"]]

    async def ailib_client(base: str, transport: httpx2.MockTransport | None) -> Any:
        client = await (
            AiLibClient.builder()
            .model(MODEL)
            .protocol_path(protocol_dir.name)
            .api_key(API_KEY)
            .base_url(base)
            .build()
        )
        if transport is not None:  # private: no public way to give it a transport
            t = client._transport
            t._client = httpx2.AsyncClient(
                base_url=base, timeout=t._timeout, transport=transport, trust_env=False
            )
        return client

    def ailib_chat(client: Any) -> Callable[[], Coroutine[Any, Any, str]]:
        async def one() -> str:
            resp = await client.chat().system(SYSTEM).user(PROMPT).execute()
            if not resp.usage:
                raise RuntimeError("ai-lib: no usage")
            text: str = resp.content
            return text

        return one

    def ailib_stream(client: Any) -> Callable[[], Coroutine[Any, Any, str]]:
        async def one() -> str:
            parts = []
            builder = client.chat().system(SYSTEM).user(PROMPT)
            builder.param("stream_options", {"include_usage": True})
            async for ev in builder.stream():
                if ev.is_content_delta:
                    parts.append(ev.as_content_delta.content)
            return "".join(parts)

        return one

    def client(base: str, transport: httpx2.MockTransport | None) -> Any:
        return loop.run_until_complete(ailib_client(base, transport))

    def bare(transport: httpx2.MockTransport | None) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(timeout=TIMEOUT_S, transport=transport)

    # key -> factory of the one-call coroutine function
    plan: dict[str, Callable[[], Callable[[], Coroutine[Any, Any, str]]]] = {
        "ip.peer.bare": lambda: bare_chat_async(bare(inproc_chat), reqs["ip"]),
        "ip.peer.ailib": lambda: ailib_chat(client(INPROC_BASE, inproc_chat)),
        "lb.peer.bare": lambda: bare_chat_async(bare(None), reqs["lb"]),
        "lb.peer.ailib": lambda: ailib_chat(client(cfg["chat_base"], None)),
        "is.peer.bare": lambda: bare_stream_async(bare(inproc_sse), reqs["is"]),
        "is.peer.ailib": lambda: ailib_stream(client(INPROC_BASE, inproc_sse)),
        "ls.peer.bare": lambda: bare_stream_async(bare(None), reqs["ls"]),
        "ls.peer.ailib": lambda: ailib_stream(client(cfg["stream_base"], None)),
    }
    runs: dict[str, Callable[[], float]] = {}
    skipped: dict[str, str] = {}
    for key, make in plan.items():
        section = key.split(".")[0]
        if section not in cfg["sections"]:
            continue
        try:
            one = make()
            got = loop.run_until_complete(one())
            check(key, got, want["stream" if section in ("is", "ls") else "chat"])
        except Exception as exc:
            skipped[key] = f"{type(exc).__name__}: {exc}"
            continue
        runs[key] = async_runner(one, loop, calls[section])
    reply(
        {
            "ok": True,
            "version": importlib.metadata.version("ai-lib-python"),
            "python": sys.executable,
            "keys": list(runs),
            "skipped": skipped,
        }
    )
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "pass":
            reply({"s": one_pass(runs[cmd["key"]])})
        elif cmd["cmd"] == "quit":
            break
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    protocol_dir.cleanup()
    return 0


class Worker:
    """The parent's side of the peer worker."""

    def __init__(self, python: str) -> None:
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in: IO[str] = self.proc.stdin
        self._out: IO[str] = self.proc.stdout

    def ask(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._in.write(json.dumps(obj) + "\n")
        self._in.flush()
        line = self._out.readline()
        if not line:
            raise RuntimeError(f"peer worker exited (status {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def runner(self, key: str) -> Callable[[], float]:
        def run() -> float:
            seconds: float = self.ask({"cmd": "pass", "key": key})["s"]
            return seconds

        return run

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self._in.write(json.dumps({"cmd": "quit"}) + "\n")
                self._in.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def peer_python(explicit: str | None) -> tuple[str | None, str]:
    """The interpreter for the ai-lib-python worker, or None and why not."""
    if explicit:
        return explicit, "--peer-python"
    try:
        importlib.metadata.version("ai-lib-python")
        return sys.executable, "this interpreter"
    except importlib.metadata.PackageNotFoundError:
        pass
    if BENCH_PYTHON.exists():
        return str(BENCH_PYTHON), str(BENCH_PYTHON)
    return None, (
        f"ai-lib-python is not installed here and {BENCH_PYTHON} does not exist "
        "(`bash bench/run` creates it)"
    )


# -- the parent: setup -------------------------------------------------------------------


@dataclass
class Setup:
    """Everything the contenders share."""

    reqs: dict[str, dict[str, Any]]  # compiled requests by section: ip, lb, is, ls
    chat_headers: list[tuple[str, str]]
    chat_body: bytes
    sse_headers: list[tuple[str, str]]
    sse_frames: list[bytes]
    want_chat: str
    want_stream: str
    chunks: int
    urls: dict[str, str]


def compiled(base: str, stream: bool) -> dict[str, Any]:
    from aiscope.client._compile import compile_request
    from aiscope.client.manifest import get_manifest
    from aiscope.client.request import ChatRequest

    model = MODEL.split("/", 1)[1]
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    req = ChatRequest(model=model, messages=messages)
    c = compile_request(get_manifest("openai"), req, stream=stream, api_key=API_KEY, base_url=base)
    return {"url": c.url, "body": c.body, "headers": c.headers}


def replay_headers(resp: httpx2.Response) -> list[tuple[str, str]]:
    drop = {"content-length", "transfer-encoding", "connection", "date", "server"}
    return [(k, v) for k, v in resp.headers.multi_items() if k.lower() not in drop]


def prepare(urls: dict[str, str], chunks: int) -> Setup:
    reqs = {
        "ip": compiled(INPROC_BASE, False),
        "lb": compiled(urls["chat"], False),
        "is": compiled(INPROC_BASE, True),
        "ls": compiled(urls["stream"], True),
    }
    with httpx2.Client(timeout=TIMEOUT_S) as http:
        r = reqs["lb"]
        chat = http.post(r["url"], json=r["body"], headers=r["headers"])
        want_chat = read_chat(chat)
        r = reqs["ls"]
        sse = http.post(r["url"], json=r["body"], headers=r["headers"])
        sse.raise_for_status()
    frames = [f + b"\n\n" for f in sse.content.split(b"\n\n") if f.strip()]
    reader = BareSSE()
    reader.feed(sse.content)
    if len(reader.parts) != chunks:
        raise RuntimeError(f"the mock streamed {len(reader.parts)} deltas, not {chunks}")
    return Setup(
        reqs=reqs,
        chat_headers=replay_headers(chat),
        chat_body=chat.content,
        sse_headers=replay_headers(sse),
        sse_frames=frames,
        want_chat=want_chat,
        want_stream=reader.text(),
        chunks=chunks,
        urls=urls,
    )


def aiscope_client(base: str, transport: httpx2.MockTransport | None, sinks: bool) -> Any:
    from aiscope import AiClient, CostTracker, MetricsCollector

    b = AiClient.builder().model(MODEL).api_key(API_KEY).base_url(base).timeout(TIMEOUT_S)
    if transport is not None:
        b = b.transport(transport)
    if sinks:
        b = b.metrics(MetricsCollector()).cost_tracker(CostTracker(budget_usd=1e12, mode="block"))
    return b.build()


def aiscope_chat_sync(client: Any) -> Callable[[], str]:
    chat = client.chat

    def one() -> str:
        resp = chat().system(SYSTEM).user(PROMPT).execute_sync()
        if resp.usage.input_tokens < 0:
            raise RuntimeError("bad usage")
        text: str = resp.text
        return text

    return one


def aiscope_chat_async(client: Any) -> Callable[[], Coroutine[Any, Any, str]]:
    chat = client.chat

    async def one() -> str:
        resp = await chat().system(SYSTEM).user(PROMPT).execute()
        if resp.usage.input_tokens < 0:
            raise RuntimeError("bad usage")
        text: str = resp.text
        return text

    return one


def aiscope_stream_sync(client: Any) -> Callable[[], str]:
    chat = client.chat

    def one() -> str:
        parts = []
        for ev in chat().system(SYSTEM).user(PROMPT).stream_sync():
            if ev.kind == "text_delta":
                parts.append(ev.text)
        return "".join(parts)

    return one


def aiscope_stream_async(client: Any) -> Callable[[], Coroutine[Any, Any, str]]:
    chat = client.chat

    async def one() -> str:
        parts = []
        async for ev in chat().system(SYSTEM).user(PROMPT).stream():
            if ev.kind == "text_delta":
                parts.append(ev.text)
        return "".join(parts)

    return one


@dataclass
class Row:
    key: str
    label: str
    baseline: str | None = None  # key of the row this one's overhead is measured against


@dataclass
class Section:
    key: str
    title: str
    rows: list[Row]
    chunks: int = 0  # > 0: a streaming section (per-chunk column)


def chat_rows(sec: str, private: str) -> list[Row]:
    """A chat section's rows: bare and aiscope (without and with sinks), sync and async,
    then the peer worker's bare client and ai-lib (``private``: how it was pointed)."""
    rows: list[Row] = []
    for mode, bare, call in (
        ("sync", "httpx2.Client", "execute_sync()"),
        ("async", "httpx2.AsyncClient", "await execute()"),
    ):
        base = f"{sec}.bare.{mode}"
        rows.append(Row(base, f"bare {bare}.post + .json()"))
        rows.append(Row(f"{sec}.ai.{mode}", f"aiscope {call}, no sinks", base))
        rows.append(Row(f"{sec}.ai.{mode}.sinks", f"aiscope {call}, metrics+cost", base))
    rows.append(Row(f"{sec}.peer.bare", "worker: bare httpx2.AsyncClient.post"))
    rows.append(Row(f"{sec}.peer.ailib", f"ai-lib await execute(){private}", f"{sec}.peer.bare"))
    return rows


def stream_rows(sec: str, private: str) -> list[Row]:
    """A streaming section's rows, as :func:`chat_rows` (no sinks)."""
    return [
        Row(f"{sec}.bare.sync", "bare Client.stream + SSE split + loads"),
        Row(f"{sec}.ai.sync", "aiscope stream_sync()", f"{sec}.bare.sync"),
        Row(f"{sec}.bare.async", "bare AsyncClient.stream + split + loads"),
        Row(f"{sec}.ai.async", "aiscope async for ... stream()", f"{sec}.bare.async"),
        Row(f"{sec}.peer.bare", "worker: bare AsyncClient.stream"),
        Row(f"{sec}.peer.ailib", f"ai-lib async for ... stream(){private}", f"{sec}.peer.bare"),
    ]


SECTIONS = [
    Section(
        "ip",
        "1. in-process: httpx2.MockTransport, canned OpenAI chat completion",
        chat_rows("ip", " [private _client]"),
    ),
    Section("lb", "2. loopback: MockProvider over HTTP/1.1, keep-alive", chat_rows("lb", "")),
    Section(
        "is",
        "3a. streaming in-process: captured SSE body, one frame per chunk",
        stream_rows("is", " [private]"),
    ),
    Section("ls", "3b. streaming over loopback: MockProvider, keep-alive", stream_rows("ls", "")),
]


def local_contenders(
    s: Setup, loop: asyncio.AbstractEventLoop, calls: dict[str, int], sections: set[str]
) -> dict[str, Contender]:
    """aiscope's and the bare contenders, each with its own client(s), checked once."""
    chat_t = canned_transport(s.chat_headers, body=s.chat_body)
    sse_t = canned_transport(s.sse_headers, frames=s.sse_frames)
    ip, lb, is_, ls = (s.reqs[k] for k in ("ip", "lb", "is", "ls"))
    sync_plan: dict[str, Callable[[], Callable[[], str]]] = {
        "ip.bare.sync": lambda: bare_chat_sync(
            httpx2.Client(timeout=TIMEOUT_S, transport=chat_t), ip
        ),
        "ip.ai.sync": lambda: aiscope_chat_sync(aiscope_client(INPROC_BASE, chat_t, False)),
        "ip.ai.sync.sinks": lambda: aiscope_chat_sync(aiscope_client(INPROC_BASE, chat_t, True)),
        "lb.bare.sync": lambda: bare_chat_sync(httpx2.Client(timeout=TIMEOUT_S), lb),
        "lb.ai.sync": lambda: aiscope_chat_sync(aiscope_client(s.urls["chat"], None, False)),
        "lb.ai.sync.sinks": lambda: aiscope_chat_sync(aiscope_client(s.urls["chat"], None, True)),
        "is.bare.sync": lambda: bare_stream_sync(
            httpx2.Client(timeout=TIMEOUT_S, transport=sse_t), is_
        ),
        "is.ai.sync": lambda: aiscope_stream_sync(aiscope_client(INPROC_BASE, sse_t, False)),
        "ls.bare.sync": lambda: bare_stream_sync(httpx2.Client(timeout=TIMEOUT_S), ls),
        "ls.ai.sync": lambda: aiscope_stream_sync(aiscope_client(s.urls["stream"], None, False)),
    }
    async_plan: dict[str, Callable[[], Callable[[], Coroutine[Any, Any, str]]]] = {
        "ip.bare.async": lambda: bare_chat_async(
            httpx2.AsyncClient(timeout=TIMEOUT_S, transport=chat_t), ip
        ),
        "ip.ai.async": lambda: aiscope_chat_async(aiscope_client(INPROC_BASE, chat_t, False)),
        "ip.ai.async.sinks": lambda: aiscope_chat_async(aiscope_client(INPROC_BASE, chat_t, True)),
        "lb.bare.async": lambda: bare_chat_async(httpx2.AsyncClient(timeout=TIMEOUT_S), lb),
        "lb.ai.async": lambda: aiscope_chat_async(aiscope_client(s.urls["chat"], None, False)),
        "lb.ai.async.sinks": lambda: aiscope_chat_async(aiscope_client(s.urls["chat"], None, True)),
        "is.bare.async": lambda: bare_stream_async(
            httpx2.AsyncClient(timeout=TIMEOUT_S, transport=sse_t), is_
        ),
        "is.ai.async": lambda: aiscope_stream_async(aiscope_client(INPROC_BASE, sse_t, False)),
        "ls.bare.async": lambda: bare_stream_async(httpx2.AsyncClient(timeout=TIMEOUT_S), ls),
        "ls.ai.async": lambda: aiscope_stream_async(aiscope_client(s.urls["stream"], None, False)),
    }
    out: dict[str, Contender] = {}
    labels = {r.key: r.label for sec in SECTIONS for r in sec.rows}
    for key, make in sync_plan.items():
        section = key.split(".")[0]
        if section not in sections:
            continue
        one = make()
        check(key, one(), s.want_stream if section in ("is", "ls") else s.want_chat)
        out[key] = Contender(key, labels[key], sync_runner(one, calls[section]), calls[section])
    for key, make_async in async_plan.items():
        section = key.split(".")[0]
        if section not in sections:
            continue
        aone = make_async()
        got = loop.run_until_complete(aone())
        check(key, got, s.want_stream if section in ("is", "ls") else s.want_chat)
        runner = async_runner(aone, loop, calls[section])
        out[key] = Contender(key, labels[key], runner, calls[section])
    return out


# -- the parent: report ------------------------------------------------------------------


def fmt_us(seconds: float, signed: bool = False) -> str:
    return f"{seconds * 1e6:+.1f}" if signed else f"{seconds * 1e6:.1f}"


def report(
    per_call: dict[str, list[float]], sections: list[Section], missing: dict[str, str]
) -> dict[str, float]:
    """Print the table; returns the median overhead (seconds) of each row with a baseline."""
    overheads: dict[str, float] = {}
    for sec in sections:
        print()
        print(sec.title)
        header = ["contender", "median µs", "p25..p75", "overhead µs", "p25..p75", "x base"]
        header += ["µs/chunk"] if sec.chunks else []
        rows: list[list[str]] = []
        for row in sec.rows:
            if row.key not in per_call:
                rows.append([row.label, "n/a: " + missing.get(row.key, "not run")])
                continue
            vals = per_call[row.key]
            med = statistics.median(vals)
            lo, hi = quartiles(vals)
            cells = [row.label, fmt_us(med), f"{fmt_us(lo)}..{fmt_us(hi)}"]
            if row.baseline is not None and row.baseline in per_call:
                diffs = paired_differences(vals, per_call[row.baseline])
                over = overheads[row.key] = statistics.median(diffs)
                dlo, dhi = quartiles(diffs)
                ratio = med / statistics.median(per_call[row.baseline])
                cells += [fmt_us(over, True), f"{fmt_us(dlo, True)}..{fmt_us(dhi, True)}"]
                cells += [f"{ratio:.2f}"]
                cells += [f"{over / sec.chunks * 1e6:.2f}"] if sec.chunks else []
            rows.append(cells + [""] * (len(header) - len(cells)))
        print_table(header, rows, indent="  ")
    return overheads


def summary(
    per_call: dict[str, list[float]], over: dict[str, float], chunks: int, have_peer: bool
) -> None:
    def us(key: str) -> str:
        return f"{over[key] * 1e6:+.1f} µs" if key in over else "n/a"

    def med(key: str) -> float | None:
        return statistics.median(per_call[key]) if key in per_call else None

    print()
    print("summary (medians; overhead = median of per-round differences from the bare row)")
    for sec, name in (("ip", "in-process:"), ("lb", "loopback:  ")):
        print(
            f"  per-call overhead, {name} "
            + ", ".join(
                f"{mode} {us(f'{sec}.ai.{mode}')} (metrics+cost {us(f'{sec}.ai.{mode}.sinks')})"
                for mode in ("sync", "async")
            )
        )
    for sec, name in (("is", "in-process"), ("ls", "loopback")):
        parts = []
        for mode in ("sync", "async"):
            key = f"{sec}.ai.{mode}"
            if key in over:
                per_chunk = over[key] / chunks * 1e6
                # net of the fixed per-call cost measured by the non-streaming rows
                fixed = over.get(f"{'ip' if sec == 'is' else 'lb'}.ai.{mode}")
                net = (
                    f", net of the per-call overhead {(over[key] - fixed) / chunks * 1e6:.2f}"
                    if fixed is not None
                    else ""
                )
                parts.append(
                    f"{mode} {over[key] * 1e3:+.2f} ms/stream = {per_chunk:.2f} µs/chunk{net}"
                )
        if parts:
            print(f"  streaming {chunks} chunks, {name}: " + "; ".join(parts))
    if not have_peer:
        return

    def xbase(key: str, base: str) -> str:
        a, b = med(key), med(base)
        return f"{a / b:.2f}" if a and b else "n/a"

    # Absolute times differ between the two processes (see the two bare rows), so the
    # peers are compared by overhead over their own process's bare client.
    for sec, what in (("ip", "in-process call"), ("lb", "loopback call")):
        if f"{sec}.ai.async" in over and f"{sec}.peer.ailib" in over:
            print(
                f"  vs ai-lib, {what} (async, no sinks): overhead aiscope "
                f"{us(f'{sec}.ai.async')} (x bare {xbase(f'{sec}.ai.async', f'{sec}.bare.async')})"
                f", ai-lib {us(f'{sec}.peer.ailib')} "
                f"(x bare {xbase(f'{sec}.peer.ailib', f'{sec}.peer.bare')})"
            )
    for sec, what in (("is", "in-process stream"), ("ls", "loopback stream")):
        a, p = over.get(f"{sec}.ai.async"), over.get(f"{sec}.peer.ailib")
        if a is not None and p is not None:
            print(
                f"  vs ai-lib, {what} (async): per chunk aiscope {a / chunks * 1e6:.2f} µs "
                f"(x bare {xbase(f'{sec}.ai.async', f'{sec}.bare.async')}), ai-lib "
                f"{p / chunks * 1e6:.2f} µs "
                f"(x bare {xbase(f'{sec}.peer.ailib', f'{sec}.peer.bare')})"
            )


# -- profiling ---------------------------------------------------------------------------

AREAS = ("aiscope", "httpx2", "httpcore2", "h11", "anyio", "prometheus_client", "asyncio", "json")


def _area(filename: str) -> str:
    for name in AREAS:
        if f"/{name}/" in filename:
            return name
    if filename == "~":
        return "C builtins"
    if "/bench/" in filename:
        return "bench loop"
    return "other stdlib"


def _profile(fn: Callable[[], Any], n: int) -> cProfile.Profile:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        fn()
    prof.disable()
    return prof


def _by_area(prof: cProfile.Profile, n: int) -> dict[str, float]:
    """Own time per call (seconds) of each area."""
    raw: dict[Any, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for (filename, _line, _name), v in raw.items():
        area = _area(filename)
        out[area] = out.get(area, 0.0) + v[2] / n
    return out


def _print_stats(prof: cProfile.Profile, sort: str, top: int, restrict: str | None) -> None:
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).sort_stats(sort)
    if restrict:
        stats.print_stats(restrict, top)
    else:
        stats.print_stats(top)
    lines = buf.getvalue().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    for ln in lines[start:]:
        if ln.strip():
            print("    " + ln.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", ""))


def profile_pair(
    label: str, bare: Callable[[], Any], ours: Callable[[], Any], n: int, top: int
) -> None:
    """cProfile ``n`` calls of the bare contender and of aiscope's: own time by area
    side by side, then aiscope's top functions."""
    for _ in range(max(3, n // 20)):  # warm both
        bare()
        ours()
    pb, pa = _profile(bare, n), _profile(ours, n)
    ab, aa = _by_area(pb, n), _by_area(pa, n)
    print()
    print(f"profile: {label}; {n} calls each under cProfile (it inflates the times)")
    print(f"  own time per call by area   {'bare µs':>9}  {'aiscope µs':>10}  {'delta µs':>9}")
    for area in sorted(set(ab) | set(aa), key=lambda a: -(aa.get(a, 0) - ab.get(a, 0))):
        b, a = ab.get(area, 0.0) * 1e6, aa.get(area, 0.0) * 1e6
        print(f"  {area:<27} {b:9.1f}  {a:10.1f}  {a - b:+9.1f}")
    tb, ta = sum(ab.values()) * 1e6, sum(aa.values()) * 1e6
    print(f"  {'total':<27} {tb:9.1f}  {ta:10.1f}  {ta - tb:+9.1f}")
    print(f"  aiscope run, top {top} functions by own time:")
    _print_stats(pa, "tottime", top, None)
    print(f"  aiscope run, top {top} aiscope functions by cumulative time:")
    _print_stats(pa, "cumulative", top, "aiscope")


def run_profiles(s: Setup, n: int) -> None:
    chat_t = canned_transport(s.chat_headers, body=s.chat_body)
    sse_t = canned_transport(s.sse_headers, frames=s.sse_frames)
    profile_pair(
        "in-process chat, bare httpx2.Client.post vs aiscope execute_sync() (no sinks)",
        bare_chat_sync(httpx2.Client(timeout=TIMEOUT_S, transport=chat_t), s.reqs["ip"]),
        aiscope_chat_sync(aiscope_client(INPROC_BASE, chat_t, False)),
        n,
        20,
    )
    profile_pair(
        "in-process chat, aiscope execute_sync() with metrics+cost (bare as above)",
        bare_chat_sync(httpx2.Client(timeout=TIMEOUT_S, transport=chat_t), s.reqs["ip"]),
        aiscope_chat_sync(aiscope_client(INPROC_BASE, chat_t, True)),
        n,
        12,
    )
    profile_pair(
        f"in-process stream of {s.chunks} chunks, bare Client.stream vs aiscope stream_sync()",
        bare_stream_sync(httpx2.Client(timeout=TIMEOUT_S, transport=sse_t), s.reqs["is"]),
        aiscope_stream_sync(aiscope_client(INPROC_BASE, sse_t, False)),
        max(10, n // 50),
        12,
    )


# -- main --------------------------------------------------------------------------------


def versions() -> str:
    names = ("aiscope", "httpx2", "httpcore2")
    return ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/client.py", description=__doc__.split("\n", 1)[0] if __doc__ else None
    )
    ap.add_argument("--quick", action="store_true", help="fewer rounds and calls per pass")
    ap.add_argument("--rounds", type=int, help="timed rounds (default 51; --quick 7)")
    ap.add_argument("--chunks", type=int, default=200, help="text deltas per stream (200)")
    ap.add_argument(
        "--only",
        metavar="SECTIONS",
        help="comma-separated sections: ip (in-process), lb (loopback), "
        "is (in-process stream), ls (loopback stream)",
    )
    ap.add_argument("--no-peer", action="store_true", help="skip ai-lib-python")
    ap.add_argument("--peer-python", help="interpreter with ai-lib-python for the peer worker")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="after the timing, cProfile aiscope's in-process call and stream",
    )
    ap.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="cpu",
        help="time passes by this thread's CPU time (default: steady on a busy machine, "
        "leaves out the wait for the server) or by wall time",
    )
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--serve", type=int, metavar="CHUNKS", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main()
    if args.serve is not None:
        return serve_main(args.serve)

    global CLOCK
    CLOCK = CLOCKS[args.clock]
    clock_name = "thread CPU time" if args.clock == "cpu" else "wall time"
    rounds = args.rounds or (7 if args.quick else 51)
    if rounds < 1 or args.chunks < 1:
        ap.error("--rounds and --chunks must be >= 1")
    all_sections = [sec.key for sec in SECTIONS]
    chosen = set(args.only.split(",")) if args.only else set(all_sections)
    if not chosen <= set(all_sections):
        ap.error(f"--only takes some of: {','.join(all_sections)}")
    # calls per pass: a pass lasts some 10-50 ms
    calls = (
        {"ip": 40, "lb": 20, "is": 3, "ls": 2}
        if args.quick
        else {"ip": 100, "lb": 40, "is": 6, "ls": 4}
    )
    sections = [sec for sec in SECTIONS if sec.key in chosen]
    for sec in sections:
        if sec.key in ("is", "ls"):
            sec.chunks = args.chunks

    print("aiscope AiClient overhead over bare httpx2, next to ai-lib-python")
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus; "
        f"{versions()}; load average at start {os.getloadavg()[0]:.2f}"
    )
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(args.chunks)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    worker: Worker | None = None
    loop = asyncio.new_event_loop()
    try:
        assert server.stdout is not None
        urls = json.loads(server.stdout.readline())
        setup = prepare(urls, args.chunks)
        print(
            f"request: {MODEL}, system+user messages, {len(json.dumps(setup.reqs['ip']['body']))} "
            f"B body; chat reply {len(setup.chat_body)} B; stream {setup.chunks} deltas in "
            f"{len(setup.sse_frames)} frames, {sum(map(len, setup.sse_frames))} B"
        )
        print(f"mock: MockProvider in its own process, {urls['chat']} and {urls['stream']}")
        contenders = local_contenders(setup, loop, calls, chosen)

        missing: dict[str, str] = {}
        peer_keys = [r.key for sec in sections for r in sec.rows if ".peer." in r.key]
        python, where = peer_python(args.peer_python)
        have_peer = False
        if args.no_peer:
            missing.update(dict.fromkeys(peer_keys, "skipped (--no-peer)"))
        elif python is None:
            missing.update(dict.fromkeys(peer_keys, f"skipped: {where}"))
        else:
            worker = Worker(python)
            hello = worker.ask(
                {
                    "manifest": AILIB_OPENAI_MANIFEST,
                    "chat_headers": setup.chat_headers,
                    "chat_body": base64.b64encode(setup.chat_body).decode(),
                    "sse_headers": setup.sse_headers,
                    "sse_frames": [base64.b64encode(f).decode() for f in setup.sse_frames],
                    "requests": setup.reqs,
                    "chat_base": urls["chat"],
                    "stream_base": urls["stream"],
                    "calls": calls,
                    "clock": args.clock,
                    "expected": {"chat": setup.want_chat, "stream": setup.want_stream},
                    "sections": sorted(chosen),
                }
            )
            if not hello["ok"]:
                missing.update(dict.fromkeys(peer_keys, f"skipped: {hello['reason']}"))
            else:
                have_peer = True
                print(f"peer: ai-lib-python {hello['version']} in a worker process ({where})")
                labels = {r.key: r.label for sec in SECTIONS for r in sec.rows}
                for key in hello["keys"]:
                    n = calls[key.split(".")[0]]
                    contenders[key] = Contender(key, labels[key], worker.runner(key), n)
                missing.update(hello["skipped"])
        print(
            f"timing: median of {rounds} rounds, contenders in rotating order (peer passes "
            f"interleaved), gc off in each pass, {clock_name}; calls per pass: "
            + ", ".join(f"{k} {calls[k]}" for k in all_sections if k in chosen)
        )

        groups = [[contenders[r.key] for r in sec.rows if r.key in contenders] for sec in sections]
        t0 = time.perf_counter()
        per_call = time_rounds(groups, rounds)
        took = time.perf_counter() - t0
        over = report(per_call, sections, missing)
        summary(per_call, over, args.chunks, have_peer)
        print()
        print(
            f"timing took {took:.0f} s; load average at end {os.getloadavg()[0]:.2f}; "
            "x base: ratio of the medians; µs/chunk: overhead / deltas"
        )
        if have_peer:
            print("ai-lib-python notes:")
            for note in AILIB_NOTES:
                print(f"  - {note}")
        if args.profile:
            progress("profiling")
            run_profiles(setup, 2000 if not args.quick else 500)
            progress("")
    finally:
        if worker is not None:
            worker.close()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
