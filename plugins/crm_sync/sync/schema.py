"""The staging database schema, created and migrated idempotently on any SQLAlchemy dialect.

Types are chosen to be portable across SQLite, PostgreSQL and SQL Server:

- Key columns are bounded strings so they can sit in primary keys. SQL Server caps a
  clustered index key at 900 bytes, and ``Unicode`` becomes ``NVARCHAR`` (2 bytes a
  character), so ``staged_record``'s key (run_id 200 + integration 64 + entity 64 + key 200
  as NVARCHAR) stays at 728 bytes.
- Payloads and JSON documents are ``UnicodeText`` (``NVARCHAR(max)`` on SQL Server).
- Timestamps are ``DateTime(timezone=True)`` and always written in UTC.
- Surrogate ids use ``BigInteger`` autoincrement, which becomes ``INTEGER PRIMARY KEY`` on
  SQLite, ``BIGSERIAL`` on PostgreSQL and ``IDENTITY`` on SQL Server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from crm_sync.exceptions import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "SCHEMA_VERSION",
    "WRITE_TRANSACTION",
    "action_audit",
    "begin_write",
    "ensure_schema",
    "file_import",
    "metadata",
    "outbox",
    "quarantine",
    "quota_usage",
    "schema_version",
    "snapshot_record",
    "staged_diff",
    "staged_record",
    "sync_log",
    "sync_run",
    "sync_state",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3
"""Bump when a table or index changes; ensure_schema() adds what an older database lacks."""

RUN_ID = 200
NAME = 64
KEY = 200
HASH = 64
TARGET_ID = 255
CODE = 100
OP_KEY = 128

metadata = sa.MetaData()

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # only INTEGER PRIMARY KEY autoincrements


def _ts(name: str, *, nullable: bool = True) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _bool(name: str) -> sa.Column[bool]:
    return sa.Column(name, sa.Boolean(create_constraint=False), nullable=False, default=False)


staged_record = sa.Table(
    "staged_record",
    metadata,
    sa.Column("run_id", sa.String(RUN_ID), primary_key=True),
    sa.Column("integration", sa.String(NAME), primary_key=True),
    sa.Column("entity", sa.String(NAME), primary_key=True),
    sa.Column("key", sa.Unicode(KEY), primary_key=True),
    sa.Column("payload", sa.UnicodeText, nullable=True),  # NULL for inferred deletes
    sa.Column("row_hash", sa.String(HASH), nullable=True),
    # NULL until diffed; after a diff (see staged_diff) NULL means unchanged, so the diff
    # writes only the rows that change instead of rewriting the whole run's staging.
    sa.Column("action", sa.String(16), nullable=True),
)
# Indexes only the rows the diff marked (a few percent): the push reads them in key order
# and the diff counts them without scanning the run's staging. Costs nothing while staging.
_marked = staged_record.c.action.is_not(None)
sa.Index(
    "ix_staged_record_marked",
    staged_record.c.run_id,
    staged_record.c.integration,
    staged_record.c.entity,
    staged_record.c.key,
    sqlite_where=_marked,
    postgresql_where=_marked,
    mssql_where=_marked,
)

# One row per diffed run and entity: the diff's counts, and proof that it ran.
staged_diff = sa.Table(
    "staged_diff",
    metadata,
    sa.Column("run_id", sa.String(RUN_ID), primary_key=True),
    sa.Column("integration", sa.String(NAME), primary_key=True),
    sa.Column("entity", sa.String(NAME), primary_key=True),
    sa.Column("against", sa.String(16), nullable=False),
    sa.Column("creates", sa.BigInteger, nullable=False),
    sa.Column("updates", sa.BigInteger, nullable=False),
    sa.Column("deletes", sa.BigInteger, nullable=False),
    sa.Column("unchanged", sa.BigInteger, nullable=False),
    sa.Column("skipped", sa.BigInteger, nullable=False),
    _ts("diffed_at", nullable=False),
)

sync_state = sa.Table(
    "sync_state",
    metadata,
    sa.Column("integration", sa.String(NAME), primary_key=True),
    sa.Column("entity", sa.String(NAME), primary_key=True),
    sa.Column("key", sa.Unicode(KEY), primary_key=True),
    sa.Column("row_hash", sa.String(HASH), nullable=True),
    sa.Column("target_id", sa.String(TARGET_ID), nullable=True),
    _ts("synced_at"),
    sa.Column("run_id", sa.String(RUN_ID), nullable=True),
)

snapshot_record = sa.Table(
    "snapshot_record",
    metadata,
    sa.Column("run_id", sa.String(RUN_ID), primary_key=True),
    sa.Column("integration", sa.String(NAME), primary_key=True),
    sa.Column("entity", sa.String(NAME), primary_key=True),
    sa.Column("key", sa.Unicode(KEY), primary_key=True),
    sa.Column("row_hash", sa.String(HASH), nullable=True),
    sa.Column("target_id", sa.String(TARGET_ID), nullable=True),
)

sync_log = sa.Table(
    "sync_log",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(RUN_ID), nullable=False),
    sa.Column("integration", sa.String(NAME), nullable=False),
    sa.Column("entity", sa.String(NAME), nullable=False),
    sa.Column("key", sa.Unicode(KEY), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("target_id", sa.String(TARGET_ID), nullable=True),
    sa.Column("error_code", sa.String(CODE), nullable=True),
    sa.Column("message", sa.UnicodeText, nullable=True),
    sa.Column("field", sa.Unicode(255), nullable=True),
    _ts("logged_at", nullable=False),
    sa.Index("ix_sync_log_integration_key", "integration", "key"),
    sa.Index("ix_sync_log_integration_run", "integration", "run_id"),
)

sync_run = sa.Table(
    "sync_run",
    metadata,
    sa.Column("integration", sa.String(NAME), primary_key=True),
    sa.Column("run_id", sa.String(RUN_ID), primary_key=True),
    sa.Column("dag_id", sa.String(250), nullable=True),
    _ts("started_at"),
    _ts("finished_at"),
    sa.Column("state", sa.String(32), nullable=False),
    _bool("dry_run"),
    _bool("full_refresh"),
    sa.Column("counts", sa.UnicodeText, nullable=True),
    sa.Column("api_calls", sa.UnicodeText, nullable=True),
    sa.Column("budget_left", sa.UnicodeText, nullable=True),
    sa.Column("error", sa.UnicodeText, nullable=True),
    sa.Index("ix_sync_run_integration_started", "integration", "started_at"),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(RUN_ID), nullable=False),
    sa.Column("integration", sa.String(NAME), nullable=False),
    sa.Column("entity", sa.String(NAME), nullable=False),
    sa.Column("key", sa.Unicode(KEY), nullable=True),
    sa.Column("field", sa.Unicode(255), nullable=True),
    sa.Column("code", sa.String(CODE), nullable=False),
    sa.Column("message", sa.UnicodeText, nullable=False),
    _ts("quarantined_at", nullable=False),
    sa.Index("ix_quarantine_integration_run", "integration", "run_id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("integration", sa.String(NAME), primary_key=True),
    sa.Column("op_key", sa.String(OP_KEY), primary_key=True),
    sa.Column("entity", sa.String(NAME), nullable=False),
    sa.Column("record_key", sa.Unicode(KEY), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("target_id", sa.String(TARGET_ID), nullable=True),
    sa.Column("run_id", sa.String(RUN_ID), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("error", sa.String(CODE), nullable=True),
    _ts("created_at", nullable=False),
    _ts("updated_at", nullable=False),
    sa.Index("ix_outbox_integration_state", "integration", "state"),
)

quota_usage = sa.Table(
    "quota_usage",
    metadata,
    sa.Column("api", sa.String(NAME), primary_key=True),
    sa.Column("window", sa.String(16), primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("used", sa.BigInteger, nullable=False, default=0),
    sa.Column("limit", sa.BigInteger, nullable=True),
)

file_import = sa.Table(
    "file_import",
    metadata,
    # One row per (file, version): a file replaced under the same key has a new ETag and
    # is imported again.
    sa.Column("integration", sa.String(NAME), primary_key=True),
    sa.Column("file_key", sa.Unicode(KEY), primary_key=True),
    sa.Column("etag", sa.String(HASH), primary_key=True),
    sa.Column("org", sa.Unicode(255), nullable=True),
    sa.Column("size_bytes", sa.BigInteger, nullable=True),
    _ts("last_modified"),
    # discovered -> importing -> imported | failed (an import with rows lacking an outcome
    # stays "importing" and is resumed by the next run).
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("requested_by", sa.Unicode(255), nullable=True),
    sa.Column("run_id", sa.String(RUN_ID), nullable=True),
    _ts("started_at"),
    _ts("finished_at"),
    sa.Column("rows_total", sa.Integer, nullable=True),
    sa.Column("rows_kept", sa.Integer, nullable=True),
    sa.Column("rows_ok", sa.Integer, nullable=True),
    sa.Column("rows_rejected", sa.Integer, nullable=True),
    sa.Column("error", sa.UnicodeText, nullable=True),
    # v3: the import's id (gpconnect): row keys and outbox op keys derive from it, so a
    # resumed import finds its own rows and a reprocess of the same version starts afresh.
    sa.Column("import_id", sa.String(HASH), nullable=True),
    sa.Index("ix_file_import_integration_status", "integration", "status"),
)

action_audit = sa.Table(
    "action_audit",
    metadata,
    # Who asked for what from the UI or an API (e.g. "retry these rejected records").
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    _ts("at", nullable=False),
    sa.Column("username", sa.Unicode(255), nullable=False),
    sa.Column("action", sa.String(CODE), nullable=False),
    sa.Column("integration", sa.String(NAME), nullable=True),
    sa.Column("dag_run_id", sa.String(RUN_ID), nullable=True),
    sa.Column("detail", sa.UnicodeText, nullable=True),
)

schema_version = sa.Table(
    "crm_sync_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    _ts("applied_at", nullable=False),
)

WRITE_TRANSACTION = "crm_sync_write"
"""Execution option asking the SQLite listener (staging.make_engine) for BEGIN IMMEDIATE."""


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """Open a transaction that will write, committed on success and rolled back on error.

    On SQLite (engines from ``staging.make_engine``) it starts with ``BEGIN IMMEDIATE``:
    taking the write lock up front makes concurrent writers queue on ``busy_timeout``
    instead of failing with "database is locked" when a read lock cannot be upgraded.
    Elsewhere it is a plain transaction.
    """
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_TRANSACTION: True})
        with conn.begin():
            yield conn


# A constant lock id for pg_advisory_xact_lock: "crm_sync" in ASCII.
_PG_LOCK_ID = 0x63726D5F73796E63
_ATTEMPTS = 5


def ensure_schema(engine: Engine) -> int:
    """Create missing tables, indexes and nullable columns; record the schema version.

    Safe to run twice and from several processes at once: the work happens in one
    transaction under a database lock where the dialect has one (PostgreSQL advisory lock,
    SQL Server applock; SQLite serialises writers itself), and a process that loses a race
    anyway retries and then finds everything in place.

    Returns:
        The schema version now in the database.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with begin_write(engine) as conn:
                return _ensure(conn)
        except DBAPIError as exc:
            # Another process created the same object between our check and our DDL.
            if attempt == _ATTEMPTS:
                raise
            log.info("schema setup raced with another process (%s); retrying", type(exc.orig).__name__)
    raise AssertionError("unreachable")  # pragma: no cover


