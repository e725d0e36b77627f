"""The mock provider's token-count rules: deterministic, documented, and public.

The mock does not run a real tokenizer. It counts with two simple rules, so a test
can compute the usage the mock will report before sending a request:

* **Input (prompt) tokens** — every *message* costs ``ceil(chars / 4) + 3``
  tokens, where ``chars`` is the length of its text (see :func:`message_tokens`).
  A system prompt (OpenAI ``system``/``developer`` message, Anthropic ``system``,
  Gemini ``systemInstruction``, Responses ``instructions``) is one message; the tool
  definitions of a request, if any, count as one more message whose text is their
  compact JSON (``json.dumps(tools, separators=(",", ":"), sort_keys=True)``).
  Embedding inputs cost ``ceil(chars / 4)`` each, with no per-message overhead
  (a pre-tokenized input, a list of ints, costs its length).
* **Output (completion) tokens** — the reply is split by :func:`split_tokens`:
  a token is a run of word characters (``\\w+``) or one other non-space character,
  together with the whitespace before it; whitespace at the very end is one more
  token. ``"Hello, world!"`` is 4 tokens: ``"Hello"``, ``","``, ``" world"``,
  ``"!"``. Joining the tokens gives back the text exactly, and a stream sends them
  in order. A tool call's output tokens are the tokens of its arguments JSON.

What a message's *text* is, per wire format, is defined by the ``prompt_texts``
function of each ``wire_*`` module; :func:`aiscope.testing.prompt_tokens` applies
the rule to a whole request body.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

#: Tokens every message costs on top of its text (role, separators).
PER_MESSAGE_TOKENS = 3
#: Characters per input token.
CHARS_PER_TOKEN = 4

_TOKEN_RE = re.compile(r"\s*(?:\w+|[^\w\s])|\s+$")


def text_tokens(text: str) -> int:
    """``ceil(len(text) / 4)``: the input-token cost of ``text`` alone."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_tokens(text: str) -> int:
    """The input-token cost of one message whose text is ``text``."""
    return text_tokens(text) + PER_MESSAGE_TOKENS


def count_prompt_tokens(texts: Iterable[str]) -> int:
    """The input tokens of a request whose messages have the texts ``texts``."""
    return sum(message_tokens(t) for t in texts)


def split_tokens(text: str) -> list[str]:
    """``text`` cut into output tokens; ``"".join(split_tokens(t)) == t``."""
    return _TOKEN_RE.findall(text)


def count_output_tokens(text: str) -> int:
    """How many output tokens the mock reports for generating ``text``."""
    return len(split_tokens(text))


def tools_text(tools: Sequence[Any] | None) -> str | None:
    """The text that stands for a request's tool definitions, or None without tools."""
    if not tools:
        return None
    return json.dumps(tools, separators=(",", ":"), sort_keys=True)


def tool_names(
    tools: Any, texts: list[str], names_of: Callable[[dict[str, Any]], Iterable[Any]]
) -> tuple[str, ...]:
    """The names of a request's tools (``names_of(tool)``: the names one tool entry
    declares, in the provider's shape); the text standing for their definitions, which
    counts as prompt, is appended to ``texts``."""
    listed = tools if isinstance(tools, list) else []
    text = tools_text(listed)
    if text is not None:
        texts.append(text)
    return tuple(str(n) for t in listed if isinstance(t, dict) for n in names_of(t))


def generated_text(n_tokens: int) -> str:
    """A deterministic text of exactly ``n_tokens`` output tokens (for long replies)."""
    words = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
    return " ".join(words[i % len(words)] for i in range(n_tokens))


__all__ = [
    "CHARS_PER_TOKEN",
    "PER_MESSAGE_TOKENS",
    "count_output_tokens",
    "count_prompt_tokens",
    "generated_text",
    "message_tokens",
    "split_tokens",
    "text_tokens",
    "tool_names",
    "tools_text",
]
