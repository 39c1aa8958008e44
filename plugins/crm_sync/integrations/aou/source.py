"""The AOU participant source: its SQL files, schema creation, streaming extracts, readiness.

The SQL lives in ``include/sql/aou/<dialect>/``: ``mssql`` (T-SQL, production's dm_aou) and
``portable`` (one text for SQLite and PostgreSQL: the demo and the tests). Each dialect has:

* ``schema.sql``: the source tables ``healthpro`` and ``redcap`` (idempotent DDL);
* ``vw_reporting_base.sql``, ``aou_contact_source.sql``, ``aou_journey_source.sql``: views that
  apply every row rule and name columns as Salesforce does;
* ``contacts.sql``, ``journeys.sql``: the extracts, filtered to one paired organisation with
  the Contact's AccountId, both bound parameters from :class:`AouConfig`;
* ``readiness.sql``: the row-count gate.

The filter and the AccountId are bound parameters of the extract queries rather than rows
of a config table joined in the views: the source database stays read-only for the sync,
two runs with different Params cannot race on shared state, and the values a run used are
the run's own Params.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from functools import cache
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa

from crm_sync.exceptions import ConfigurationError
from crm_sync.integrations.aou.config import AouConfig
from crm_sync.integrations.aou.transforms import CONTACT_FIELDS, JOURNEY_FIELDS

__all__ = [
    "CONTACT_SOURCE_COLUMNS",
    "DIALECTS",
    "JOURNEY_SOURCE_COLUMNS",
    "VIEWS",
    "WITHDRAWN_COLUMN",
    "create_source_schema",
    "extract_contacts",
    "extract_journeys",
    "load_sql",
    "readiness_count",
    "split_statements",
    "sql_dialect",
    "sql_dir",
]

DIALECTS: Final = ("mssql", "portable")
VIEWS: Final = ("vw_reporting_base", "aou_contact_source", "aou_journey_source")
"""Source views in creation order (each reads the ones before it)."""

WITHDRAWN_COLUMN: Final = "withdrawn"
"""Extra contact column (1/0), not a Salesforce field: the DAG skips withdrawn participants' updates."""

CONTACT_SOURCE_COLUMNS: Final = (*CONTACT_FIELDS, WITHDRAWN_COLUMN)
JOURNEY_SOURCE_COLUMNS: Final = JOURNEY_FIELDS

_KEY: Final = "HP_PMI_ID__c"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_GO = re.compile(r"^\s*GO\s*$", re.IGNORECASE | re.MULTILINE)
_STATEMENT_END = re.compile(r";[ \t]*(?:\n|\Z)")
# SQL Server refuses more than 2100 parameters in one request.
_IN_LIST_CHUNK: Final = 1000
_PORTABLE_ENGINES: Final = frozenset({"sqlite", "postgresql"})


@cache
def sql_dir() -> Path:
    """Return ``include/sql/aou`` of the repository this module belongs to.

    Raises:
        ConfigurationError: no parent directory of this file holds ``include/sql/aou``.
    """
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "include" / "sql" / "aou"
        if candidate.is_dir():
            return candidate
    raise ConfigurationError(f"include/sql/aou not found above {Path(__file__).resolve().parent}")


def sql_dialect(engine: sa.engine.Engine | sa.engine.Connection) -> str:
    """Return the SQL dialect directory for an engine: ``mssql`` or ``portable``.

    Raises:
        ConfigurationError: the database is neither SQL Server, SQLite nor PostgreSQL.
    """
    name = engine.dialect.name
    if name == "mssql":
        return "mssql"
    if name in _PORTABLE_ENGINES:
        return "portable"
    raise ConfigurationError(f"the AOU source supports SQL Server, SQLite and PostgreSQL, not {name}")


