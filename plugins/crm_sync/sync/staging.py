"""The staging database: engines from a SQLAlchemy URL, and staging a run's records in chunks."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.pool import StaticPool

from crm_sync.exceptions import RecordRejected
from crm_sync.sync.hashing import UnserialisableValue, encode
from crm_sync.sync.records import Record
from crm_sync.sync.schema import (
    KEY,
    WRITE_TRANSACTION,
    begin_write,
    ensure_schema,
    quarantine,
    snapshot_record,
    staged_diff,
    staged_record,
    sync_run,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from crm_sync.sync.progress import Progress

__all__ = [
    "MAX_ERRORS",
    "StageResult",
    "bulk_insert",
    "insert_first_wins",
    "is_integrity_error",
    "make_engine",
    "purge_staged",
    "stage_records",
]

log = logging.getLogger(__name__)

MAX_ERRORS = 100
"""How many rejections a StageResult carries; the rest are counted and in the quarantine table."""

# SQL Server accepts at most 2,100 bound parameters per statement.
IN_CHUNK = 1000

_engines: dict[tuple[int, str], Engine] = {}
_engines_lock = threading.Lock()


def make_engine(url: str | None = None) -> Engine:
    """Return the (cached) engine for a staging database, with the schema in place.

    Args:
        url: any SQLAlchemy URL. None means the SQLite file
            ``$AIRFLOW_HOME/crm_sync_staging.db`` (``AIRFLOW_HOME`` defaults to ``~/airflow``).
            ``postgresql://`` and ``postgres://`` use psycopg 3.
    """
    sa_url = _staging_url(url)
    cache_key = (os.getpid(), sa_url.render_as_string(hide_password=False))
    with _engines_lock:
        engine = _engines.get(cache_key)
        if engine is None:
            engine = _create_engine(sa_url)
            ensure_schema(engine)
            _engines[cache_key] = engine
        return engine


def _staging_url(url: str | None) -> sa.URL:
    if url is None:
        home = Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser()
        home.mkdir(parents=True, exist_ok=True)
        return sa.make_url(f"sqlite:///{home / 'crm_sync_staging.db'}")
    sa_url = sa.make_url(url)
    if sa_url.drivername in {"postgresql", "postgres"}:
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    return sa_url


def _create_engine(url: sa.URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url, pool_pre_ping=True)
    in_memory = url.database in {None, "", ":memory:"}
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        # One shared connection, or every thread would see its own empty in-memory database.
        **({"poolclass": StaticPool, "connect_args": {"check_same_thread": False}} if in_memory else {}),
    )
    _configure_sqlite(engine, wal=not in_memory)
    return engine


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so SQLAlchemy's BEGIN is real
        # (the SQLAlchemy "pysqlite serializable" recipe): DDL and SAVEPOINTs then behave.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Only takes effect when the file is created; staged rows are a few hundred bytes,
        # and 8 KiB pages made staging ~15% faster than the 4 KiB default in our benchmark.
        cursor.execute("PRAGMA page_size=8192")
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
            # Durable at each checkpoint; in WAL mode NORMAL cannot corrupt the database.
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB of page cache for the diff's joins
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_TRANSACTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@dataclass(frozen=True, slots=True)
class StageResult:
    """How many records were staged and rejected; ``errors`` holds the first rejections."""

    staged: int
    rejected: int
    errors: list[RecordRejected] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Scope:
    run_id: str
    integration: str
    entity: str


def stage_records(
    engine: Engine,
    *,
    run_id: str,
    integration: str,
    entity: str,
    records: Iterable[Mapping[str, Any] | Record],
    key_field: str | None = None,
    chunk_size: int = 5000,
    progress: Progress | None = None,
) -> StageResult:
    """Write this run's records for one entity to ``staged_record``, in chunks.

    Re-staging the same run and entity (a retried task) first clears what an earlier attempt
    staged, so the call is idempotent. Bad records do not stop the batch: they go to the
    ``quarantine`` table (no field values stored) with a code:

    - ``MISSING_KEY``: no value (missing, None or blank) in the key field;
    - ``INVALID_KEY``: a key that is not a string or an integer, or longer than the column;
    - ``DUPLICATE_KEY``: the key was already staged in this run (the first record wins);
    - ``UNSERIALISABLE``: a value has no canonical form (see ``hashing``); names the field.

    Args:
        engine: the staging engine.
        run_id: the Airflow run id.
        integration: the integration name (one DAG).
        entity: what the records are (``contact``, ``opportunity``).
        records: mappings (keyed by ``key_field``) or :class:`Record` objects; consumed once.
        key_field: the field holding the key of mapping records.
        chunk_size: records per transaction.
        progress: advanced by the number of records read after each chunk.

    Returns:
        Counts of staged and rejected records, with the first ``MAX_ERRORS`` rejections.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    scope = _Scope(run_id, integration, entity)
    _clear_run(engine, scope)
    staged = rejected = 0
    errors: list[RecordRejected] = []

    def commit(writer: _ChunkWriter, read: int) -> None:
        nonlocal staged, rejected
        written, problems = writer.flush()
        staged, rejected = staged + written, rejected + len(problems)
        errors.extend(problems[: MAX_ERRORS - len(errors)])
        if progress is not None and read:
            progress.advance(read)

    with _ChunkWriter(engine, scope, key_field) as writer:
        read = 0
        for position, record in enumerate(records, start=1):
            read += 1
            row = _plain_row(record, key_field, writer.rows)
            if row is None:
                try:
                    row = _prepare(record, key_field, position, writer.rows)
                except RecordRejected as exc:
                    writer.bad.append(exc)
            if row is not None:
                writer.add(row)
            if read >= chunk_size:  # counting bad records too keeps memory bounded
                commit(writer, read)
                read = 0
        commit(writer, read)
    log.info(
        "staged %d %s records for %s run %s (%d quarantined)", staged, entity, integration, run_id, rejected
    )
    return StageResult(staged=staged, rejected=rejected, errors=errors)


