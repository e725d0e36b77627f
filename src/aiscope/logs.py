"""Logging under the ``aiscope`` logger: a TRACE level below DEBUG and secret masking.

INFO carries request/response summaries, DEBUG protocol loading and pipeline
stages, TRACE individual stream frames and JSONPath matches.
"""

from __future__ import annotations

import logging
import re

#: Below DEBUG: individual stream frames and JSONPath matches.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_SECRET = re.compile(
    r"(?i)(bearer\s+|api[_-]?key[\"'=:\s]+|x-api-key[\"'=:\s]+|x-goog-api-key[\"'=:\s]+|key=)"
    r"([A-Za-z0-9_\-\.]{6,})"
)


def mask_secrets(text: str) -> str:
    """Replace API keys and bearer tokens in ``text`` with a masked form."""
    return _SECRET.sub(lambda m: m.group(1) + _mask(m.group(2)), text)


def _mask(secret: str) -> str:
    return secret[:3] + "…" + "*" * 4 if len(secret) > 8 else "****"


def mask_headers(headers: dict[str, str]) -> dict[str, str]:
    """A copy of request headers safe to log."""
    sensitive = ("authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie")
    return {k: (_mask(v) if k.lower() in sensitive else v) for k, v in headers.items()}
