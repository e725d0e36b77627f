"""FeedbackCollector: joins feedback to calls by request id, scores quality, feeds metrics."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

import aiscope
from aiscope import Feedback, FeedbackCollector


def _quality_samples(text: str) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(model, feature, source) -> (count, sum) of ai_lib_quality_score."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (
                s.labels.get("model", ""),
                s.labels.get("feature", ""),
                s.labels.get("source", ""),
            )
            if s.name == "ai_lib_quality_score_count":
                out.setdefault(key, [0.0, 0.0])[0] = s.value
            elif s.name == "ai_lib_quality_score_sum":
                out.setdefault(key, [0.0, 0.0])[1] = s.value
    return {k: (v[0], v[1]) for k, v in out.items()}


def test_feedback_joins_its_call_and_feeds_the_quality_histogram() -> None:
    mc = aiscope.MetricsCollector()
    fc = FeedbackCollector(mc)
    scope = aiscope.Scope(metrics=mc, feedback=fc)
    a = aiscope.record_call(
        "gpt-4o",
        "openai",
        input_tokens=5,
        tags={"feature": "search", "team": "growth"},
        scope=scope,
    )
    b = aiscope.record_call(
        "claude-3-5-haiku-latest", "anthropic", tags={"feature": "chat"}, scope=scope
    )
    fa = fc.record(request_id=a.request_id, rating=4, comment="ok")
    fb = fc.thumbs_down(b.request_id, source="human")
    fj = fc.record(a.request_id, score=0.25, source="llm-judge", label="off-topic")
    assert (fa.model, fa.feature, fa.team, fa.joined) == ("gpt-4o", "search", "growth", True)
    assert fa.score == pytest.approx(0.75)  # 4 on a 1..5 scale
    assert (fb.model, fb.score, fb.thumbs_up) == ("claude-3-5-haiku-latest", 0.0, False)
    assert (fj.score, fj.label, fj.source) == (0.25, "off-topic", "llm-judge")
    got = _quality_samples(mc.export_prometheus())
    assert got == {
        ("gpt-4o", "search", "human"): (1.0, 0.75),
        ("gpt-4o", "search", "llm-judge"): (1.0, 0.25),
        ("claude-3-5-haiku-latest", "chat", "human"): (1.0, 0.0),
    }
    summary = fc.summary()
    assert summary.count == 3 and summary.mean == pytest.approx((0.75 + 0.0 + 0.25) / 3)
    assert summary.by_model == {"claude-3-5-haiku-latest": 0.0, "gpt-4o": 0.5}
    assert summary.by_feature == {"chat": 0.0, "search": 0.5}


def test_unknown_request_id_is_kept_unjoined() -> None:
    mc = aiscope.MetricsCollector()
    fc = FeedbackCollector(mc)
    fb = fc.record("never-seen", thumbs_up=True)
    assert fb.joined is False and fb.model is None and fb.score == 1.0
    assert fc.feedback("never-seen") == [fb]
    assert fc.summary().unjoined == 1
    assert _quality_samples(mc.export_prometheus()) == {("unknown", "", "human"): (1.0, 1.0)}


def test_comment_only_feedback_has_no_score_and_no_metric() -> None:
    mc = aiscope.MetricsCollector()
    fc = FeedbackCollector(mc)
    fb = fc.record("r1", comment="the table was cut off")
    assert fb.score is None
    assert "ai_lib_quality_score" not in mc.export_prometheus()


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"rating": 6}, ValueError, "rating must be between 1 and 5"),
        ({"rating": 0}, ValueError, "rating"),
        ({"rating": 4.5}, TypeError, "rating must be an int"),
        ({"rating": True}, TypeError, "rating"),
        ({"score": 1.5}, ValueError, "score must be in [0, 1]"),
        ({"score": float("nan")}, ValueError, "score"),
        ({"thumbs_up": 1}, TypeError, "thumbs_up"),
        ({"rating": 5, "score": 1.0}, ValueError, "rating and score"),
        ({"rating": 5, "source": "robot"}, ValueError, "source must be one of"),
        ({"comment": 3}, TypeError, "comment"),
    ],
)
def test_bad_feedback_is_a_clear_error(kwargs: dict[str, object], error: type, field: str) -> None:
    fc = FeedbackCollector()
    with pytest.raises(error, match=field.replace("[", r"\[").replace("]", r"\]")):
        fc.record("r1", **kwargs)  # type: ignore[arg-type]
    assert fc.feedback() == []


def test_custom_rating_scale() -> None:
    fc = FeedbackCollector(rating_scale=10)
    assert fc.record("r", rating=10).score == 1.0
    assert fc.record("r", rating=1).score == 0.0
    with pytest.raises(ValueError, match="between 1 and 10"):
        fc.record("r", rating=11)


def test_memory_is_bounded() -> None:
    fc = FeedbackCollector(max_calls=10, max_feedback=5)
    scope = aiscope.Scope(feedback=fc)
    ids = [aiscope.record_call("gpt-4o", "openai", scope=scope).request_id for _ in range(30)]
    assert fc.record(ids[0], thumbs_up=True).joined is False  # forgotten: older than 10 calls
    assert fc.record(ids[-1], thumbs_up=True).joined is True
    for rid in ids:
        fc.record(rid, rating=3)
    assert len(fc.feedback()) == 5 and fc.forgotten == 27


def test_listeners_get_feedback_and_their_errors_stay_inside() -> None:
    seen: list[Feedback] = []

    def broken(_: Feedback) -> None:
        raise RuntimeError("boom")

    fc = FeedbackCollector(listeners=[broken, seen.append])
    fb = fc.record("r", score=0.5)
    assert seen == [fb] and fc.listener_errors == 1


def test_a_feedback_collector_built_without_metrics_feeds_the_scopes_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # as the seed builds it: FeedbackCollector(), then configure(metrics=m, feedback=fb)
    import openai

    from aiscope.testing import MockProvider
    from tests.support.sdk_support import Records

    mc = aiscope.MetricsCollector()
    fb = FeedbackCollector()
    calls = Records()
    mock = MockProvider().start()
    # configure() replaces the process-wide scope: the test's own is put back after
    monkeypatch.setattr("aiscope.scope._default_scope", aiscope.current_scope())
    try:
        aiscope.configure(metrics=mc, feedback=fb, sinks=[calls])
        aiscope.instrument()
        sdk = openai.OpenAI(base_url=mock.base_url("openai"), api_key="k", max_retries=0)
        for _ in range(2):
            sdk.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Hi"}], max_tokens=20
            )
    finally:
        aiscope.uninstrument()
        mock.stop()
    first, second = calls.items
    fb.record(request_id=first.request_id, rating=5)
    fb.record(request_id=second.request_id, rating=1)
    assert _quality_samples(mc.export_prometheus()) == {("gpt-4o", "", "human"): (2.0, 1.0)}
