"""Provider protocols as data: manifests shipped as package data, validated once.

A manifest says how to talk to one provider: base URL, authentication, how a chat
request is laid out, where the text/usage/ids are in a response (JSONPath), how a
stream is framed and which frames mean what (the event map), how errors are
classified, and which headers carry request ids, Retry-After and rate limits.
OpenAI-compatible providers ``extends: openai`` and override what differs.

A bad manifest fails at load with a :class:`ManifestError` naming the file, the
key and what is wrong. Nothing is ever fetched from a network.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from aiscope.client._paths import JsonPath, PathError

log = logging.getLogger("aiscope.client")

__all__ = [
    "Auth",
    "Condition",
    "EventRule",
    "ManifestError",
    "ManifestRegistry",
    "ProviderManifest",
    "UsageMap",
    "get_manifest",
    "load_manifest",
    "registry",
]

FORMATS = ("openai", "anthropic", "gemini")
EVENT_KINDS = ("text_delta", "tool_call_delta", "finish", "usage", "meta", "error", "end")
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)
ERROR_KINDS = (
    "bad_request",
    "authentication",
    "permission_denied",
    "not_found",
    "timeout",
    "conflict",
    "rate_limit",
    "quota_exceeded",
    "server_error",
    "unavailable",
    "overloaded",
)
REQUEST_FIELDS = ("model", "temperature", "max_tokens", "stop", "stream", "tools", "top_p")


class ManifestError(ValueError):
    """A provider manifest that cannot be used: names the file, the key and the problem."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source = source
        self.key = key
        self.problem = problem
        super().__init__(f"{source}: {key}: {problem}")


@dataclass(frozen=True, slots=True)
class Auth:
    """Where the API key comes from and how it is sent."""

    env: tuple[str, ...]
    header: str | None
    prefix: str
    query_param: str | None
    required: bool


@dataclass(frozen=True, slots=True)
class Condition:
    """``path`` equals ``equals`` (or, with ``exists``, is present)."""

    path: JsonPath
    equals: Any = None
    exists: bool = False

    def holds(self, frame: Any) -> bool:
        value = self.path.first(frame)
        if self.exists:
            return value is not None
        return bool(value == self.equals)


@dataclass(frozen=True, slots=True)
class EventRule:
    """One entry of a stream's event map."""

    emit: str
    when: tuple[Condition, ...]
    select: JsonPath | None
    fields: Mapping[str, JsonPath]
    each: bool


@dataclass(frozen=True, slots=True)
class UsageMap:
    """JSONPaths of usage counts, and how the provider counts them."""

    paths: Mapping[str, JsonPath]
    input_excludes_cache: bool
    output_excludes_reasoning: bool


