"""The ``aiscope`` command line."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

app = typer.Typer(
    help="aiscope: observability and cost control for LLM calls.", no_args_is_help=True
)
console = Console()
#: errors and warnings: stderr, so that stdout (say ``--json``) stays parseable
err_console = Console(stderr=True, soft_wrap=True)


alerts_app = typer.Typer(help="Alert rules: check them on a workload, export them.")
dashboard_app = typer.Typer(help="Dashboards over aiscope's metrics.")
app.add_typer(alerts_app, name="alerts")
app.add_typer(dashboard_app, name="dashboard")


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:,.4f}"


@app.command("prices")
def _prices(
    models: Annotated[list[str], typer.Argument(help="Model names, optionally provider/model.")],
    provider: Annotated[
        str | None, typer.Option(help="Provider id (openai, anthropic, ...).")
    ] = None,
    overrides: Annotated[
        str | None, typer.Option(help="YAML/JSON file of price overrides.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show what a model costs (USD per million tokens), from the bundled price data."""
    from aiscope.cost.pricing import Pricing

    try:
        pricing = Pricing(overrides) if overrides else Pricing()
    except (ValueError, TypeError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    found = [(m, pricing.describe(m, provider)) for m in models]
    if as_json:
        typer.echo(json.dumps({m: p.as_dict() if p else None for m, p in found}, indent=2))
    else:
        table = Table(title="Prices (USD per million tokens)")
        for col in (
            "model",
            "provider",
            "input",
            "output",
            "cache read",
            "cache write",
            "reasoning",
            "source",
        ):
            table.add_column(col)
        for _name, price in found:
            if price is None:
                continue

            def fmt(v: object) -> str:
                return "-" if v is None else f"{v}"

            table.add_row(
                price.model,
                price.provider,
                fmt(price.input_mtok),
                fmt(price.output_mtok),
                fmt(price.cache_read_mtok),
                fmt(price.cache_write_mtok),
                fmt(price.reasoning_mtok),
                price.source + (" (tiered)" if price.tiered else ""),
            )
        console.print(table)
    unknown = [m for m, p in found if p is None]
    for name in unknown:
        err_console.print(f"[red]error:[/red] {_why_no_price(pricing, name, provider)}")
    if unknown:
        raise typer.Exit(1)


def _why_no_price(pricing: Any, name: str, provider: str | None) -> str:
    """Why ``name`` (``provider/model`` or a model) has no price, and what has one."""
    prov, model = (provider, name) if provider or "/" not in name else name.split("/", 1)
    if prov:
        others = [p for p in pricing.providers_of(model) if p != prov]
        if others:
            return f"provider {prov!r} has no price for {model!r}; providers that do: " + ", ".join(
                others
            )
    close = pricing.suggest(model)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    return f"unknown model {name!r}: no price in the bundled data{hint} (or add --overrides)"


@app.command("demo")
def _demo(
    requests: Annotated[int, typer.Option(min=1, help="How many calls to send.")] = 50,
    seed: Annotated[int, typer.Option(help="Random seed of the workload.")] = 7,
    budget: Annotated[float, typer.Option(min=0.0, help="Budget in USD (block mode).")] = 5.0,
    prometheus: Annotated[bool, typer.Option(help="Print the Prometheus text.")] = True,
    server: Annotated[
        bool,
        typer.Option(
            "--server/--no-server",
            help="Also start the aiscope server and send it the workload over OTLP.",
        ),
    ] = True,
    keep_serving: Annotated[
        bool, typer.Option("--serve", help="Keep the server running until Ctrl-C.")
    ] = False,
    db_dir: Annotated[
        str | None,
        typer.Option(help="Directory of the server's SQLite file (default: a temporary one)."),
    ] = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="The server's port (0: a free one).")
    ] = 0,
) -> None:
    """Send a workload through AiClient to the mock provider; print cost, latency and
    metrics; and (unless --no-server) the same workload as stored by the aiscope server."""
    from aiscope import demo as demo_mod

    with contextlib.ExitStack() as stack:
        srv = _demo_server(stack, db_dir, port) if server else None
        tracer = srv.tracer() if srv is not None else None
        judged: list[Any] = []
        with Progress(console=console, transient=False) as progress:
            task = progress.add_task(
                f"Sending {requests} calls to the mock provider", total=requests
            )
            result = demo_mod.run_workload(
                requests=requests,
                seed=seed,
                budget_usd=budget,
                on_progress=lambda: progress.advance(task),
                tracer=tracer,
                on_feedback=judged.append,
            )
        _print_demo(result, prometheus)
        if srv is not None and tracer is not None:
            _demo_server_report(srv, tracer, result, judged, budget, keep_serving)


