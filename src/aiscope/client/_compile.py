"""Request compilation: a provider-neutral chat request laid out as a manifest says."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiscope.client.errors import ConfigurationError
from aiscope.client.manifest import ProviderManifest
from aiscope.client.request import ChatRequest, base_url_for


@dataclass(slots=True)
class CompiledRequest:
    """A request ready for the transport."""

    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]
    stream: bool


def _set(body: dict[str, Any], dotted: str, value: Any) -> None:
    node = body
    *head, last = dotted.split(".")
    for part in head:
        node = node.setdefault(part, {})
    node[last] = value


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _anthropic_messages(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    system = [_text_of(m.get("content")) for m in messages if m["role"] == "system"]
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            continue
        if role == "tool":
            block = {
                "type": "tool_result",
                "tool_use_id": m.get("tool_call_id", ""),
                "content": _text_of(m.get("content")),
            }
            out.append({"role": "user", "content": [block]})
        elif role == "assistant" and m.get("tool_calls"):
            blocks: list[dict[str, Any]] = []
            if m.get("content"):
                blocks.append({"type": "text", "text": _text_of(m["content"])})
            for tc in m["tool_calls"]:
                fn = tc.get("function", {})
                args = fn.get("arguments") or "{}"
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tc.get("id", ""),
                        "name": fn.get("name", ""),
                        "input": json.loads(args) if isinstance(args, str) else args,
                    }
                )
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": role, "content": m.get("content") or ""})
    return ("\n\n".join(system) if system else None), out


def _gemini_contents(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    system = [_text_of(m.get("content")) for m in messages if m["role"] == "system"]
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            continue
        if role == "tool":
            out.append(
                {
                    "role": "user",
                    "parts": [
                        {
                            "functionResponse": {
                                "name": m.get("name", "tool"),
                                "response": {"content": _text_of(m.get("content"))},
                            }
                        }
                    ],
                }
            )
        elif role == "assistant" and m.get("tool_calls"):
            parts: list[dict[str, Any]] = []
            for tc in m["tool_calls"]:
                fn = tc.get("function", {})
                args = fn.get("arguments") or "{}"
                parts.append(
                    {
                        "functionCall": {
                            "name": fn.get("name", ""),
                            "args": json.loads(args) if isinstance(args, str) else args,
                        }
                    }
                )
            out.append({"role": "model", "parts": parts})
        else:
            out.append(
                {
                    "role": "model" if role == "assistant" else "user",
                    "parts": [{"text": _text_of(m.get("content"))}],
                }
            )
    return ("\n\n".join(system) if system else None), out


def _tools(fmt: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if fmt == "openai":
        return tools
    fns = [t.get("function", t) for t in tools]
    if fmt == "anthropic":
        return [
            {
                "name": f["name"],
                "description": f.get("description", ""),
                "input_schema": f.get("parameters", {"type": "object"}),
            }
            for f in fns
        ]
    return [
        {
            "functionDeclarations": [
                {
                    "name": f["name"],
                    "description": f.get("description", ""),
                    "parameters": f.get("parameters", {"type": "object"}),
                }
                for f in fns
            ]
        }
    ]


def compile_request(
    manifest: ProviderManifest,
    req: ChatRequest,
    *,
    stream: bool,
    api_key: str | None,
    base_url: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> CompiledRequest:
    """Lay ``req`` out as ``manifest``'s provider expects it."""
    fmt = manifest.format
    body: dict[str, Any] = {}
    if fmt == "openai":
        body["messages"] = req.messages
    elif fmt == "anthropic":
        system, msgs = _anthropic_messages(req.messages)
        if system is not None:
            body["system"] = system
        body["messages"] = msgs
    else:
        system, contents = _gemini_contents(req.messages)
        if system is not None:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        body["contents"] = contents
    values: dict[str, Any] = {
        "model": req.model,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "max_tokens": req.max_tokens
        if req.max_tokens is not None
        else manifest.defaults.get("max_tokens"),
        "stop": req.stop,
        "stream": True if stream else None,
        "tools": _tools(fmt, req.tools) if req.tools else None,
    }
    for name, value in values.items():
        target = manifest.fields.get(name)
        if value is not None and target:
            _set(body, target, value)
    if stream and manifest.stream_extra:
        for k, v in manifest.stream_extra.items():
            body[k] = copy.deepcopy(v)
    if req.extra_body:
        body.update(req.extra_body)

    path = manifest.stream_path if stream else manifest.chat_path
    if manifest.model_in_path:
        path = path.replace("{model}", quote(req.model, safe=""))
    url = base_url_for(manifest, base_url).rstrip("/") + path
    query = dict(manifest.stream_query) if stream else {}
    headers = {"content-type": "application/json", **manifest.headers}
    headers["accept"] = "text/event-stream" if stream else "application/json"
    if api_key:
        if manifest.auth.header:
            headers[manifest.auth.header.lower()] = manifest.auth.prefix + api_key
        elif manifest.auth.query_param:
            query[manifest.auth.query_param] = api_key
    elif manifest.auth.required:
        env = " or ".join(manifest.auth.env) or "an api_key"
        raise ConfigurationError(
            f"no API key for provider {manifest.id!r}: set {env} or pass .api_key(...)"
        )
    if query:
        url += "?" + urlencode(query)
    if extra_headers:
        headers.update({k.lower(): v for k, v in extra_headers.items()})
    return CompiledRequest("POST", url, headers, body, stream)
