"""Exceptions of the AiClient: one type per kind of failure, each naming the provider.

Their text is masked (:func:`aiscope.masking.mask_secrets`) when they are made: a provider
that echoes the API key in its error message ("Incorrect API key provided: sk-...")
never puts it in an exception's text, and so never in a traceback, a log line or a span.
"""

from __future__ import annotations

from aiscope.masking import mask_secrets


class AiClientError(Exception):
    """Base class of every AiClient error (its text has API keys masked)."""

    def __init__(self, *args: object) -> None:
        # masked here, once, so no subclass and no caller can forget it
        super().__init__(*(mask_secrets(a) if isinstance(a, str) else a for a in args))


class ConfigurationError(AiClientError, ValueError):
    """The client is set up wrong (no API key, unknown provider, bad model spec)."""


#: Each ProviderError subclass by its ``kind``, the name manifests map statuses and codes to.
ERROR_TYPES: dict[str, type[ProviderError]] = {}


class ProviderError(AiClientError):
    """The provider answered with an error status.

    A subclass per kind of error declares its ``kind`` (and whether it is
    ``retryable``) in its class line, which also registers it in ``ERROR_TYPES``.
    """

    kind = "provider_error"
    retryable = False

    def __init_subclass__(cls, kind: str, retryable: bool = False, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.kind, cls.retryable = kind, retryable
        ERROR_TYPES[kind] = cls

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
        #: the provider's error message, API keys masked
        self.message = message = mask_secrets(message)
        where = f"{provider} {status}" if status is not None else provider
        super().__init__(f"{where}: {message}" + (f" (code {code})" if code else ""))


class BadRequestError(ProviderError, kind="bad_request"):
    """The request was rejected as invalid (400, 413, 422)."""


class AuthenticationError(ProviderError, kind="authentication"):
    """The API key is missing, wrong or revoked (401)."""


class PermissionDeniedError(ProviderError, kind="permission_denied"):
    """The key may not use this model or endpoint (403)."""


class NotFoundError(ProviderError, kind="not_found"):
    """No such model or endpoint (404)."""


class ConflictError(ProviderError, kind="conflict", retryable=True):
    """A conflicting request was in progress (409)."""


class RateLimitError(ProviderError, kind="rate_limit", retryable=True):
    """Too many requests or tokens (429); retried after its Retry-After."""


class QuotaExceededError(ProviderError, kind="quota_exceeded"):
    """The account's quota or credit is used up: waiting does not help."""


class ServerError(ProviderError, kind="server_error", retryable=True):
    """The provider failed (500, 502), or sent what cannot be read."""


class ServiceUnavailableError(ProviderError, kind="unavailable", retryable=True):
    """The provider is down for now (503)."""


class OverloadedError(ProviderError, kind="overloaded", retryable=True):
    """The provider is overloaded (Anthropic's 529 ``overloaded_error``)."""


class ProviderTimeoutError(ProviderError, kind="timeout", retryable=True):
    """The provider timed out on its side (408, 504)."""


class _Failure(AiClientError):
    """A failure without an error status from the provider, naming the provider."""

    retryable = False

    def __init__(self, message: str, *, provider: str) -> None:
        self.provider = provider
        super().__init__(f"{provider}: {message}")


class TransportError(_Failure):
    """The request did not get an answer (connection refused, reset, timed out)."""

    retryable = True


class RequestTimeoutError(TransportError):
    """No answer within the client's timeout."""


class StreamError(_Failure):
    """A stream that went wrong after it started."""


class StreamProtocolError(StreamError):
    """A stream frame that is not what the provider's protocol says (malformed JSON, ...)."""


class StreamInterruptedError(StreamError):
    """The stream ended before its end signal (connection dropped half-way)."""