def _demo_server(stack: contextlib.ExitStack, db_dir: str | None, port: int) -> Any:
    """The demo's server (None, with a note, when the server extras are missing)."""
    try:
        from aiscope.demo_server import DemoServer
    except ImportError as exc:
        console.print(f"[yellow]no server[/yellow] ({exc}): pip install 'aiscope[server]'")
        return None
    try:
        return stack.enter_context(DemoServer(db_dir, port))
    except (RuntimeError, OSError) as exc:  # e.g. the port is taken
        err_console.print(f"[red]error:[/red] the aiscope server did not start: {exc}")
        raise typer.Exit(2) from None


def _demo_server_report(
    srv: Any, tracer: Any, result: Any, judged: list[Any], budget: float, keep_serving: bool
) -> None:
    flushed = tracer.flush(15.0)
    tracer.shutdown(5.0)
    srv.configure(budget)
    srv.send_feedback(judged)
    check = srv.check_cost(result.report)
    t = Table(title="The same workload on the aiscope server (OTLP -> SQLite)")
    for col in ("", "calls", "cost"):
        t.add_column(col, justify="left" if not col else "right")
    t.add_row("CostTracker (in process)", str(check.local_calls), f"${check.local_cost:,.6f}")
    t.add_row("server GET /api/cost", str(check.server_calls), f"${check.server_cost:,.6f}")
    console.print(t)
    if check.matches and flushed:
        console.print("[green]server totals match the CostTracker[/green]")
    else:
        console.print(
            f"[red]server totals differ from the CostTracker[/red] (spans flushed: {flushed}; "
            f"dropped: {tracer.dropped_spans})"
        )
    active = srv.alerts()
    if active:
        t = Table(title="Alerts on the server (the same rules, on stored data: GET /api/alerts)")
        for col in ("name", "severity", "state", "summary"):
            t.add_column(col, overflow="fold")
        for a in active:
            t.add_row(a["name"], a["severity"], a["state"], a["summary"])
        console.print(t)
    else:
        console.print("No alert rule holds on the server's stored data.")
    console.print(f"Dashboard: [bold]{srv.url}/[/bold]  (API: {srv.url}/openapi.json)")
    if keep_serving:
        console.print(f"Serving until Ctrl-C; database {srv.db_path}")
        srv.wait()
    if not (check.matches and flushed):
        raise typer.Exit(1)


def _print_demo(result: Any, prometheus: bool) -> None:
    r = result.report
    summary = Table(title="Cost")
    for col in (
        "total",
        "budget",
        "remaining",
        "calls",
        "errors",
        "retries",
        "refused",
        "HTTP requests",
    ):
        summary.add_column(col)
    summary.add_row(
        _usd(r.total_cost),
        _usd(r.budget_usd),
        _usd(r.remaining),
        str(r.call_count),
        str(r.error_count),
        str(result.retries),
        str(result.refused),
        str(result.requests_sent),
    )
    console.print(summary)
    for title, breakdown in (
        ("Cost by model", r.by_model),
        ("Cost by feature", r.by_feature),
        ("Cost by team", r.by_team),
    ):
        t = Table(title=title)
        t.add_column(title.split()[-1])
        t.add_column("cost", justify="right")
        t.add_column("share", justify="right")
        for key, cost in sorted(breakdown.items(), key=lambda kv: -kv[1]):
            share = cost / r.total_cost if r.total_cost else 0.0
            t.add_row(key, _usd(cost), f"{share:.0%}")
        console.print(t)
    lat = Table(title="Latency by model (ms)")
    for col in ("model", "calls", "p50", "p95", "p99", "TTFT p50", "TTFT p95"):
        lat.add_column(col, justify="right" if col != "model" else "left")
    for p, f in zip(result.percentiles, result.ttft, strict=True):
        lat.add_row(
            p.model or "all",
            str(p.count),
            *(f"{v:,.0f}" if v is not None else "-" for v in (p.p50_ms, p.p95_ms, p.p99_ms)),
            *(f"{v:,.0f}" if v is not None else "-" for v in (f.p50_ms, f.p95_ms)),
        )
    console.print(lat)
    _print_alerts(result.alerts)
    if prometheus:
        console.rule("Prometheus exposition (ai_lib_*, without buckets)")
        typer.echo(
            "\n".join(
                line
                for line in result.prometheus_text.splitlines()
                if not line.startswith("#") and "_created" not in line and "_bucket" not in line
            )
        )


def _print_alerts(alerts: list[Any]) -> None:
    if not alerts:
        console.print("No alert rule holds on this workload.")
        return
    t = Table(title="Alerts (default rules; pending ones fire once held for their duration)")
    for col in ("rule", "severity", "labels", "value", "state"):
        t.add_column(col, overflow="fold")
    for a in alerts:
        labels = " ".join(f"{k}={v}" for k, v in a.labels.items()) or "(all)"
        value = "-" if a.value is None else f"{a.value:,.4g}"
        t.add_row(a.rule, a.severity, labels, value, a.state)
    console.print(t)


