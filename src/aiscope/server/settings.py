"""What one server process is configured with (:class:`Settings`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine

from aiscope.alerts import Notifier
from aiscope.cost.ledger import Ledger
from aiscope.cost.pricing import Pricing

MAX_BODY_BYTES = 16 * 1024 * 1024
#: most spans one OTLP request may carry (the SDK's batch processor sends 512): a
#: bigger one is answered 413, so a request's memory stays proportional to this
MAX_SPANS = 50_000


@dataclass(slots=True)
class Settings:
    """What one server process needs: its database and how it authenticates."""

    engine: Engine
    local_only: bool = False
    pricing: Pricing | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    #: seconds between rollup compactions (and retention runs) while the app runs
    compact_every_s: float | None = 30.0
    #: raw calls, spans and feedback older than this are deleted; rollups are kept
    retention_days: float | None = None
    #: request bodies decoded at once; one more waits up to ``decode_wait_s`` for a
    #: turn, then is answered 503 with Retry-After: a burst of large requests cannot
    #: take memory without bound
    max_concurrent_decodes: int = 4
    decode_wait_s: float = 10.0
    #: ``Host`` names served in local-only mode besides loopback ones (``localhost``,
    #: ``127.0.0.1``, ``[::1]``, ...), e.g. a name in ``/etc/hosts`` for 127.0.0.1
    allowed_hosts: tuple[str, ...] = ()
    #: seconds between background evaluations of the stored alert rules while the app
    #: runs (None: only when ``GET /api/alerts`` asks)
    alert_every_s: float | None = 15.0
    #: seconds one replica holds the alert-evaluation lease (renewed at each evaluation,
    #: so longer than ``alert_every_s``): a replica that dies holding it is replaced
    #: this long after its last renewal
    alert_lease_s: float = 60.0
    #: where alert changes (firing, re-notified, resolved) are sent: the SDK's notifiers
    #: (:class:`~aiscope.alerts.WebhookNotifier`, ``SlackNotifier``, ``PagerDutyNotifier``)
    notifiers: tuple[Notifier, ...] = field(default_factory=tuple)
    #: the ledger the applications' budgets use (:class:`~aiscope.cost.RedisLedger`,
    #: ``PostgresLedger``, ``SQLiteLedger``): budgets of the same name then show its live
    #: spend and what is reserved by calls in flight
    ledger: Ledger | None = None
