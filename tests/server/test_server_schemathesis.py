"""Schemathesis against the server's OpenAPI description: no generated request gets a 5xx.

Schemathesis is used as a library (its cases, drawn by Hypothesis, sent to the ASGI
app) rather than through its pytest plugin.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from aiscope.server import Settings, create_app, create_project

SECRET_WRITES = ("/api/budgets", "/api/alert-rules", "/api/keys")


@pytest.mark.slow
def test_no_generated_request_gets_a_5xx(engine: Engine) -> None:
    keys = create_project(engine, "fuzz")
    app = create_app(Settings(engine=engine, compact_every_s=None))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/traces", "/api/calls", "/api/cost"}
    checked: list[str] = []
    for op in operations:
        # reads and configuration (budgets, alert rules) take the secret key
        secret = op.method.upper() == "GET" or op.path.startswith(SECRET_WRITES)
        key = keys.secret_key if secret else keys.public_key
        _fuzz(op, key)
        checked.append(f"{op.method.upper()} {op.path}")
    assert len(checked) == len(operations)


def _fuzz(operation: Any, key: str) -> None:
    """Send Hypothesis-drawn cases of one operation, with the key its method needs."""

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        case = data.draw(operation.as_strategy())
        response = case.call(headers={"authorization": f"Bearer {key}"})
        assert response.status_code < 500, (case.method, case.path, response.text[:500])

    run()
