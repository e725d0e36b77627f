"""What the alert evaluator and the feedback collector add to a recorded call, and what
one evaluation of the 16 default rules costs.

    .venv/bin/python bench/alerts.py [--calls N] [--rounds R]

Contenders (each pass emits the same ``--calls`` records through ``Scope.emit``):
``base`` a scope with MetricsCollector + CostTracker; ``+feedback`` adds a
FeedbackCollector; ``+alerts`` adds it and an AlertEvaluator sink. Medians over
rounds in rotating order (bench/_timing.py), then the evaluation time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import aiscope
from _timing import Contender, time_rounds
from aiscope.alerts import AlertEvaluator
from aiscope.record import CallRecord, Usage

MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5")
FEATURES = ("search", "chat", "summarize")


def _records(n: int) -> list[CallRecord]:
    now = time.time()
    return [
        CallRecord(
            model=MODELS[i % 3],
            provider="anthropic" if i % 3 == 2 else "openai",
            start_time=now,
            latency_s=0.1 + (i % 50) / 100,
            usage=Usage(300 + i % 7, 40),
            tags={"feature": FEATURES[i % 3], "team": "growth"},
        )
        for i in range(n)
    ]


def _pass(scope: aiscope.Scope, n: int) -> float:
    records = _records(n)
    emit = scope.emit
    t0 = time.thread_time()  # CPU time of this thread: other processes on the box do not count
    for r in records:
        emit(r)
    return time.thread_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    n = args.calls

    def scope(feedback: bool, alerts: AlertEvaluator | None) -> aiscope.Scope:
        return aiscope.Scope(
            metrics=aiscope.MetricsCollector(),
            cost_tracker=aiscope.CostTracker(),
            feedback=aiscope.FeedbackCollector() if feedback else None,
            sinks=[alerts] if alerts is not None else [],
        )

    evaluator = AlertEvaluator()
    scopes = {
        "base": scope(False, None),
        "+feedback": scope(True, None),
        "+alerts": scope(True, evaluator),
    }
    group = [Contender(k, k, (lambda s=s: _pass(s, n)), n) for k, s in scopes.items()]
    per_call = time_rounds([group], args.rounds)
    base = statistics.median(per_call["base"])
    print(f"per recorded call, median of {args.rounds} rounds of {n:,} calls:")
    for key, values in per_call.items():
        med = statistics.median(values)
        extra = (med - base) * 1e6
        print(f"  {key:<10} {med * 1e6:7.2f} µs   x{med / base:.2f} of base   +{extra:.2f} µs")
    evals = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        evaluator.evaluate()
        evals.append(time.perf_counter() - t0)
    print(
        f"one evaluate() of the 16 default rules (3 models x 3 features): "
        f"median {statistics.median(evals) * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