def _clear_run(engine: Engine, scope: _Scope) -> None:
    with begin_write(engine) as conn:
        for table in (staged_record, quarantine, staged_diff):
            conn.execute(
                table.delete().where(
                    table.c.run_id == scope.run_id,
                    table.c.integration == scope.integration,
                    table.c.entity == scope.entity,
                )
            )


_Row = tuple[str, str, str]  # key, payload, row_hash


def _plain_row(record: Any, key_field: str | None, chunk: Mapping[str, _Row]) -> _Row | None:
    """Return the staged row of a dict with a clean, new string key; None for anything else.

    The hot path of staging: :func:`_prepare` handles the rest, and says what is wrong.
    """
    key = record.get(key_field) if type(record) is dict else None
    if type(key) is not str or not 0 < len(key) <= KEY or key in chunk or key != key.strip():
        return None
    try:
        return (key, *encode(record))
    except UnserialisableValue:
        return None


def _prepare(
    record: Mapping[str, Any] | Record, key_field: str | None, position: int, chunk: Mapping[str, _Row]
) -> _Row:
    """Return the staged row of one record, or raise RecordRejected saying what is wrong."""
    key, payload = _key_and_payload(record, key_field, position)
    if key in chunk:
        raise RecordRejected(key, "DUPLICATE_KEY", "key already staged in this run", field=key_field)
    try:
        text, digest = encode(payload)
    except UnserialisableValue as exc:
        raise RecordRejected(key, "UNSERIALISABLE", exc.reason, field=exc.path) from None
    return key, text, digest


def _key_and_payload(
    record: Mapping[str, Any] | Record, key_field: str | None, position: int
) -> tuple[str, Mapping[str, Any]]:
    if isinstance(record, Record):
        raw, payload = record.key, record.payload
    else:
        if key_field is None:
            raise TypeError("stage_records needs key_field to stage mappings")
        raw, payload = record.get(key_field), record
    where = f"field {key_field!r}" if key_field else "Record.key"
    if isinstance(raw, str):
        key = raw.strip()
    elif isinstance(raw, int) and not isinstance(raw, bool):
        key = str(raw)
    elif raw is None:
        key = ""
    else:
        raise RecordRejected(
            None,
            "INVALID_KEY",
            f"record #{position}: {where} holds a {type(raw).__name__}; keys are strings or integers",
            field=key_field,
        )
    if not key:
        raise RecordRejected(None, "MISSING_KEY", f"record #{position}: no value in {where}", field=key_field)
    if len(key) > KEY:
        raise RecordRejected(
            None, "INVALID_KEY", f"record #{position}: key longer than {KEY} characters", field=key_field
        )
    return key, payload


