"""The routes added to the core app: aiscope's native ingest, API keys, budgets, alert rules and
alerts, quality; and the background alert evaluation (while the app runs)."""

from __future__ import annotations

from fastapi import FastAPI

from aiscope.server import calls_api, keys_api, policy_api


def install(app: FastAPI) -> None:
    """Add the routes (and their background work) to ``app``."""
    app.include_router(calls_api.router)
    app.include_router(keys_api.router)
    policy_api.install(app)
