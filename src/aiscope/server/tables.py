"""The server's tables, in SQLAlchemy Core: one definition for SQLite and PostgreSQL.

Times are Unix seconds as floats (``start_ts``) so both engines compare and
index them the same way; rollups are keyed by the Unix minute (``minute``) and keep
cost as integer nano-dollars (``cost_nanos``), which readers sum exactly and show
as dollars.
The Alembic migrations in ``migrations/versions`` create exactly these tables
(``tests/server/test_server_store.py`` compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

#: the ``calls`` columns the dashboard filters a page of calls by, each with an index
FILTERED_CALL_COLUMNS = (
    "model",
    "provider",
    "feature",
    "team",
    "status",
    "operation",
    "trace_id",
)

# BigInteger primary keys are plain INTEGER on SQLite (its rowid alias), BIGINT elsewhere.
_ID = BigInteger().with_variant(Integer(), "sqlite")

projects = Table(
    "projects",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_ts", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    # the public part of a key; the secret part is only stored as a SHA-256 digest
    Column("key_id", String(32), primary_key=True),
    Column("project_id", String(64), ForeignKey("projects.id"), nullable=False),
    Column("kind", String(10), nullable=False),  # "public" (ingest) or "secret" (read)
    Column("secret_sha256", String(64), nullable=False),
    Column("created_ts", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

calls = Table(
    "calls",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("project_id", String(64), nullable=False),
    Column("trace_id", String(32)),
    Column("span_id", String(16)),
    Column("parent_span_id", String(16)),
    Column("name", String(512), nullable=False),
    Column("service_name", String(256)),
    Column("request_id", String(128)),
    Column("operation", String(64), nullable=False),
    Column("provider", String(128), nullable=False),
    Column("model", String(256), nullable=False),
    Column("response_model", String(256)),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float),
    Column("cost_usd", Float),
    Column("cost_status", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_type", String(256)),
    Column("feature", String(256)),
    Column("team", String(256)),
    Column("tags", JSON, nullable=False),
    Column("start_ts", Float, nullable=False),
    Index("ix_calls_project_time", "project_id", "start_ts", "id"),
    # a page of calls filtered by one column, newest first, reads only its rows in
    # order (migration 0002): one index per filter the dashboard offers
    *(
        Index(f"ix_calls_project_{col}_time", "project_id", col, "start_ts", "id")
        for col in FILTERED_CALL_COLUMNS
    ),
    # a re-sent span (an exporter retrying after a lost answer) is stored once
    Index("ux_calls_project_trace_span", "project_id", "trace_id", "span_id", unique=True),
    # feedback given by request id finds its call (quality by model/feature)
    Index("ix_calls_project_request", "project_id", "request_id"),
)

# Spans that are not calls (a call's span is its row in ``calls``): trace structure.
spans = Table(
    "spans",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("project_id", String(64), nullable=False),
    Column("trace_id", String(32), nullable=False),
    Column("span_id", String(16), nullable=False),
    Column("parent_span_id", String(16)),
    Column("name", String(512), nullable=False),
    Column("kind", Integer, nullable=False),
    Column("start_ts", Float, nullable=False),
    Column("end_ts", Float, nullable=False),
    Column("status", String(16), nullable=False),
    Column("service_name", String(256)),
    Column("attributes", JSON, nullable=False),
    Index("ux_spans_project_trace_span", "project_id", "trace_id", "span_id", unique=True),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("project_id", String(64), nullable=False),
    Column("trace_id", String(32)),
    Column("span_id", String(16)),
    Column("request_id", String(128)),
    Column("name", String(128), nullable=False),
    Column("score", Float),
    Column("comment", Text),
    Column("created_ts", Float, nullable=False),
    Index("ix_feedback_project_time", "project_id", "created_ts"),
)

# One row per ingest batch, resolution (1, 60 or 1440 minutes), bucket and (provider,
# model, feature, team): rows are only ever inserted, so concurrent writers (several
# replicas on PostgreSQL) never contend on a row, and a query merges them (sums, and
# bin-wise sums of the sketches); the compactor later merges a bucket's rows into one.
# A query over a range reads day buckets for the whole days in it, hours for the
# whole hours left, and minutes only at the edges.
rollups = Table(
    "rollups",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("project_id", String(64), nullable=False),
    Column("resolution", Integer, nullable=False),  # minutes per bucket
    Column("minute", BigInteger, nullable=False),  # the bucket's first Unix minute
    Column("provider", String(128), nullable=False),
    Column("model", String(256), nullable=False),
    Column("feature", String(256), nullable=False),
    Column("team", String(256), nullable=False),
    Column("calls", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("reasoning_tokens", BigInteger, nullable=False),
    # integer nano-dollars (aiscope.cost.ledger.to_nanos), so sums are exact (migration 0005)
    Column("cost_nanos", BigInteger, nullable=False),
    Column("unpriced_calls", BigInteger, nullable=False),
    Column("latency_bins", JSON, nullable=False),  # DDSketch bin key -> count (ms)
    Column("ttft_bins", JSON, nullable=False),
    Index("ix_rollups_project_minute", "project_id", "resolution", "minute"),
)

# A project's budgets: a limit over a UTC period on the cost of the calls matching a
# scope (feature/team/model); what was spent is read from the rollups.
budgets = Table(
    "budgets",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("project_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("limit_usd", Float, nullable=False),
    Column("period", String(8), nullable=False),  # "day", "month" or "total"
    Column("scope", JSON, nullable=False),  # {"feature"?, "team"?, "model"?}
    Column("mode", String(8), nullable=False),  # "alert" or "block"
    Column("created_ts", Float, nullable=False),
    Index("ux_budgets_project_name", "project_id", "name", unique=True),
)

# A project's alert rules, in the SDK's dict form (aiscope.alerts.rule_to_dict).
alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("project_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("rule", JSON, nullable=False),
    Column("created_ts", Float, nullable=False),
    Index("ux_alert_rules_project_name", "project_id", "name", unique=True),
)

# The state of each (project, rule, label set) whose condition holds: pending until the
# rule's ``for`` elapsed, then firing (``notified_ts``: when last notified, for the
# cooldown); its row is deleted when it resolves. Kept in the store, not in a replica's
# memory, so whichever replica evaluates next carries on where the last one stopped.
alert_states = Table(
    "alert_states",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("project_id", String(64), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("labels", String(2048), nullable=False),  # canonical JSON of the label set
    Column("state", String(8), nullable=False),  # "pending" or "firing"
    Column("since_ts", Float, nullable=False),
    Column("notified_ts", Float),
    Column("value", Float),
    Column("updated_ts", Float, nullable=False),
    Index("ux_alert_states_project_rule_labels", "project_id", "rule", "labels", unique=True),
)

# Leases on background work only one replica may do at a time (alert evaluation): the
# row names the owner and when its lease ends; another replica takes it only after.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("expires_ts", Float, nullable=False),
)