def _ensure(conn: Connection) -> int:
    _lock(conn)
    current = _current_version(conn)
    if current is not None and current >= SCHEMA_VERSION:
        return current
    metadata.create_all(conn, checkfirst=True)
    _add_missing_indexes_and_columns(conn)
    conn.execute(schema_version.insert().values(version=SCHEMA_VERSION, applied_at=datetime.now(UTC)))
    log.info("staging schema at version %d (was %s)", SCHEMA_VERSION, current)
    return SCHEMA_VERSION


def _lock(conn: Connection) -> None:
    name = conn.dialect.name
    if name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
    elif name == "mssql":
        conn.execute(
            sa.text(
                "EXEC sp_getapplock @Resource = 'crm_sync_schema', @LockMode = 'Exclusive', "
                "@LockOwner = 'Transaction', @LockTimeout = 60000"
            )
        )


def _current_version(conn: Connection) -> int | None:
    if not sa.inspect(conn).has_table(schema_version.name):
        return None
    return conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()


def _add_missing_indexes_and_columns(conn: Connection) -> None:
    """Bring tables created by an older version up to date (additive migrations only)."""
    inspector = sa.inspect(conn)
    preparer = conn.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        existing_columns = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in existing_columns:
                continue
            if not column.nullable:
                raise ConfigurationError(
                    f"staging table {table.name!r} lacks required column {column.name!r}; "
                    "it cannot be added automatically: migrate it by hand"
                )
            column_type = column.type.compile(dialect=conn.dialect)
            conn.execute(
                sa.text(
                    f"ALTER TABLE {preparer.format_table(table)} "
                    f"ADD {preparer.format_column(column)} {column_type}"
                )
            )
            log.info("added column %s.%s", table.name, column.name)
        existing_indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in existing_indexes:
                index.create(conn)
                log.info("added index %s", index.name)
