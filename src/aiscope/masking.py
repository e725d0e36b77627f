"""Masking of secrets (API keys, bearer tokens) in text and headers before they are
logged, traced or shown: used by every layer, so it sits in the core."""

from __future__ import annotations

import re

_SECRET = re.compile(
    r"(?i)(bearer\s+|basic\s+|api[_-]?key[\"'=:\s]+|x-api-key[\"'=:\s]+|x-goog-api-key[\"'=:\s]+"
    r"|key=|secret[_-]?key[\"'=:\s]+)"
    r"([A-Za-z0-9_\-\.+/=]{6,})"
)
# Provider key shapes that are secret wherever they appear (OpenAI, Anthropic, Langfuse,
# Google).
_BARE_KEY = re.compile(r"\b(sk-(?:ant-|proj-|lf-)?|AIza)([A-Za-z0-9_\-]{8,})")


def mask_secrets(text: str) -> str:
    """Replace API keys and bearer tokens in ``text`` with a masked form."""
    text = _SECRET.sub(lambda m: m.group(1) + _mask(m.group(2)), text)
    return _BARE_KEY.sub(lambda m: m.group(1) + "****", text)


def _mask(secret: str) -> str:
    return secret[:3] + "…" + "*" * 4 if len(secret) > 8 else "****"


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """A copy of request headers safe to log."""
    sensitive = ("authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie")
    return {k: (_mask(v) if k.lower() in sensitive else v) for k, v in headers.items()}


__all__ = [
    "mask_headers",
    "mask_secrets",
]