@dataclass(frozen=True, slots=True)
class ProviderManifest:
    """One provider's protocol, validated and compiled."""

    id: str
    name: str
    source: str
    base_url: str
    base_url_env: str | None
    pricing_id: str
    auth: Auth
    headers: Mapping[str, str]
    chat_path: str
    stream_path: str
    stream_query: Mapping[str, str]
    model_in_path: bool
    format: str
    fields: Mapping[str, str | None]
    defaults: Mapping[str, Any]
    stream_extra: Mapping[str, Any]
    response: Mapping[str, JsonPath]
    usage: UsageMap
    framing: str
    done_data: str | None
    events: tuple[EventRule, ...]
    error_paths: Mapping[str, JsonPath]
    errors_by_status: Mapping[int, str]
    errors_by_code: Mapping[str, str]
    request_id_header: str | None
    retry_after_headers: tuple[str, ...]
    rate_limit_headers: Mapping[str, str]
    health_path: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into ``base``; lists and scalars replace."""
    out = dict(base)
    for k, v in over.items():
        # an empty mapping clears the base's (e.g. stream_extra: {})
        if isinstance(v, Mapping) and v and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


class _Reader:
    """Reads a raw manifest dict with errors that name the file and the key."""

    def __init__(self, source: str, data: Mapping[str, Any]) -> None:
        self.source = source
        self.data = data

    def fail(self, key: str, problem: str) -> ManifestError:
        return ManifestError(self.source, key, problem)

    def get(
        self, key: str, kind: type | tuple[type, ...], default: Any = ..., node: Any = None
    ) -> Any:
        parts = key.split(".")
        cur: Any = self.data if node is None else node
        for part in parts:
            if not isinstance(cur, Mapping) or part not in cur:
                if default is ...:
                    raise self.fail(key, "is required")
                return default
            cur = cur[part]
        if cur is None and default is not ...:
            return default
        if not isinstance(cur, kind):
            names = (
                kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            )
            raise self.fail(key, f"must be a {names}, got {type(cur).__name__} {cur!r}")
        return cur

    def path(self, key: str, expr: Any) -> JsonPath:
        if not isinstance(expr, str):
            raise self.fail(key, f"must be a JSONPath string, got {expr!r}")
        try:
            return JsonPath(expr)
        except PathError as exc:
            raise self.fail(key, str(exc)) from None

    def paths(
        self, key: str, mapping: Any, allowed: tuple[str, ...] | None = None
    ) -> dict[str, JsonPath]:
        if mapping is None:
            return {}
        if not isinstance(mapping, Mapping):
            raise self.fail(key, f"must be a mapping, got {type(mapping).__name__}")
        out = {}
        for k, v in mapping.items():
            if allowed is not None and k not in allowed:
                raise self.fail(f"{key}.{k}", f"unknown field; allowed: {', '.join(allowed)}")
            out[str(k)] = self.path(f"{key}.{k}", v)
        return out


_KNOWN_TOP = {
    "id",
    "name",
    "extends",
    "docs",
    "base_url",
    "base_url_env",
    "pricing_id",
    "auth",
    "headers",
    "chat",
    "request",
    "response",
    "streaming",
    "errors",
    "response_headers",
    "health",
}


def _parse_manifest(
    data: Mapping[str, Any], source: str, base: ProviderManifest | None = None
) -> ProviderManifest:
    """Validate and compile a raw manifest (already merged with its base, if any)."""
    if base is not None:
        data = _merge(base.raw, {k: v for k, v in data.items() if k != "extends"})
    r = _Reader(source, data)
    for key in data:
        if key not in _KNOWN_TOP:
            raise r.fail(str(key), f"unknown key; allowed: {', '.join(sorted(_KNOWN_TOP))}")
    pid = r.get("id", str)
    if not pid or not pid.replace("-", "").replace("_", "").isalnum():
        raise r.fail("id", f"must be a simple identifier, got {pid!r}")
    base_url = r.get("base_url", str)
    if not base_url.startswith(("http://", "https://")):
        raise r.fail("base_url", f"must be an http(s) URL, got {base_url!r}")

    env = r.get("auth.env", (str, list), default=[])
    env_names = (env,) if isinstance(env, str) else tuple(env)
    auth = Auth(
        env=env_names,
        header=r.get("auth.header", str, default=None),
        prefix=r.get("auth.prefix", str, default=""),
        query_param=r.get("auth.query_param", str, default=None),
        required=r.get("auth.required", bool, default=True),
    )
    if auth.required and not (auth.header or auth.query_param):
        raise r.fail("auth", "needs a header or a query_param when required")

    fmt = r.get("request.format", str)
    if fmt not in FORMATS:
        raise r.fail("request.format", f"must be one of {', '.join(FORMATS)}, got {fmt!r}")
    fields = r.get("request.fields", Mapping)
    for k, v in fields.items():
        if k not in REQUEST_FIELDS:
            raise r.fail(
                f"request.fields.{k}", f"unknown field; allowed: {', '.join(REQUEST_FIELDS)}"
            )
        if v is not None and not isinstance(v, str):
            raise r.fail(f"request.fields.{k}", f"must be a dotted body path or null, got {v!r}")

    response = r.paths(
        "response", {k: v for k, v in r.get("response", Mapping).items() if k != "usage"}
    )
    for required in ("text", "finish_reason"):
        if required not in response:
            raise r.fail(f"response.{required}", "is required")
    usage = UsageMap(
        paths=r.paths("response.usage.paths", r.get("response.usage.paths", Mapping), USAGE_FIELDS),
        input_excludes_cache=r.get("response.usage.input_excludes_cache", bool, default=False),
        output_excludes_reasoning=r.get(
            "response.usage.output_excludes_reasoning", bool, default=False
        ),
    )

    framing = r.get("streaming.framing", str, default="sse")
    if framing != "sse":
        raise r.fail("streaming.framing", f"only 'sse' is supported, got {framing!r}")
    events = []
    raw_events = r.get("streaming.events", list)
    for i, ev in enumerate(raw_events):
        key = f"streaming.events[{i}]"
        if not isinstance(ev, Mapping):
            raise r.fail(key, "must be a mapping")
        emit = ev.get("emit")
        if emit not in EVENT_KINDS:
            raise r.fail(f"{key}.emit", f"must be one of {', '.join(EVENT_KINDS)}, got {emit!r}")
        unknown = set(ev) - {"emit", "when", "select", "fields", "each"}
        if unknown:
            raise r.fail(
                f"{key}.{sorted(unknown)[0]}",
                "unknown key; allowed: emit, when, select, fields, each",
            )
        conds = []
        raw_when = ev.get("when") or []
        if isinstance(raw_when, Mapping):
            raw_when = [raw_when]
        for j, c in enumerate(raw_when):
            if not isinstance(c, Mapping) or "path" not in c or not ({"equals", "exists"} & set(c)):
                raise r.fail(f"{key}.when[{j}]", "needs path and equals (or exists: true)")
            conds.append(
                Condition(
                    r.path(f"{key}.when[{j}].path", c["path"]),
                    c.get("equals"),
                    bool(c.get("exists")),
                )
            )
        select = r.path(f"{key}.select", ev["select"]) if "select" in ev else None
        ev_fields = r.paths(f"{key}.fields", ev.get("fields"))
        if emit == "usage":
            for k in ev_fields:
                if k not in USAGE_FIELDS:
                    raise r.fail(
                        f"{key}.fields.{k}",
                        f"unknown usage field; allowed: {', '.join(USAGE_FIELDS)}",
                    )
        if emit in ("text_delta", "finish", "error") and select is None:
            raise r.fail(f"{key}.select", f"is required for emit: {emit}")
        events.append(EventRule(emit, tuple(conds), select, ev_fields, bool(ev.get("each", False))))

    by_status_raw = r.get("errors.by_status", Mapping, default={})
    by_status: dict[int, str] = {}
    for k, v in by_status_raw.items():
        try:
            code = int(k)
        except (TypeError, ValueError):
            raise r.fail(f"errors.by_status.{k}", "keys must be HTTP status codes") from None
        if v not in ERROR_KINDS:
            raise r.fail(
                f"errors.by_status.{k}", f"must be one of {', '.join(ERROR_KINDS)}, got {v!r}"
            )
        by_status[code] = v
    by_code = r.get("errors.by_code", Mapping, default={})
    for k, v in by_code.items():
        if v not in ERROR_KINDS:
            raise r.fail(
                f"errors.by_code.{k}", f"must be one of {', '.join(ERROR_KINDS)}, got {v!r}"
            )
    retry_after = r.get(
        "response_headers.retry_after", list, default=["retry-after-ms", "retry-after"]
    )

    chat_path = r.get("chat.path", str)
    model_in_path = "{model}" in chat_path
    return ProviderManifest(
        id=pid,
        name=r.get("name", str, default=pid),
        source=source,
        base_url=base_url.rstrip("/"),
        base_url_env=r.get("base_url_env", str, default=None),
        pricing_id=r.get("pricing_id", str, default=pid),
        auth=auth,
        headers={str(k): str(v) for k, v in r.get("headers", Mapping, default={}).items()},
        chat_path=chat_path,
        stream_path=r.get("chat.stream_path", str, default=chat_path),
        stream_query={
            str(k): str(v) for k, v in r.get("chat.stream_query", Mapping, default={}).items()
        },
        model_in_path=model_in_path,
        format=fmt,
        fields=dict(fields),
        defaults=dict(r.get("request.defaults", Mapping, default={})),
        stream_extra=dict(r.get("request.stream_extra", Mapping, default={})),
        response=response,
        usage=usage,
        framing=framing,
        done_data=r.get("streaming.done", str, default=None),
        events=tuple(events),
        error_paths=r.paths(
            "errors.paths", r.get("errors.paths", Mapping, default={}), ("message", "code")
        ),
        errors_by_status=by_status,
        errors_by_code={str(k): str(v) for k, v in by_code.items()},
        request_id_header=r.get("response_headers.request_id", str, default=None),
        retry_after_headers=tuple(str(h).lower() for h in retry_after),
        rate_limit_headers={
            str(k): str(v).lower()
            for k, v in r.get("response_headers.rate_limit", Mapping, default={}).items()
        },
        health_path=r.get("health.path", str, default=None),
        raw=data,
    )


def _read_yaml(text: str, source: str) -> Mapping[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(source, "(file)", f"not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ManifestError(source, "(file)", "must be a YAML mapping")
    return data


class ManifestRegistry:
    """The manifests shipped with aiscope plus any the user adds; each loaded once."""

    def __init__(self) -> None:
        self._raw: dict[str, tuple[Mapping[str, Any], str]] = {}
        self._loaded: dict[str, ProviderManifest] = {}
        self._lock = threading.RLock()
        pkg = resources.files("aiscope.client") / "protocols"
        for entry in sorted(pkg.iterdir(), key=lambda e: e.name):
            if entry.name.endswith((".yaml", ".yml")):
                source = f"aiscope/client/protocols/{entry.name}"
                data = _read_yaml(entry.read_text(encoding="utf-8"), source)
                self._raw[str(data.get("id", entry.name.rsplit(".", 1)[0]))] = (data, source)

    def ids(self) -> list[str]:
        """Every provider id known."""
        return sorted(self._raw)

    def get(self, provider_id: str) -> ProviderManifest:
        """The compiled manifest of ``provider_id`` (loaded and validated on first use)."""
        with self._lock:
            hit = self._loaded.get(provider_id)
            if hit is not None:
                return hit
            if provider_id not in self._raw:
                raise KeyError(
                    f"unknown provider {provider_id!r}; known: {', '.join(self.ids())} "
                    "(add one with aiscope.client.load_manifest(path))"
                )
            data, source = self._raw[provider_id]
            base = None
            parent = data.get("extends")
            if parent is not None:
                if parent == provider_id or parent not in self._raw:
                    raise ManifestError(source, "extends", f"unknown base provider {parent!r}")
                base = self.get(str(parent))
            manifest = _parse_manifest(data, source, base)
            log.debug("loaded protocol manifest %s from %s", provider_id, source)
            self._loaded[provider_id] = manifest
            return manifest

    def add_file(self, path: str | Path) -> ProviderManifest:
        """Load a user manifest from a YAML file; it replaces a shipped one of the same id."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ManifestError(str(p), "(file)", f"cannot read: {exc}") from None
        data = _read_yaml(text, str(p))
        pid = data.get("id")
        if not isinstance(pid, str):
            raise ManifestError(str(p), "id", "is required")
        with self._lock:
            old = self._raw.get(pid)
            self._raw[pid] = (data, str(p))
            self._loaded.pop(pid, None)
            try:
                return self.get(pid)
            except ManifestError:
                if old is None:
                    del self._raw[pid]
                else:
                    self._raw[pid] = old
                raise


@functools.cache
def registry() -> ManifestRegistry:
    """The process-wide manifest registry."""
    return ManifestRegistry()


def load_manifest(path: str | Path) -> ProviderManifest:
    """Add a provider manifest from a YAML file (validated now)."""
    return registry().add_file(path)


def get_manifest(provider_id: str) -> ProviderManifest:
    """The manifest of a provider id (``openai``, ``anthropic``, ``gemini``, ...)."""
    return registry().get(provider_id)
