"""FeedbackCollector: user and judge feedback on LLM responses, joined to their calls.

The collector is a Scope sink: it remembers the last ``max_calls`` calls by request
id (model, provider, feature, team), so feedback given later by request id is
attributed to its call. Feedback on an id it never saw (or has forgotten) is kept
too, flagged ``joined=False``. Every piece of feedback that carries a quality
signal (a rating, thumbs, or a score) becomes a score in [0, 1] that feeds the
``ai_lib_quality_score`` histogram and any listeners (e.g. the alert evaluator).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from aiscope._fork import fork_safe_lock
from aiscope.record import CallRecord

if TYPE_CHECKING:
    from aiscope.scope import Scope

log = logging.getLogger("aiscope.feedback")

Source = Literal["human", "llm-judge", "code"]
SOURCES: tuple[str, ...] = ("human", "llm-judge", "code")


@dataclass(frozen=True, slots=True)
class Feedback:
    """One piece of feedback on one call.

    ``score`` is the quality in [0, 1] derived from whichever signal was given
    (``rating`` on its 1..``scale`` scale, ``thumbs_up``, or an explicit score),
    ``None`` for feedback without one (a comment or a label only).
    """

    request_id: str
    score: float | None
    rating: int | None = None
    scale: int | None = None
    thumbs_up: bool | None = None
    label: str | None = None
    comment: str | None = None
    source: str = "human"
    joined: bool = False
    model: str | None = None
    provider: str | None = None
    feature: str | None = None
    team: str | None = None
    time: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {name: getattr(self, name) for name in self.__slots__}


@runtime_checkable
class QualityMetrics(Protocol):
    """Where quality scores go: :class:`aiscope.MetricsCollector` (its
    ``ai_lib_quality_score`` histogram), or anything with the same method."""

    def observe_quality(
        self, score: float, model: str, feature: str = "", source: str = ""
    ) -> None:
        """Count one quality score in [0, 1] of a call to ``model``."""


#: what the collector remembers of a call: (model, provider, feature, team)
_Call = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class QualitySummary:
    """Mean quality score and count, overall and by model and feature."""

    count: int
    mean: float | None
    by_model: dict[str, float]
    by_feature: dict[str, float]
    unjoined: int


def _score_of(
    rating: object, scale: int, thumbs_up: object, score: object
) -> tuple[float | None, int | None, bool | None]:
    given = [
        n
        for n, v in (("rating", rating), ("thumbs_up", thumbs_up), ("score", score))
        if v is not None
    ]
    if len(given) > 1:
        raise ValueError(f"give one of rating, thumbs_up or score, not {' and '.join(given)}")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, int):
            raise TypeError(f"rating must be an int, got {type(rating).__name__} {rating!r}")
        if not 1 <= rating <= scale:
            raise ValueError(f"rating must be between 1 and {scale} (the scale), got {rating}")
        return (rating - 1) / (scale - 1), rating, None
    if thumbs_up is not None:
        if not isinstance(thumbs_up, bool):
            raise TypeError(f"thumbs_up must be a bool, got {thumbs_up!r}")
        return (1.0 if thumbs_up else 0.0), None, thumbs_up
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise TypeError(f"score must be a number in [0, 1], got {score!r}")
        if not (math.isfinite(score) and 0.0 <= score <= 1.0):
            raise ValueError(f"score must be in [0, 1], got {score!r}")
        return float(score), None, None
    return None, None, None


def _optional_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


class FeedbackCollector:
    """Collects feedback by request id and turns it into quality scores.

    Put it in the scope (``configure(feedback=fc)`` or ``.feedback(fc)`` on the
    client builder) so it sees the calls it should join feedback to. Memory is
    bounded: the last ``max_calls`` calls and the last ``max_feedback`` pieces of
    feedback are kept (older ones are forgotten, and counted in ``forgotten``).
    """

    def __init__(
        self,
        metrics: QualityMetrics | None = None,
        *,
        rating_scale: int = 5,
        max_calls: int = 10_000,
        max_feedback: int = 10_000,
        listeners: Iterable[Callable[[Feedback], None]] = (),
    ) -> None:
        if metrics is not None and not isinstance(metrics, QualityMetrics):
            raise TypeError(
                "metrics must be an aiscope.MetricsCollector (or have its observe_quality), "
                f"got {metrics!r}"
            )
        for name, value, low in (
            ("rating_scale", rating_scale, 2),
            ("max_calls", max_calls, 1),
            ("max_feedback", max_feedback, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        self.metrics = metrics
        self.rating_scale = rating_scale
        self.max_calls = max_calls
        self._calls: dict[str, _Call] = {}
        self._order: deque[str] = deque()  # request ids, oldest first
        self._feedback: deque[Feedback] = deque(maxlen=max_feedback)
        self._listeners = list(listeners)
        self._lock = fork_safe_lock()
        #: feedback dropped from memory because ``max_feedback`` was reached
        self.forgotten = 0
        #: listener exceptions (they never reach the caller)
        self.listener_errors = 0

    # -- the sink -------------------------------------------------------------------------
    def attach(self, scope: Scope) -> None:
        """Configured next to a MetricsCollector, a collector built without one (as the
        seed builds it) feeds that collector's quality scores."""
        if self.metrics is None and scope.metrics is not None:
            self.metrics = scope.metrics

    def on_record(self, record: CallRecord) -> None:
        """Remember a finished call so later feedback on its request id is joined."""
        tags = record.tags
        call = (record.model, record.provider, tags.get("feature", ""), tags.get("team", ""))
        rid = record.request_id
        with self._lock:
            self._calls[rid] = call
            order = self._order
            order.append(rid)
            if len(order) > self.max_calls:  # forget the oldest call
                self._calls.pop(order.popleft(), None)

    def add_listener(self, listener: Callable[[Feedback], None]) -> None:
        """Call ``listener(feedback)`` for every piece of feedback recorded."""
        self._listeners.append(listener)

    # -- recording ------------------------------------------------------------------------
    def record(
        self,
        request_id: str,
        rating: int | None = None,
        comment: str | None = None,
        *,
        thumbs_up: bool | None = None,
        score: float | None = None,
        label: str | None = None,
        source: Source = "human",
    ) -> Feedback:
        """Record feedback on the call ``request_id``; returns it.

        Give at most one quality signal: ``rating`` (1..``rating_scale``),
        ``thumbs_up`` (True/False) or ``score`` (in [0, 1], e.g. from an LLM judge
        or a code check). ``label`` is a categorical judgement ("off-topic", ...).
        """
        if not isinstance(request_id, str) or not request_id:
            raise ValueError(f"request_id must be a non-empty str, got {request_id!r}")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        quality, rating_v, thumbs = _score_of(rating, self.rating_scale, thumbs_up, score)
        comment = _optional_str("comment", comment)
        label = _optional_str("label", label)
        with self._lock:
            call = self._calls.get(request_id)
        fb = Feedback(
            request_id=request_id,
            score=quality,
            rating=rating_v,
            scale=self.rating_scale if rating_v is not None else None,
            thumbs_up=thumbs,
            label=label,
            comment=comment,
            source=source,
            joined=call is not None,
            model=call[0] if call else None,
            provider=call[1] if call else None,
            feature=call[2] if call else None,
            team=call[3] if call else None,
        )
        with self._lock:
            if len(self._feedback) == self._feedback.maxlen:
                self.forgotten += 1
            self._feedback.append(fb)
        if quality is not None and self.metrics is not None:
            try:
                self.metrics.observe_quality(
                    quality, fb.model or "unknown", fb.feature or "", fb.source
                )
            except Exception:
                log.warning("quality metric failed; feedback is kept", exc_info=True)
        for listener in self._listeners:
            try:
                listener(fb)
            except Exception:
                self.listener_errors += 1
                log.warning("feedback listener %r failed", listener, exc_info=True)
        return fb

    def thumbs_up(self, request_id: str, comment: str | None = None, **kw: Any) -> Feedback:
        """Record a thumbs up (quality 1.0)."""
        return self.record(request_id, comment=comment, thumbs_up=True, **kw)

    def thumbs_down(self, request_id: str, comment: str | None = None, **kw: Any) -> Feedback:
        """Record a thumbs down (quality 0.0)."""
        return self.record(request_id, comment=comment, thumbs_up=False, **kw)

    # -- reading --------------------------------------------------------------------------
    def feedback(self, request_id: str | None = None) -> list[Feedback]:
        """The feedback kept, oldest first (only that on ``request_id`` if given)."""
        with self._lock:
            items = list(self._feedback)
        return [f for f in items if request_id is None or f.request_id == request_id]

    def summary(self) -> QualitySummary:
        """Mean quality of the feedback kept, overall, by model and by feature."""
        items = self.feedback()
        scored = [f for f in items if f.score is not None]

        def mean_by(attr: str) -> dict[str, float]:
            groups: dict[str, list[float]] = {}
            for f in scored:
                key = getattr(f, attr)
                if key is not None:
                    groups.setdefault(key, []).append(f.score)  # type: ignore[arg-type]
            return {k: sum(v) / len(v) for k, v in sorted(groups.items())}

        total = sum(f.score for f in scored if f.score is not None)
        return QualitySummary(
            count=len(scored),
            mean=total / len(scored) if scored else None,
            by_model=mean_by("model"),
            by_feature=mean_by("feature"),
            unjoined=sum(1 for f in items if not f.joined),
        )


__all__ = ["SOURCES", "Feedback", "FeedbackCollector", "QualityMetrics", "QualitySummary"]
