"""AiClient: a protocol-driven multi-provider LLM client whose every call is observed."""

from aiscope.client.client import AiClient, AiClientBuilder, ChatRequestBuilder, split_model
from aiscope.client.errors import (
    AiClientError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    OverloadedError,
    ProviderError,
    RateLimitError,
    RequestTimeoutError,
    ServerError,
    ServiceUnavailableError,
    StreamError,
    StreamInterruptedError,
    StreamProtocolError,
    TransportError,
)
from aiscope.client.manifest import (
    ManifestError,
    ProviderManifest,
    get_manifest,
    load_manifest,
    registry,
)
from aiscope.client.request import ChatRequest
from aiscope.client.response import ChatResponse, ToolCall
from aiscope.client.streaming import StreamEvent, ToolCallDelta

__all__ = [
    "AiClient",
    "AiClientBuilder",
    "AiClientError",
    "AuthenticationError",
    "BadRequestError",
    "ChatRequest",
    "ChatRequestBuilder",
    "ChatResponse",
    "ConfigurationError",
    "ManifestError",
    "OverloadedError",
    "ProviderError",
    "ProviderManifest",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "ServiceUnavailableError",
    "StreamError",
    "StreamEvent",
    "StreamInterruptedError",
    "StreamProtocolError",
    "ToolCall",
    "ToolCallDelta",
    "TransportError",
    "get_manifest",
    "load_manifest",
    "registry",
    "split_model",
]