def _load_rules(path: str | None) -> list[Any] | None:
    """The rules of a YAML file (None: the defaults); a bad file exits 2 saying why."""
    if path is None:
        return None
    from aiscope.alerts import load_rules

    try:
        return load_rules(path)
    except (TypeError, ValueError) as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@alerts_app.command("check")
def _alerts_check(
    requests: Annotated[int, typer.Option(min=1, help="How many demo calls to send.")] = 50,
    seed: Annotated[int, typer.Option(help="Random seed of the workload.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    rules: Annotated[
        str | None, typer.Option(help="YAML file of alert rules (default: the built-in 16).")
    ] = None,
) -> None:
    """Run the demo workload (mock provider) and print the alert rules it sets off."""
    from aiscope import demo as demo_mod

    chosen = _load_rules(rules)
    result = demo_mod.run_workload(requests=requests, seed=seed, budget_usd=1e9, rules=chosen)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(a) for a in result.alerts], indent=2))
    else:
        _print_alerts(result.alerts)


def _buckets(text: str) -> tuple[float, ...]:
    """Seconds from ``"0.5,1,5"``; ValueError naming the bad entry."""
    out = []
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise ValueError(f"--duration-buckets: {part.strip()!r} is not a number") from None
        if not 0 < value < float("inf"):
            raise ValueError(f"--duration-buckets: {part.strip()!r} is not a positive number")
        out.append(value)
    return tuple(sorted(out))


