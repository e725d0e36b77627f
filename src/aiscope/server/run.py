"""Starting the server: open and migrate the database, then run uvicorn."""

from __future__ import annotations

import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from aiscope.alerts import Notifier, PagerDutyNotifier, SlackNotifier, WebhookNotifier
from aiscope.cost import Ledger, PostgresLedger, RedisLedger, SQLiteLedger
from aiscope.server.app import create_app
from aiscope.server.auth import ensure_local_project
from aiscope.server.db import migrate, open_engine
from aiscope.server.deps import is_loopback
from aiscope.server.settings import Settings

DEFAULT_DB = f"sqlite:///{Path.home() / '.aiscope' / 'aiscope.db'}"
DEFAULT_PORT = 6363


def open_database(url: str = DEFAULT_DB) -> Engine:
    """An engine on ``url`` (``sqlite:///path`` or ``postgresql://...``), schema migrated."""
    engine = open_engine(url)
    migrate(engine)
    return engine


def open_ledger(url: str, *, schema: str = "public") -> Ledger:
    """The budget ledger at ``url``: ``redis://``/``rediss://`` (:class:`RedisLedger`),
    ``postgresql://`` (:class:`PostgresLedger`, its tables in ``schema``), or
    ``sqlite:///path`` / a path (:class:`SQLiteLedger`)."""
    if not isinstance(url, str) or not url:
        raise ValueError("ledger url must be a non-empty string (redis://, postgresql://, path)")
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme in ("redis", "rediss"):
        return RedisLedger(url)
    if scheme in ("postgresql", "postgres"):
        return PostgresLedger(url, schema=schema)
    if scheme == "sqlite":
        return SQLiteLedger(url.removeprefix("sqlite:///"))
    if not scheme:
        return SQLiteLedger(Path(url).expanduser())
    raise ValueError(f"ledger url: redis://, postgresql:// or sqlite:///path, got {url!r}")


def notifiers_from(
    webhooks: Sequence[str] = (),
    slack: Sequence[str] = (),
    pagerduty_key: str | None = None,
    pagerduty_url: str | None = None,
) -> list[Notifier]:
    """The SDK's notifiers for ``aiscope serve``'s options: a JSON webhook per URL, a
    Slack incoming webhook per URL, PagerDuty Events v2 with a routing key."""
    out: list[Notifier] = [WebhookNotifier(u) for u in webhooks]
    out += [SlackNotifier(u) for u in slack]
    if pagerduty_key:
        if pagerduty_url is None:
            out.append(PagerDutyNotifier(pagerduty_key))
        else:
            out.append(PagerDutyNotifier(pagerduty_key, url=pagerduty_url))
    return out


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` for uvicorn; ``OSError`` names the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it keep-alive answers wait ~40 ms on delayed ACKs
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


def serve(
    db: str = DEFAULT_DB,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    require_keys: bool = False,
    retention_days: float | None = None,
    alert_every_s: float | None = 15.0,
    alert_lease_s: float = 60.0,
    notifiers: Sequence[Notifier] = (),
    ledger: str | None = None,
    ledger_schema: str = "public",
) -> None:
    """Run the server until interrupted.

    Without ``require_keys`` it runs in local-only mode (no keys, one ``local``
    project), which is refused unless ``host`` is a loopback address. With
    ``retention_days`` raw calls and spans older than that are deleted (rollups stay).
    Alerts are evaluated every ``alert_every_s`` by the replica holding the alerts
    lease (``alert_lease_s``) and sent to ``notifiers``; ``ledger`` (a URL, see
    :func:`open_ledger`) is the applications' budget ledger, read for live spend.
    """
    import uvicorn

    from aiscope.server import protocol

    if not require_keys and not is_loopback(host):
        raise ValueError(
            f"host {host!r} is not a loopback address: keyless local mode would expose "
            "the data; bind to 127.0.0.1 or require API keys"
        )
    if require_keys and not is_loopback(host):
        # uvicorn here speaks plain HTTP: the keys cross the network in clear
        print(
            f"warning: serving {host}:{port} over plain HTTP: API keys travel in clear; "
            "put a TLS-terminating proxy in front of it, or bind 127.0.0.1",
            file=sys.stderr,
        )
    live = None if ledger is None else open_ledger(ledger, schema=ledger_schema)
    engine = open_database(db)
    if not require_keys:
        ensure_local_project(engine)
    app = create_app(
        Settings(
            engine=engine,
            local_only=not require_keys,
            retention_days=retention_days,
            alert_every_s=alert_every_s,
            alert_lease_s=alert_lease_s,
            notifiers=tuple(notifiers),
            ledger=live,
        )
    )
    try:
        sock = listen_socket(host, port)  # a taken port fails before any banner
        bound = sock.getsockname()[1]
        print(f"aiscope server on http://{host}:{bound} (OTLP: /v1/traces, API: /openapi.json)")
        sys.stdout.flush()
        # a client gets REQUEST_TIMEOUT_S to send a whole request (no slowloris)
        uvicorn.Server(protocol.config(app, log_level="warning")).run(sockets=[sock])
    finally:
        engine.dispose()
