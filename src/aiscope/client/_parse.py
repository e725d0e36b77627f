"""Response mapping: text, finish reason, tool calls, ids and usage by JSONPath."""

from __future__ import annotations

import json
from typing import Any

from aiscope.capture import approx_prompt_tokens, approx_tokens
from aiscope.client.manifest import ProviderManifest, UsageMap
from aiscope.client.response import ChatResponse, ToolCall
from aiscope.record import Usage


def normalize_usage(umap: UsageMap, values: dict[str, int | None]) -> Usage | None:
    """aiscope's usage from the provider's numbers (None if the provider gave none)."""
    if values.get("input_tokens") is None and values.get("output_tokens") is None:
        return None

    def n(key: str) -> int:
        v = values.get(key)
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            return 0
        return int(v)

    inp, out, cr, cw, rs = (
        n(k)
        for k in (
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
        )
    )
    if umap.input_excludes_cache:
        inp += cr + cw
    if umap.output_excludes_reasoning:
        out += rs
    # Defend the record's invariants against an odd provider report.
    inp = max(inp, cr + cw)
    out = max(out, rs)
    return Usage(inp, out, cr, cw, rs)


def estimate_usage(prompt: str, completion: str, messages: int = 1) -> Usage:
    """Token counts when the provider reported none: about four bytes a token, and each
    of the prompt's ``messages`` messages 3 more (:func:`~aiscope.capture.approx_tokens`),
    as the SDK instrumentation counts."""
    return Usage(
        input_tokens=approx_prompt_tokens(prompt, messages),
        output_tokens=approx_tokens(completion),
        estimated=True,
    )


def _tool_calls(items: list[Any]) -> list[ToolCall]:
    out: list[ToolCall] = []
    for i, item in enumerate(items):
        if isinstance(item, list):
            out.extend(_tool_calls(item))
            continue
        if not isinstance(item, dict):
            continue
        if "function" in item:  # OpenAI
            fn = item["function"] or {}
            args = fn.get("arguments") or ""
            out.append(
                ToolCall(
                    item.get("id") or f"call_{i}",
                    fn.get("name", ""),
                    args if isinstance(args, str) else json.dumps(args),
                )
            )
        elif "input" in item:  # Anthropic tool_use block
            out.append(
                ToolCall(
                    item.get("id") or f"toolu_{i}", item.get("name", ""), json.dumps(item["input"])
                )
            )
        else:  # Gemini functionCall
            out.append(
                ToolCall(
                    item.get("id") or f"call_{i}",
                    item.get("name", ""),
                    json.dumps(item.get("args", {})),
                )
            )
    return out


def parse_response(
    manifest: ProviderManifest, data: Any, prompt: str, messages: int = 1
) -> ChatResponse:
    """Map a decoded JSON response body (``prompt``, the request's text in ``messages``
    messages, is what usage is estimated from when the body reports none)."""
    r = manifest.response
    texts = r["text"].all(data)
    text = "".join(t for t in texts if isinstance(t, str))
    finish = r["finish_reason"].first(data)
    usage = normalize_usage(
        manifest.usage, {k: p.first(data) for k, p in manifest.usage.paths.items()}
    )
    if usage is None:
        usage = estimate_usage(prompt, text, messages)
    tool_path = r.get("tool_calls")
    tools = _tool_calls(tool_path.all(data)) if tool_path is not None else []
    rid = r["id"].first(data) if "id" in r else None
    model = r["model"].first(data) if "model" in r else None
    return ChatResponse(
        text=text,
        finish_reason=str(finish) if finish is not None else None,
        usage=usage,
        id=str(rid) if rid is not None else None,
        model=str(model) if model is not None else None,
        tool_calls=tools,
        raw=data,
    )
