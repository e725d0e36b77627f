"""Shared fixtures. Tests that need an external binary skip on a user's machine
without it, but fail in CI (CI=true), where .ci/run installs it."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import aiscope
from aiscope.scope import Scope, use_scope
from aiscope.testing import MockProvider

#: fixtures shared by the SDK instrumentation tests (``records``)
pytest_plugins = ["tests.support.sdk_support", "tests.support.redis_support"]

IN_CI = os.environ.get("CI", "").lower() == "true"


def require_binary(name: str) -> str:
    """The path of ``name``; skip without it (fail in CI)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install prometheus)"
        if IN_CI:
            pytest.fail(f"{message}: CI must run this test")
        pytest.skip(message)
    return path


@pytest.fixture
def scope() -> Iterator[Scope]:
    """A fresh scope with metrics and an unlimited cost tracker, current for the test."""
    s = Scope(metrics=aiscope.MetricsCollector(), cost_tracker=aiscope.CostTracker())
    with use_scope(s):
        yield s


@pytest.fixture(scope="module")
def mock() -> Iterator[MockProvider]:
    """A mock provider on a loopback port, shared by a module's tests (reset it per test)."""
    with MockProvider() as m:
        yield m


@pytest.fixture(params=["memory", "sqlite", "redis", "postgres"])
def make_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A factory of ledgers sharing one store, on each of the four ledgers (Redis and
    PostgreSQL under a prefix/schema of their own, removed afterwards; see
    test_ledgers_remote for the services' variables)."""
    kind = request.param
    if kind == "memory":
        shared = aiscope.MemoryLedger()
        yield lambda: shared
    elif kind == "sqlite":
        path = tmp_path / "budget.db"
        yield lambda: aiscope.SQLiteLedger(path)
    else:
        from tests.cost.test_ledgers_remote import _pg_spec, _redis_spec

        specs = _redis_spec() if kind == "redis" else _pg_spec()
        spec = next(specs)
        yield spec.build
        for _ in specs:  # runs the clean-up
            pass


@pytest.fixture(autouse=True)
def _aiscope_logging_restored() -> Iterator[None]:
    """Each test leaves the ``aiscope`` logger as it found it: a test (or a docs
    example) calling ``configure_logging("INFO")`` would otherwise make every later
    call's summary line a record pytest keeps in memory."""
    log = logging.getLogger("aiscope")
    level, handlers = log.level, list(log.handlers)
    yield
    log.setLevel(level)
    for h in list(log.handlers):
        if h not in handlers:
            log.removeHandler(h)
