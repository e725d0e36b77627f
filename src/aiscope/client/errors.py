"""Exceptions of the AiClient: one type per kind of failure, each naming the provider."""

from __future__ import annotations


class AiClientError(Exception):
    """Base class of every AiClient error."""


class ConfigurationError(AiClientError, ValueError):
    """The client is set up wrong (no API key, unknown provider, bad model spec)."""


class ProviderError(AiClientError):
    """The provider answered with an error status."""

    kind = "provider_error"
    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.provider = provider
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        self.message = message
        where = f"{provider} {status}" if status is not None else provider
        super().__init__(f"{where}: {message}" + (f" (code {code})" if code else ""))


class BadRequestError(ProviderError):
    kind = "bad_request"


class AuthenticationError(ProviderError):
    kind = "authentication"


class PermissionDeniedError(ProviderError):
    kind = "permission_denied"


class NotFoundError(ProviderError):
    kind = "not_found"


class ConflictError(ProviderError):
    kind = "conflict"
    retryable = True


class RateLimitError(ProviderError):
    kind = "rate_limit"
    retryable = True


class QuotaExceededError(ProviderError):
    kind = "quota_exceeded"


class ServerError(ProviderError):
    kind = "server_error"
    retryable = True


class ServiceUnavailableError(ProviderError):
    kind = "unavailable"
    retryable = True


class OverloadedError(ProviderError):
    kind = "overloaded"
    retryable = True


class ProviderTimeoutError(ProviderError):
    kind = "timeout"
    retryable = True


ERROR_TYPES: dict[str, type[ProviderError]] = {
    cls.kind: cls
    for cls in (
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        RateLimitError,
        QuotaExceededError,
        ServerError,
        ServiceUnavailableError,
        OverloadedError,
        ProviderTimeoutError,
    )
}


class TransportError(AiClientError):
    """The request did not get an answer (connection refused, reset, timed out)."""

    retryable = True

    def __init__(self, message: str, *, provider: str) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {message}")


class RequestTimeoutError(TransportError):
    """No answer within the client's timeout."""


class StreamError(AiClientError):
    """A stream that went wrong after it started."""

    retryable = False

    def __init__(self, message: str, *, provider: str) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {message}")


class StreamProtocolError(StreamError):
    """A stream frame that is not what the provider's protocol says (malformed JSON, ...)."""


class StreamInterruptedError(StreamError):
    """The stream ended before its end signal (connection dropped half-way)."""