@alerts_app.command("export-prometheus")
def _alerts_export_prometheus(
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    group: Annotated[str, typer.Option(help="Rule group name.")] = "aiscope",
    namespace: Annotated[str, typer.Option(help="Metric name prefix.")] = "ai_lib",
    rules: Annotated[
        str | None, typer.Option(help="YAML file of alert rules (default: the built-in 16).")
    ] = None,
    duration_buckets: Annotated[
        str | None,
        typer.Option(
            help="The collector's duration_buckets in seconds, comma-separated "
            "(default: aiscope's); each latency threshold must be one of them."
        ),
    ] = None,
) -> None:
    """Write the alert rules as a Prometheus rules file."""
    from aiscope.alerts import export_prometheus_rules
    from aiscope.metric_definitions import DURATION_BUCKETS

    chosen = _load_rules(rules)
    try:
        buckets = DURATION_BUCKETS if duration_buckets is None else _buckets(duration_buckets)
        text = export_prometheus_rules(
            output, chosen, group=group, namespace=namespace, duration_buckets=buckets
        )
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except OSError as exc:
        err_console.print(f"[red]error:[/red] cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    if output is None:
        typer.echo(text, nl=False)
    else:
        console.print(f"wrote {output}")


@dashboard_app.command("export")
def _dashboard_export(
    fmt: Annotated[str, typer.Option("--format", help="Dashboard format (grafana).")] = "grafana",
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    namespace: Annotated[str, typer.Option(help="Metric name prefix.")] = "ai_lib",
) -> None:
    """Write an importable dashboard (Grafana JSON) over aiscope's metrics."""
    from aiscope.dashboards import export_grafana_dashboard

    if fmt != "grafana":
        err_console.print(f"[red]error:[/red] unknown --format {fmt!r} (supported: grafana)")
        raise typer.Exit(2)
    try:
        text = export_grafana_dashboard(namespace=namespace)
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    if output is None:
        typer.echo(text)
        return
    try:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError as exc:
        err_console.print(f"[red]error:[/red] cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    console.print(f"wrote {output}")


@app.command("mock-provider")
def _mock_provider(
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free one).")] = 8765,
) -> None:
    """Run the mock LLM provider (OpenAI, Anthropic and Gemini wire formats) until Ctrl-C."""
    from aiscope.testing import serve

    try:
        serve(host, port)
    except OSError as exc:  # main() prints it as one line
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None


@app.command("serve")
def _serve(
    db: Annotated[
        str | None, typer.Option(help="sqlite:///path or postgresql://... (default ~/.aiscope).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port.")] = 6363,
    require_keys: Annotated[
        bool, typer.Option("--require-keys", help="Require project API keys (any host).")
    ] = False,
    create_project: Annotated[
        str | None, typer.Option(help="Create a project with this name, print its keys, exit.")
    ] = None,
    retention_days: Annotated[
        float | None, typer.Option(help="Delete raw calls older than this (rollups stay).")
    ] = None,
    alert_every: Annotated[
        float,
        typer.Option(
            min=0.01, envvar="AISCOPE_ALERT_EVERY_S", help="Seconds between alert evaluations."
        ),
    ] = 15.0,
    alert_lease: Annotated[
        float,
        typer.Option(
            min=0.01,
            envvar="AISCOPE_ALERT_LEASE_S",
            help="Seconds a replica holds the alert-evaluation lease (> --alert-every).",
        ),
    ] = 60.0,
    alert_webhook: Annotated[
        list[str] | None,
        typer.Option(envvar="AISCOPE_ALERT_WEBHOOK_URL", help="POST alert events as JSON here."),
    ] = None,
    alert_slack_webhook: Annotated[
        list[str] | None,
        typer.Option(envvar="AISCOPE_ALERT_SLACK_WEBHOOK_URL", help="A Slack incoming webhook."),
    ] = None,
    alert_pagerduty_key: Annotated[
        str | None,
        typer.Option(
            envvar="AISCOPE_ALERT_PAGERDUTY_ROUTING_KEY", help="PagerDuty Events v2 routing key."
        ),
    ] = None,
    alert_pagerduty_url: Annotated[
        str | None,
        typer.Option(envvar="AISCOPE_ALERT_PAGERDUTY_URL", help="PagerDuty Events API URL."),
    ] = None,
    ledger: Annotated[
        str | None,
        typer.Option(
            envvar="AISCOPE_LEDGER_URL",
            help="The applications' budget ledger (redis://, postgresql://, sqlite path).",
        ),
    ] = None,
    ledger_schema: Annotated[
        str, typer.Option(envvar="AISCOPE_LEDGER_SCHEMA", help="PostgresLedger's schema.")
    ] = "public",
) -> None:
    """Run the aiscope server: OTLP ingest at /v1/traces and the query API at /api."""
    from aiscope import server

    try:
        if create_project is not None:
            keys = server.create_project(
                server.open_database(db or server.DEFAULT_DB), create_project
            )
            typer.echo(json.dumps(dataclasses.asdict(keys), indent=2))
            return
        server.serve(
            db or server.DEFAULT_DB,
            host,
            port,
            require_keys=require_keys,
            retention_days=retention_days,
            alert_every_s=alert_every,
            alert_lease_s=alert_lease,
            notifiers=server.notifiers_from(
                alert_webhook or (),
                alert_slack_webhook or (),
                alert_pagerduty_key,
                alert_pagerduty_url,
            ),
            ledger=ledger,
            ledger_schema=ledger_schema,
        )
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


keys_app = typer.Typer(help="The server's project API keys: list, revoke, rotate.")
app.add_typer(keys_app, name="keys")
DbOption = Annotated[
    str | None, typer.Option(help="sqlite:///path or postgresql://... (default ~/.aiscope).")
]


def _keys_db(db: str | None) -> Any:
    from aiscope import server

    return server.open_database(db or server.DEFAULT_DB)


@keys_app.command("list")
def _keys_list(
    project: Annotated[str, typer.Argument(help="Project id.")], db: DbOption = None
) -> None:
    """A project's keys as JSON (ids, kinds, created, revoked; never secrets)."""
    from aiscope.server.auth import list_keys

    typer.echo(json.dumps(list_keys(_keys_db(db), project), indent=2))


@keys_app.command("revoke")
def _keys_revoke(
    key: Annotated[str, typer.Argument(help="The key, or its 16-hex id.")], db: DbOption = None
) -> None:
    """Revoke a key: refused by the server from the next request on."""
    from aiscope.server.auth import revoke_key

    try:
        found = revoke_key(_keys_db(db), key)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if not found:
        typer.echo("error: no live key with that id", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")


@keys_app.command("rotate")
def _keys_rotate(
    key: Annotated[str, typer.Argument(help="The key, or its 16-hex id.")], db: DbOption = None
) -> None:
    """Revoke a key and print a new one of the same project and kind (shown this once)."""
    from aiscope.server.auth import rotate_key

    try:
        typer.echo(rotate_key(_keys_db(db), key))
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except LookupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    """Entry point of the ``aiscope`` script.

    Exit codes: 0 done; 1 the command's own failure (an unknown model, a failed
    check); 2 bad arguments, or a file, port or database that cannot be used (one line
    on stderr naming it, never a traceback).
    """
    try:
        app()
    except OSError as exc:  # a taken port, a missing directory, a refused connection
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        err_console.print(f"[red]error:[/red] {exc.strerror or exc}{where}", markup=True)
        raise SystemExit(2) from None
    except Exception as exc:
        db_errors = sys.modules.get("sqlalchemy.exc")
        if db_errors is None or not isinstance(exc, db_errors.SQLAlchemyError):
            raise
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        err_console.print(f"[red]error:[/red] the database cannot be used: {first}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()


# the commands are the CLI's interface (``aiscope --help``); their functions are private
__all__ = ["app", "main"]
