"""Retry policy: which failures to retry, and how long to wait before the next attempt.

Delays grow exponentially (``base_delay_s * multiplier ** attempt``, capped at
``max_delay_s``) with jitter, so that clients that failed together do not retry
together. A provider's ``Retry-After`` (or ``retry-after-ms``) wins when it asks for
longer than the backoff, up to ``max_retry_after_s``.

The policy holds no per-call state: one instance serves every call of a client from
any thread or event loop.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Literal

from aiscope.resilience._util import header

__all__ = ["DEFAULT_RETRY_ON_STATUS", "Jitter", "RetryPolicy", "parse_retry_after"]

Jitter = Literal["full", "equal", "none"]

#: Statuses worth another attempt: timeout, conflict, rate limit, server errors and
#: Anthropic's 529 "overloaded".
DEFAULT_RETRY_ON_STATUS: frozenset[int] = frozenset({408, 409, 429, 500, 502, 503, 504, 529})

_JITTERS = ("full", "equal", "none")
_default_exceptions: tuple[type[BaseException], ...] | None = None


def _default_retryable_exceptions() -> tuple[type[BaseException], ...]:
    """Connection errors and timeouts: httpx2's transport errors and the builtin ones.

    httpx2 is imported on first use only, so the policy costs nothing to import.
    """
    global _default_exceptions
    if _default_exceptions is None:
        found: list[type[BaseException]] = [ConnectionError, TimeoutError]
        try:
            import httpx2
        except ImportError:  # pragma: no cover - httpx2 is a dependency
            pass
        else:
            # TimeoutException is a TransportError; both are named for clarity.
            found += [httpx2.TransportError, httpx2.TimeoutException]
        _default_exceptions = tuple(found)
    return _default_exceptions


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry a failed provider call, and how long to wait in between.

    Args:
        max_retries: retries after the first attempt (0 disables retrying).
        base_delay_s: backoff of the first retry, before jitter.
        max_delay_s: cap of the exponential backoff, before jitter.
        multiplier: growth of the backoff per attempt (>= 1).
        jitter: ``"full"`` draws the delay from ``[0, backoff]``, ``"equal"`` from
            ``[backoff / 2, backoff]``, ``"none"`` uses the backoff as is.
        retry_on_status: HTTP statuses that are worth another attempt.
        max_retry_after_s: the longest ``Retry-After`` that is honoured; longer ones
            are cut to it.
        rng: the random source of the jitter (``random.Random()`` when None); pass a
            seeded one for reproducible delays.
        retry_on_exceptions: exception types that are retryable when a call failed
            without a status. None means connection errors and timeouts:
            ``httpx2.TransportError`` (which includes ``httpx2.TimeoutException``),
            ``ConnectionError`` and ``TimeoutError``.
    """

    max_retries: int = 2
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    multiplier: float = 2.0
    jitter: Jitter = "full"
    retry_on_status: frozenset[int] = DEFAULT_RETRY_ON_STATUS
    max_retry_after_s: float = 60.0
    rng: random.Random | None = field(default=None, repr=False, compare=False)
    retry_on_exceptions: tuple[type[BaseException], ...] | None = None
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mr = self.max_retries
        if isinstance(mr, bool) or not isinstance(mr, int) or mr < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {mr!r}")
        for name in ("base_delay_s", "max_delay_s", "max_retry_after_s"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.max_delay_s < self.base_delay_s:
            raise ValueError(
                f"max_delay_s must be >= base_delay_s ({self.base_delay_s!r}), "
                f"got {self.max_delay_s!r}"
            )
        m = self.multiplier
        if not _is_number(m) or not math.isfinite(m) or m < 1:
            raise ValueError(f"multiplier must be a finite number >= 1, got {m!r}")
        if self.jitter not in _JITTERS:
            raise ValueError(f"jitter must be one of {_JITTERS}, got {self.jitter!r}")
        statuses = self.retry_on_status
        if isinstance(statuses, str | bytes) or not isinstance(statuses, Iterable):
            raise ValueError(f"retry_on_status must be a collection of ints, got {statuses!r}")
        statuses = frozenset(statuses)
        for s in statuses:
            if isinstance(s, bool) or not isinstance(s, int) or not 100 <= s <= 599:
                raise ValueError(f"retry_on_status must hold HTTP statuses (100-599), got {s!r}")
        object.__setattr__(self, "retry_on_status", statuses)
        if self.rng is not None and not isinstance(self.rng, random.Random):
            raise ValueError(f"rng must be a random.Random or None, got {self.rng!r}")
        exc_types = self.retry_on_exceptions
        if exc_types is not None:
            exc_types = tuple(exc_types)
            for t in exc_types:
                if not (isinstance(t, type) and issubclass(t, BaseException)):
                    raise ValueError(f"retry_on_exceptions must hold exception types, got {t!r}")
            object.__setattr__(self, "retry_on_exceptions", exc_types)
        object.__setattr__(self, "_rng", self.rng if self.rng is not None else random.Random())

    def should_retry(
        self, attempt: int, status: int | None = None, exc: BaseException | None = None
    ) -> bool:
        """Whether the failed attempt number ``attempt`` (0 = the first call) deserves a retry.

        False once ``max_retries`` retries were made. Otherwise a ``status`` decides
        alone (``status in retry_on_status``). Without one, ``exc`` decides: its
        ``retryable`` attribute when it has a bool one (aiscope's client errors do),
        else whether it is one of ``retry_on_exceptions``, else its ``status`` /
        ``status_code`` attribute. With neither, there is nothing to retry: False.
        """
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        if attempt >= self.max_retries:
            return False
        if status is not None:
            return status in self.retry_on_status
        if exc is None:
            return False
        flag = getattr(exc, "retryable", None)
        if isinstance(flag, bool):
            return flag
        types = self.retry_on_exceptions
        if types is None:
            types = _default_retryable_exceptions()
        if isinstance(exc, types):
            return True
        for attr in ("status", "status_code"):
            code = getattr(exc, attr, None)
            if isinstance(code, int) and not isinstance(code, bool):
                return code in self.retry_on_status
        return False

    def backoff_s(self, attempt: int) -> float:
        """The backoff before retrying failed attempt ``attempt``, without jitter."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt!r}")
        try:
            backoff = self.base_delay_s * self.multiplier**attempt
        except OverflowError:
            return self.max_delay_s
        return min(backoff, self.max_delay_s)

    def delay_s(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retrying failed attempt ``attempt`` (0 = the first call).

        The jittered exponential backoff, or ``retry_after`` (seconds, e.g. from
        :func:`parse_retry_after`) when that is longer; ``retry_after`` is first cut
        to ``max_retry_after_s``. A negative, NaN or infinite ``retry_after`` is
        ignored.
        """
        backoff = self.backoff_s(attempt)
        if self.jitter == "full":
            delay = self._rng.random() * backoff
        elif self.jitter == "equal":
            half = backoff / 2.0
            delay = half + self._rng.random() * half
        else:
            delay = backoff
        if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
            delay = max(delay, min(retry_after, self.max_retry_after_s))
        return delay


def _seconds(text: str, scale: float) -> float | None:
    try:
        value = float(text.strip()) * scale
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return max(value, 0.0)


def parse_retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds a provider asks us to wait, from its response headers; None if it does not say.

    Looks (case-insensitively) at ``retry-after-ms`` (milliseconds, OpenAI) first,
    then ``retry-after``: delta-seconds (decimals accepted) or an HTTP-date, which is
    turned into seconds from ``now()`` (wall-clock time; a date in the past gives
    ``0.0``). Unparseable values are ignored. Never negative.
    """
    ms = header(headers, "retry-after-ms")
    if ms is not None:
        value = _seconds(ms, 0.001)
        if value is not None:
            return value
    text = header(headers, "retry-after")
    if text is None:
        return None
    value = _seconds(text, 1.0)
    if value is not None:
        return value
    try:
        when = email.utils.parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now(), 0.0)
