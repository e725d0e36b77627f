"""The server side of ``aiscope demo``: an aiscope server on a free loopback port
(SQLite in a temporary or given directory), fed the demo workload over OTLP by
the official OpenTelemetry HTTP exporter, and checked against the workload's own
CostTracker.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from aiscope.alerts import default_rules, rule_to_dict
from aiscope.cost.tracker import CostReport
from aiscope.feedback import Feedback
from aiscope.tracing import Tracer


@dataclass(frozen=True, slots=True)
class CostCheck:
    """The workload's cost as its CostTracker saw it and as the server stored it."""

    local_cost: float
    local_calls: int
    server_cost: float
    server_calls: int
    by_model: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def matches(self) -> bool:
        """Same number of calls, and the same cost to a billionth of a dollar."""
        return (
            self.local_calls == self.server_calls
            and abs(self.local_cost - self.server_cost) <= 1e-9
        )


class DemoServer:
    """An aiscope server in this process (keyless, loopback only) until closed.

    ``db_dir``: where its SQLite file goes (kept); a temporary directory (removed on
    close) when None.
    """

    def __init__(self, db_dir: str | Path | None = None, port: int = 0) -> None:
        self._own_dir = db_dir is None
        self.db_dir = Path(tempfile.mkdtemp(prefix="aiscope-demo-") if db_dir is None else db_dir)
        self.db_path = self.db_dir / "aiscope.db"
        self.port = port
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._engine: Any = None

    def __enter__(self) -> DemoServer:
        import uvicorn

        from aiscope.server import Settings, create_app, open_database
        from aiscope.server.auth import ensure_local_project

        self.db_dir.mkdir(parents=True, exist_ok=True)
        self._engine = open_database(f"sqlite:///{self.db_path}")
        ensure_local_project(self._engine)
        app = create_app(Settings(engine=self._engine, local_only=True))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="aiscope-demo-server")
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.close()
                raise RuntimeError(f"nothing listens on 127.0.0.1:{self.port} (port taken?)")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server; remove the temporary directory."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        if self._engine is not None:
            self._engine.dispose()
        if self._own_dir:
            shutil.rmtree(self.db_dir, ignore_errors=True)

    def tracer(self) -> Tracer:
        """A Tracer exporting to this server with the official OTLP/HTTP exporter."""
        return Tracer(service_name="aiscope-demo", endpoint=f"{self.url}/v1/traces")

    def configure(self, budget_usd: float) -> None:
        """The demo's budget and the SDK's default alert rules, stored on the server."""
        with httpx2.Client(base_url=self.url, timeout=10) as http:
            http.post(
                "/api/budgets",
                json={"name": "demo", "limit_usd": budget_usd, "period": "total"},
            ).raise_for_status()
            for rule in default_rules():
                http.post("/api/alert-rules", json=rule_to_dict(rule)).raise_for_status()

    def send_feedback(self, items: list[Feedback]) -> None:
        """The judge's scores, by request id (``POST /api/feedback``)."""
        with httpx2.Client(base_url=self.url, timeout=10) as http:
            for f in items:
                if f.score is not None:
                    http.post(
                        "/api/feedback",
                        json={"name": f.source, "score": f.score, "request_id": f.request_id},
                    ).raise_for_status()

    def check_cost(self, report: CostReport) -> CostCheck:
        """Compare the server's ``/api/cost`` with the CostTracker's report."""
        rows = httpx2.get(f"{self.url}/api/cost", params={"group_by": "model"}, timeout=10)
        rows.raise_for_status()
        by_model = {r["model"]: r for r in rows.json()["rows"]}
        return CostCheck(
            local_cost=report.total_cost,
            local_calls=report.call_count,
            server_cost=sum(r["cost_usd"] for r in by_model.values()),
            server_calls=sum(r["calls"] for r in by_model.values()),
            by_model={
                m: (report.by_model.get(m, 0.0), by_model[m]["cost_usd"] if m in by_model else 0.0)
                for m in sorted({*report.by_model, *by_model})
            },
        )

    def alerts(self) -> list[dict[str, Any]]:
        """The server's active alerts (rules evaluated on what it stored)."""
        r = httpx2.get(f"{self.url}/api/alerts", timeout=10)
        r.raise_for_status()
        alerts: list[dict[str, Any]] = r.json()["alerts"]
        return alerts

    def wait(self) -> None:
        """Block until Ctrl-C (or the server stops)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            pass


__all__ = [
    "CostCheck",
    "DemoServer",
]
