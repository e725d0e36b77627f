"""The provider-neutral chat request, and where a provider's requests go (URL, key)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from aiscope.client.manifest import ProviderManifest

__all__ = ["ROLES", "ChatRequest", "api_key_for", "base_url_for", "provider_request"]

ROLES = ("system", "user", "assistant", "tool")


@dataclass(slots=True)
class ChatRequest:
    """What the application asked for, in OpenAI's message shape.

    ``messages`` are dicts ``{"role": ..., "content": ...}`` (``tool`` messages carry
    ``tool_call_id``; assistant messages may carry ``tool_calls``); ``tools`` are
    OpenAI-style function tools, translated for other providers.
    """

    model: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError/TypeError naming the first bad field."""
        if not self.messages:
            raise ValueError("a chat request needs at least one message (use .user(...))")
        for i, m in enumerate(self.messages):
            if m.get("role") not in ROLES:
                raise ValueError(
                    f"messages[{i}].role must be one of {', '.join(ROLES)}, got {m.get('role')!r}"
                )
            content = m.get("content")
            if content is not None and not isinstance(content, str | list):
                raise TypeError(f"messages[{i}].content must be a str or a list of parts")
        if self.temperature is not None and (
            isinstance(self.temperature, bool)
            or not isinstance(self.temperature, int | float)
            or not 0.0 <= self.temperature <= 2.0
        ):
            raise ValueError(f"temperature must be a number in [0, 2], got {self.temperature!r}")
        if self.top_p is not None and not (
            isinstance(self.top_p, int | float) and 0.0 <= self.top_p <= 1.0
        ):
            raise ValueError(f"top_p must be a number in [0, 1], got {self.top_p!r}")
        if self.max_tokens is not None and (
            isinstance(self.max_tokens, bool)
            or not isinstance(self.max_tokens, int)
            or self.max_tokens < 1
        ):
            raise ValueError(f"max_tokens must be an int >= 1, got {self.max_tokens!r}")
        if self.stop is not None and not all(isinstance(s, str) for s in self.stop):
            raise TypeError("stop must be a list of str")

    def prompt_text(self) -> str:
        """All message text, for token estimates."""
        parts: list[str] = []
        for m in self.messages:
            c = m.get("content")
            if isinstance(c, str):
                parts.append(c)
            elif isinstance(c, list):
                parts.extend(p.get("text", "") for p in c if isinstance(p, dict))
        if self.tools:
            parts.append(json.dumps(self.tools))
        return "\n".join(parts)


def api_key_for(manifest: ProviderManifest, explicit: str | None) -> str | None:
    """The API key: the one given, else the first of the manifest's environment variables."""
    if explicit:
        return explicit
    for name in manifest.auth.env:
        value = os.environ.get(name)
        if value:
            return value
    return None


def base_url_for(manifest: ProviderManifest, explicit: str | None) -> str:
    """The endpoint: the one given, else the manifest's environment override, else its default."""
    if explicit:
        return explicit
    if manifest.base_url_env:
        value = os.environ.get(manifest.base_url_env)
        if value:
            return value
    return manifest.base_url


def provider_request(
    manifest: ProviderManifest,
    path: str,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
) -> tuple[str, dict[str, str]]:
    """The URL and headers of a GET of ``path`` at ``manifest``'s provider (its base URL
    and key as given, else from the environment), as a health probe sends it. The
    headers hold the API key: do not log them."""
    url = base_url_for(manifest, base_url).rstrip("/") + path
    headers = dict(manifest.headers)
    key = api_key_for(manifest, api_key)
    if key and manifest.auth.header:
        headers[manifest.auth.header] = manifest.auth.prefix + key
    return url, headers
