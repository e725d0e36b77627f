"""The one record every LLM call produces, and its public view.

A capture adapter (AiClient, SDK instrumentation, manual capture) builds exactly
one :class:`CallRecord` per call and hands it to the active :class:`~aiscope.scope.Scope`.
Sinks read it; only the pricing step writes ``cost_usd``/``cost_status`` on it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from random import getrandbits
from typing import Any, Literal

Status = Literal["ok", "error"]
#: How a record's ``cost_usd`` came about: ``ok`` (priced), ``override`` (priced at a
#: price the user set), ``unknown_model`` (no price known), ``usage_invalid`` (usage the
#: price sheet cannot price), ``no_usage`` (a failed call that reported no usage: nothing
#: to price, and no cost), ``not_priced`` (not through the pricing step yet).
CostStatus = Literal["ok", "unknown_model", "not_priced", "override", "usage_invalid", "no_usage"]

#: Token types, as used in the ``type`` label of ``ai_lib_tokens_total``.
TOKEN_TYPES = ("input", "output", "cache_read", "cache_write", "reasoning")


def new_request_id() -> str:
    """A fresh, unique request id (32 hex characters, 128 random bits)."""
    # 128 bits from the random module (seeded from os.urandom, reseeded in forked
    # children): as unique as uuid4().hex, without a system call and a UUID object
    return f"{getrandbits(128):032x}"


def consistent_counts(i: object, o: object, cr: object, cw: object, r: object) -> bool:
    """True for plain-int token counts a :class:`Usage` takes as they are: input ``i``,
    output ``o``, cache reads ``cr`` and writes ``cw`` (parts of the input), reasoning
    ``r`` (part of the output). The one-expression check of the recording path."""
    return (
        type(i) is int
        and type(o) is int
        and type(cr) is int
        and type(cw) is int
        and type(r) is int
        and 0 <= cr <= cr + cw <= i
        and 0 <= r <= o
    )


def _check_count(name: str, value: object) -> int:
    # bool is an int subclass; a True token count is always a bug upstream.
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        value = int(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


@dataclass(slots=True)
class Usage:
    """Tokens of one call, by type.

    ``input_tokens`` counts *all* input tokens, cached ones included (as OpenAI's
    ``prompt_tokens`` does); ``cache_read_tokens`` and ``cache_write_tokens`` are the
    parts of it read from / written to the provider's prompt cache.
    ``output_tokens`` counts all output tokens, ``reasoning_tokens`` included.
    ``estimated`` is True when the provider did not report usage and aiscope
    counted the tokens itself.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``TypeError``/``ValueError`` naming the first bad field."""
        # One expression for valid usage (built on every call); the checks below name
        # what is wrong, or accept what this does not (int subclasses).
        i, o = self.input_tokens, self.output_tokens
        cr, cw, r = self.cache_read_tokens, self.cache_write_tokens, self.reasoning_tokens
        if consistent_counts(i, o, cr, cw, r) and type(self.estimated) is bool:
            return
        self._validate_fields()

    def _validate_fields(self) -> None:
        i = _check_count("usage.input_tokens", self.input_tokens)
        o = _check_count("usage.output_tokens", self.output_tokens)
        cr = _check_count("usage.cache_read_tokens", self.cache_read_tokens)
        cw = _check_count("usage.cache_write_tokens", self.cache_write_tokens)
        r = _check_count("usage.reasoning_tokens", self.reasoning_tokens)
        if cr + cw > i:
            raise ValueError(
                f"usage.cache_read_tokens ({cr}) + usage.cache_write_tokens ({cw}) "
                f"cannot exceed usage.input_tokens ({i}): input_tokens counts cached tokens too"
            )
        if r > o:
            raise ValueError(
                f"usage.reasoning_tokens ({r}) cannot exceed usage.output_tokens ({o}): "
                "output_tokens counts reasoning tokens too"
            )
        if not isinstance(self.estimated, bool):
            raise TypeError(f"usage.estimated must be a bool, got {self.estimated!r}")

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class CallRecord:
    """Everything aiscope knows about one LLM call.

    Times are in seconds (``start_time`` is a Unix timestamp). ``model`` is the
    model asked for, ``response_model`` the one the provider says answered.
    ``cost_usd`` is ``None`` until priced, and stays ``None`` when the model has
    no known price (``cost_status == "unknown_model"``): never a made-up default.
    A failed call that got no usage back (:attr:`has_usage` is False) is not priced at
    zero either: its ``cost_usd`` stays ``None`` with ``cost_status == "no_usage"``.
    """

    model: str
    provider: str
    operation: str = "chat"
    request_id: str = field(default_factory=new_request_id)
    upstream_request_id: str | None = None
    response_id: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    response_model: str | None = None
    start_time: float = field(default_factory=time.time)
    latency_s: float = 0.0
    time_to_first_token_s: float | None = None
    status: Status = "ok"
    error_type: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    cost_status: CostStatus = "not_priced"
    tags: dict[str, str] = field(default_factory=dict)
    operations: tuple[str, ...] = ()
    retry_count: int = 0
    streaming: bool = False
    finish_reasons: tuple[str, ...] = ()
    server_address: str | None = None
    server_port: int | None = None

    def validate(self) -> None:
        """Check every field; raise ``TypeError``/``ValueError`` naming the bad one.

        The Scope calls this before any sink sees the record, so a bad record is
        refused whole instead of being counted by some sinks and not others.
        """
        # One expression for the common, valid record (this runs on every call);
        # anything it does not accept goes through the field-by-field checks below,
        # which either accept it too (e.g. int subclasses) or name what is wrong.
        u = self.usage
        types = tuple(
            map(
                type,
                (
                    self.model,
                    self.provider,
                    self.operation,
                    self.request_id,
                    self.upstream_request_id,
                    self.response_id,
                    self.trace_id,
                    self.span_id,
                    self.response_model,
                    self.error_type,
                    self.start_time,
                    self.latency_s,
                    self.time_to_first_token_s,
                    u,
                    self.retry_count,
                    self.cost_usd,
                    self.tags,
                ),
            )
        )
        # the fields' types in one lookup: their combinations seen valid are kept
        if types in _VALID_TYPES or _valid_types(types):
            ttft = self.time_to_first_token_s
            cost = self.cost_usd
            i, o = u.input_tokens, u.output_tokens
            cr, cw, r = u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens
            if (
                self.model
                and self.provider
                and self.operation
                and self.request_id
                and 0.0 <= self.start_time < _INF
                and 0.0 <= self.latency_s < _INF
                and (ttft is None or 0.0 <= ttft < _INF)
                and (self.status == "ok" or self.status == "error")
                and consistent_counts(i, o, cr, cw, r)
                and type(u.estimated) is bool
                and self.retry_count >= 0
                and (cost is None or 0.0 <= cost < _INF)
            ):
                for key, value in self.tags.items():
                    if type(key) is not str or type(value) is not str:
                        break
                else:
                    return
        self._validate_fields()

    def _validate_fields(self) -> None:
        for name in ("model", "provider", "operation", "request_id"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
            if not value:
                raise ValueError(f"{name} must not be empty")
        for name in (
            "upstream_request_id",
            "response_id",
            "trace_id",
            "span_id",
            "response_model",
            "error_type",
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
        _check_seconds("start_time", self.start_time)
        _check_seconds("latency_s", self.latency_s)
        if self.time_to_first_token_s is not None:
            _check_seconds("time_to_first_token_s", self.time_to_first_token_s)
        if self.status not in ("ok", "error"):
            raise ValueError(f"status must be 'ok' or 'error', got {self.status!r}")
        if not isinstance(self.usage, Usage):
            raise TypeError(f"usage must be an aiscope.Usage, got {type(self.usage).__name__}")
        self.usage.validate()
        if not isinstance(self.tags, dict):
            raise TypeError(f"tags must be a dict of str to str, got {type(self.tags).__name__}")
        for key, value in self.tags.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(
                    f"tags[{key!r}] must be a str (keys and values), got {type(value).__name__}"
                )
        _check_count("retry_count", self.retry_count)
        if self.cost_usd is not None:
            _check_seconds("cost_usd", self.cost_usd)

    @property
    def has_usage(self) -> bool:
        """False for a failed call that reported no usage at all (no response came
        back): its zero token counts mean "unknown", not "none used", so spans omit them
        and pricing says ``no_usage``. A call that worked always has usage."""
        if self.status == "ok":
            return True
        u = self.usage
        return bool(u.input_tokens or u.output_tokens or u.estimated)

    def stats(self) -> CallStats:
        """The public view of this record."""
        return CallStats.from_record(self)


_OPTIONAL_STR = frozenset({str, type(None)})
_NUMBER = frozenset({float, int})
_INF = math.inf
_STR = frozenset({str})
#: the types CallRecord.validate's fast path accepts, field by field (its tuple's order)
_FIELD_TYPES = (
    *(_STR,) * 4,  # model, provider, operation, request_id
    *(_OPTIONAL_STR,) * 6,  # upstream_request_id ... error_type
    _NUMBER,  # start_time
    _NUMBER,  # latency_s
    _NUMBER | {type(None)},  # time_to_first_token_s
    frozenset({Usage}),
    frozenset({int}),  # retry_count
    _NUMBER | {type(None)},  # cost_usd
    frozenset({dict}),  # tags
)
#: combinations of field types seen valid (at most the product of the sets above: 2,304)
_VALID_TYPES: set[tuple[type, ...]] = set()


def _valid_types(types: tuple[type, ...]) -> bool:
    """True (and remembered) if every field's type is one the fast path accepts."""
    if all(t in allowed for t, allowed in zip(types, _FIELD_TYPES, strict=True)):
        _VALID_TYPES.add(types)
        return True
    return False


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class CallStats:
    """Per-call statistics returned to the application (``execute_with_stats``).

    Field names follow the ai-lib seed: ``prompt_tokens`` is the input token
    count, ``completion_tokens`` the output token count, latencies in ms.
    """

    model: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    latency_ms: float
    time_to_first_token_ms: float | None
    cost_usd: float | None
    request_id: str
    retry_count: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usage_estimated: bool = False
    status: str = "ok"
    error_type: str | None = None
    upstream_request_id: str | None = None
    cost_status: str = "not_priced"

    @classmethod
    def from_record(cls, record: CallRecord) -> CallStats:
        """Build the public view of ``record``."""
        u = record.usage
        ttft = record.time_to_first_token_s
        return cls(
            model=record.response_model or record.model,
            provider=record.provider,
            prompt_tokens=u.input_tokens,
            completion_tokens=u.output_tokens,
            total_tokens=u.input_tokens + u.output_tokens,
            latency_ms=record.latency_s * 1000.0,
            time_to_first_token_ms=None if ttft is None else ttft * 1000.0,
            cost_usd=record.cost_usd,
            request_id=record.request_id,
            retry_count=record.retry_count,
            cached_tokens=u.cache_read_tokens,
            reasoning_tokens=u.reasoning_tokens,
            usage_estimated=u.estimated,
            status=record.status,
            error_type=record.error_type,
            upstream_request_id=record.upstream_request_id,
            cost_status=record.cost_status,
        )


__all__ = [
    "TOKEN_TYPES",
    "CallRecord",
    "CallStats",
    "CostStatus",
    "Status",
    "Usage",
    "consistent_counts",
    "new_request_id",
]