class _ChunkWriter:
    """Collects one chunk of staged rows and writes it in one transaction.

    On PostgreSQL with psycopg 3 the rows stream into a COPY as they are prepared, so the
    server ingests them while Python hashes the next ones; the chunk commits at
    :meth:`flush`. Elsewhere :meth:`flush` inserts the chunk with executemany.
    """

    def __init__(self, engine: Engine, scope: _Scope, key_field: str | None) -> None:
        self.rows: dict[str, _Row] = {}
        self.bad: list[RecordRejected] = []
        self._engine = engine
        self._scope = scope
        self._key_field = key_field
        self._streams = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        self._copy: _CopyStream | None = None

    def __enter__(self) -> _ChunkWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._copy is not None:  # an error left a chunk half-written: roll it back
            self._copy.abort()
            self._copy = None

    def add(self, row: _Row) -> None:
        """Add one prepared row (its key is not yet in this chunk)."""
        self.rows[row[0]] = row
        if self._streams:
            if self._copy is None:
                self._copy = _CopyStream(
                    self._engine, (self._scope.run_id, self._scope.integration, self._scope.entity)
                )
            self._copy.write(row)

    def flush(self) -> tuple[int, list[RecordRejected]]:
        """Commit the chunk and its quarantine rows; returns (rows written, rejections)."""
        rows, problems, copy = self.rows, list(self.bad), self._copy
        self.rows, self.bad, self._copy = {}, [], None
        if copy is not None:
            try:
                copy.commit(lambda conn: _insert_quarantine(conn, self._scope, problems))
                return len(rows), problems
            except Exception as exc:  # the driver's own error, raised by COPY
                if not is_integrity_error(self._engine, exc):
                    raise
        elif not rows and not problems:
            return 0, []

        def quarantine_bad(conn: Connection, duplicate_keys: list[str]) -> None:
            problems.extend(
                RecordRejected(key, "DUPLICATE_KEY", "key already staged in this run", field=self._key_field)
                for key in duplicate_keys
            )
            _insert_quarantine(conn, self._scope, problems)

        skipped = insert_first_wins(
            self._engine,
            staged_record,
            {
                "run_id": self._scope.run_id,
                "integration": self._scope.integration,
                "entity": self._scope.entity,
            },
            ("payload", "row_hash"),
            rows,
            also=quarantine_bad,
            conflict_expected=copy is not None,
        )
        return len(rows) - len(skipped), problems


class _CopyStream:
    """A transaction with a COPY into staged_record open, fed row by row."""

    def __init__(self, engine: Engine, prefix: tuple[str, str, str]) -> None:
        self._prefix = prefix
        self._transaction = ExitStack()
        self._copying = ExitStack()
        try:
            self.conn = self._transaction.enter_context(engine.connect())
            self.conn.execution_options(**{WRITE_TRANSACTION: True})
            self._transaction.enter_context(self.conn.begin())
            cursor = self._copying.enter_context(self.conn.connection.driver_connection.cursor())
            self._copy = self._copying.enter_context(cursor.copy(_COPY_STAGED))
            # Binary COPY: no escaping pass over each payload (a third faster in our benchmark).
            self._copy.set_types(["text"] * 6)
        except BaseException:
            self.abort()
            raise

    def write(self, row: _Row) -> None:
        """Send one row to the server."""
        self._copy.write_row(self._prefix + row)

    def commit(self, also: Callable[[Connection], None]) -> None:
        """End the COPY, run ``also`` in the same transaction, commit."""
        try:
            self._copying.close()
            also(self.conn)
        except BaseException:
            self.abort()
            raise
        self._transaction.close()

    def abort(self) -> None:
        """Roll back and release the connection."""
        error = RuntimeError("staging chunk aborted")
        self._copying.__exit__(type(error), error, None)
        self._transaction.__exit__(type(error), error, None)


_COPY_STAGED = (
    'COPY staged_record (run_id, integration, entity, "key", payload, row_hash) FROM STDIN (FORMAT BINARY)'
)


def insert_first_wins(
    engine: Engine,
    table: sa.Table,
    scope: Mapping[str, str],
    columns: Sequence[str],
    rows: Mapping[str, Sequence[Any]],
    *,
    also: Callable[[Connection, list[str]], None] | None = None,
    conflict_expected: bool = False,
) -> list[str]:
    """Insert rows keyed by ``key`` under ``scope``, skipping keys already stored there.

    The fast path inserts the whole chunk at once; only when that hits the primary key
    (a key stored by an earlier chunk: rare) does it look the chunk's keys up and insert
    the rest, so memory stays bounded by one chunk.

    Args:
        engine: the staging engine.
        table: a table whose primary key is the ``scope`` columns plus ``key``.
        scope: the fixed primary-key columns and their values (run_id, integration, ...).
        columns: the other columns, in the order of each row's values after its key.
        rows: ``{key: (key, *values)}``.
        also: called in the same transaction with the skipped keys, to write more rows.
        conflict_expected: go straight to the careful path (a bulk insert already failed).

    Returns:
        The skipped keys (already stored: the first one wins).
    """
    prefix = tuple(scope.values())
    names = (*scope, "key", *columns)
    if not conflict_expected:
        try:
            with begin_write(engine) as conn:
                bulk_insert(conn, table, names, (prefix + tuple(row) for row in rows.values()))
                if also is not None:
                    also(conn, [])
            return []
        except Exception as exc:  # the fast paths raise the driver's own errors, not SQLAlchemy's
            if not is_integrity_error(engine, exc):
                raise
    with begin_write(engine) as conn:
        existing = _existing_keys(conn, table, scope, list(rows))
        fresh = (prefix + tuple(row) for key, row in rows.items() if key not in existing)
        bulk_insert(conn, table, names, fresh)
        skipped = [key for key in rows if key in existing]
        if also is not None:
            also(conn, skipped)
    return skipped


