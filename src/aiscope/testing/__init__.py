"""Test tooling: a mock LLM provider speaking the real wire formats over real HTTP.

:class:`MockProvider` serves OpenAI (Chat Completions, Responses, Embeddings,
Models), Anthropic (Messages, count_tokens, Models) and Gemini (generateContent,
streamGenerateContent, countTokens, Models) on a loopback port, with
deterministic token counts (:mod:`aiscope.testing.tokens`), a log of what it
received and sent, and injectable faults (error statuses, slow responses, cut
streams, malformed frames, in-stream errors). :func:`serve` runs one in the
foreground.
"""

from aiscope.testing._wire_openai import embedding_vector
from aiscope.testing.config import Behavior, Fault, ToolCall
from aiscope.testing.mock_provider import (
    BASE_PATHS,
    MockProvider,
    expected_completion,
    prompt_tokens,
    serve,
)
from aiscope.testing.otlp import Blackhole, OtlpReceiver, ReceivedSpan, decode_spans
from aiscope.testing.plan import TOOL_MARKER_RE, Completion, default_reply
from aiscope.testing.records import RecordedRequest
from aiscope.testing.tokens import (
    count_output_tokens,
    count_prompt_tokens,
    message_tokens,
    split_tokens,
    text_tokens,
)

__all__ = [
    "BASE_PATHS",
    "TOOL_MARKER_RE",
    "Behavior",
    "Blackhole",
    "Completion",
    "Fault",
    "MockProvider",
    "OtlpReceiver",
    "ReceivedSpan",
    "RecordedRequest",
    "ToolCall",
    "count_output_tokens",
    "count_prompt_tokens",
    "decode_spans",
    "default_reply",
    "embedding_vector",
    "expected_completion",
    "message_tokens",
    "prompt_tokens",
    "serve",
    "split_tokens",
    "text_tokens",
]