def load_sql(dialect: str, name: str) -> str:
    """Return the text of ``include/sql/aou/<dialect>/<name>.sql``.

    Raises:
        ConfigurationError: unknown dialect, malformed name, or no such file.
    """
    if dialect not in DIALECTS:
        raise ConfigurationError(f"unknown AOU SQL dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    if not _NAME.match(name):
        raise ConfigurationError(f"malformed AOU SQL file name {name!r}")
    path = sql_dir() / dialect / f"{name}.sql"
    if not path.is_file():
        raise ConfigurationError(f"AOU SQL file {dialect}/{name}.sql not found")
    return path.read_text(encoding="utf-8")


def split_statements(sql: str, dialect: str) -> list[str]:
    """Split a SQL file into statements: T-SQL on ``GO`` lines, portable SQL on line-ending ``;``.

    Chunks holding only comments are dropped.
    """
    chunks = _GO.split(sql) if dialect == "mssql" else _STATEMENT_END.split(sql)
    return [chunk.strip() for chunk in chunks if _strip_comments(chunk).strip()]


def create_source_schema(engine: sa.engine.Engine) -> None:
    """Create the source tables (if missing) and (re)create the source views, in one transaction."""
    dialect = sql_dialect(engine)
    with engine.begin() as conn:
        for statement in split_statements(load_sql(dialect, "schema"), dialect):
            conn.execute(sa.text(statement))
        if dialect == "portable":
            # Neither SQLite nor PostgreSQL has one "create or replace" both accept.
            for view in reversed(VIEWS):
                conn.exec_driver_sql(f"DROP VIEW IF EXISTS {view}")
        for view in VIEWS:
            for statement in split_statements(load_sql(dialect, view), dialect):
                # text(), not exec_driver_sql: it escapes '%' for pyformat drivers (psycopg).
                conn.execute(sa.text(statement))


def extract_contacts(
    engine: sa.engine.Engine,
    *,
    config: AouConfig | None = None,
    pmi_ids: Collection[str] | None = None,
    limit: int | None = None,
    chunk_size: int = 5000,
) -> Iterator[dict[str, Any]]:
    """Stream the Contact rows of the configured paired organisation, ordered by PMI ID.

    Each row has :data:`CONTACT_SOURCE_COLUMNS`: Salesforce Contact fields (``AccountId``
    from the config) plus ``withdrawn``.

    Args:
        engine: the source database.
        config: paired organisation and AccountId; the seed's defaults when omitted.
        pmi_ids: only these participants (bound, in chunks); an empty collection yields nothing.
        limit: at most this many rows.
        chunk_size: rows fetched per round trip (server-side cursor where the driver has one).
    """
    config = config or AouConfig()
    params = {"paired_organization": config.paired_organization, "account_id": config.account_id}
    yield from _extract(engine, "contacts", CONTACT_SOURCE_COLUMNS, params, pmi_ids, limit, chunk_size)


def extract_journeys(
    engine: sa.engine.Engine,
    *,
    config: AouConfig | None = None,
    pmi_ids: Collection[str] | None = None,
    limit: int | None = None,
    chunk_size: int = 5000,
) -> Iterator[dict[str, Any]]:
    """Stream the journey (Opportunity) rows of the configured paired organisation, by PMI ID.

    Each row has :data:`JOURNEY_SOURCE_COLUMNS`. Arguments as :func:`extract_contacts`.
    """
    config = config or AouConfig()
    params = {"paired_organization": config.paired_organization}
    yield from _extract(engine, "journeys", JOURNEY_SOURCE_COLUMNS, params, pmi_ids, limit, chunk_size)


def readiness_count(engine: sa.engine.Engine, *, day: date | None = None) -> int:
    """Return how many participants a load made on or after ``day`` holds (default: today, UTC).

    The DAG compares it with ``AouConfig.readiness_threshold``: the load is ready when the
    count is above the threshold (the seed waited while it was at or below 100).
    """
    day = day or datetime.now(UTC).date()
    start = datetime.combine(day, time.min)
    statement = sa.text(_strip_comments(load_sql(sql_dialect(engine), "readiness"))).bindparams(
        sa.bindparam("load_start", start, type_=sa.DateTime()),
    )
    with engine.connect() as conn:
        return int(conn.execute(statement).scalar_one())


def _extract(
    engine: sa.engine.Engine,
    query: str,
    columns: Sequence[str],
    params: Mapping[str, str],
    pmi_ids: Collection[str] | None,
    limit: int | None,
    chunk_size: int,
) -> Iterator[dict[str, Any]]:
    if limit is not None and limit < 0:
        raise ValueError("limit must be >= 0")
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    text = sa.text(_strip_comments(load_sql(sql_dialect(engine), query)).rstrip().rstrip(";"))
    source = text.bindparams(**params).columns(*(sa.column(name) for name in columns)).subquery("src")
    key = source.c[_KEY]
    ordered = sa.select(*source.c).order_by(key)
    if pmi_ids is None:
        batches: list[list[str] | None] = [None]
    else:
        wanted = sorted(set(pmi_ids))
        batches = [wanted[i : i + _IN_LIST_CHUNK] for i in range(0, len(wanted), _IN_LIST_CHUNK)]
    remaining = limit
    with engine.connect() as conn:
        streaming = conn.execution_options(yield_per=chunk_size)
        for batch in batches:
            if remaining == 0:
                return
            statement = ordered
            if batch is not None:
                statement = statement.where(key.in_(sa.bindparam("pmi_ids", batch, expanding=True)))
            if remaining is not None:
                statement = statement.limit(remaining)
            for row in streaming.execute(statement).mappings():
                yield dict(row)
                if remaining is not None:
                    remaining -= 1


def _strip_comments(sql: str) -> str:
    # Whole-line comments only: a named parameter inside a comment would still be bound.
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