def is_integrity_error(engine: Engine, exc: BaseException) -> bool:
    """Tell whether ``exc`` is a constraint violation, wrapped by SQLAlchemy or raw from the driver."""
    if isinstance(exc, sa.exc.IntegrityError):
        return True
    return isinstance(exc, engine.dialect.loaded_dbapi.IntegrityError)


def _existing_keys(
    conn: Connection, table: sa.Table, scope: Mapping[str, str], keys: Sequence[str]
) -> set[str]:
    found: set[str] = set()
    query = sa.select(table.c.key).where(
        *(table.c[name] == value for name, value in scope.items()),
        table.c.key.in_(sa.bindparam("keys", expanding=True)),
    )
    for start in range(0, len(keys), IN_CHUNK):
        found.update(conn.execute(query, {"keys": list(keys[start : start + IN_CHUNK])}).scalars())
    return found


def _insert_quarantine(conn: Connection, scope: _Scope, problems: Sequence[RecordRejected]) -> None:
    if not problems:
        return
    now = datetime.now(UTC)
    conn.execute(
        quarantine.insert(),
        [
            {
                "run_id": scope.run_id,
                "integration": scope.integration,
                "entity": scope.entity,
                "key": problem.key,
                "field": problem.field,
                "code": problem.code,
                "message": problem.reason,
                "quarantined_at": now,
            }
            for problem in problems
        ],
    )


def bulk_insert(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Insert many rows fast: COPY on PostgreSQL (psycopg 3), executemany elsewhere.

    Runs inside the caller's transaction. Values must be strings, integers or None (NULL):
    the fast paths hand them to the driver as they are.

    Returns:
        The number of rows written.
    """
    dialect = conn.dialect
    if dialect.name == "postgresql" and dialect.driver == "psycopg":
        return _copy(conn.connection.driver_connection, table, columns, rows)
    if dialect.name == "sqlite":
        # The sqlite3 module's executemany streams the iterator without materialising it.
        quoted = ", ".join(dialect.identifier_preparer.quote(name) for name in columns)
        placeholders = ", ".join("?" * len(columns))
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.executemany(f"INSERT INTO {table.name} ({quoted}) VALUES ({placeholders})", rows)
            return max(cursor.rowcount, 0)
        finally:
            cursor.close()
    count = 0
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) >= IN_CHUNK:
            conn.execute(table.insert(), batch)
            count += len(batch)
            batch = []
    if batch:
        conn.execute(table.insert(), batch)
        count += len(batch)
    return count


def _copy(dbapi: Any, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    quoted = ", ".join(f'"{name}"' for name in columns)
    count = 0
    with dbapi.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def purge_staged(
    engine: Engine,
    *,
    integration: str,
    older_than_runs: int | None = None,
    before: datetime | None = None,
) -> int:
    """Delete staged and snapshot rows of old runs of one integration.

    Runs are dated by ``sync_run.started_at``; runs never recorded there are left alone.

    Args:
        engine: the staging engine.
        integration: whose runs to purge.
        older_than_runs: keep this many most recent runs, purge the older ones.
        before: purge runs started before this (timezone-aware) instant.

    Returns:
        The number of rows deleted.
    """
    if (older_than_runs is None) == (before is None):
        raise ValueError("pass exactly one of older_than_runs and before")
    runs = sa.select(sync_run.c.run_id, sync_run.c.started_at).where(sync_run.c.integration == integration)
    with begin_write(engine) as conn:
        if before is not None:
            if before.tzinfo is None:
                raise ValueError("before must be timezone-aware")
            victims = [run_id for run_id, started in conn.execute(runs) if started and _utc(started) < before]
        else:
            if older_than_runs is None or older_than_runs < 0:
                raise ValueError("older_than_runs must be zero or more")
            ordered = conn.execute(runs.order_by(sync_run.c.started_at.desc(), sync_run.c.run_id.desc()))
            victims = [run_id for run_id, _started in ordered][older_than_runs:]
        deleted = 0
        for start in range(0, len(victims), IN_CHUNK):
            chunk = victims[start : start + IN_CHUNK]
            for table in (staged_record, snapshot_record, staged_diff):
                deleted += conn.execute(
                    table.delete().where(table.c.integration == integration, table.c.run_id.in_(chunk))
                ).rowcount
    log.info("purged %d staged rows of %d old %s runs", deleted, len(victims), integration)
    return deleted


def _utc(value: datetime) -> datetime:
    # SQLite hands timestamps back naive; they were written in UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
