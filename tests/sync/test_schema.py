from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from crm_sync.sync.schema import SCHEMA_VERSION, ensure_schema, metadata, schema_version, sync_run
from crm_sync.sync.staging import make_engine

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"

TABLES = {
    "staged_record",
    "staged_diff",
    "sync_state",
    "snapshot_record",
    "sync_log",
    "sync_run",
    "file_import",
    "action_audit",
    "quarantine",
    "outbox",
    "quota_usage",
    "crm_sync_schema_version",
}


def _versions(engine: sa.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(schema_version.c.version)).scalars())


def test_make_engine_creates_every_table_and_index(staging_url):
    engine = make_engine(staging_url)
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) >= TABLES
    indexes = {index["name"] for index in inspector.get_indexes("sync_log")}
    assert {"ix_sync_log_integration_key", "ix_sync_log_integration_run"} <= indexes
    assert _versions(engine) == [SCHEMA_VERSION]


def test_ensure_schema_twice_is_a_no_op(staging_url):
    engine = make_engine(staging_url)
    before = sa.inspect(engine).get_table_names()
    assert ensure_schema(engine) == SCHEMA_VERSION
    assert ensure_schema(engine) == SCHEMA_VERSION
    assert sa.inspect(engine).get_table_names() == before
    assert _versions(engine) == [SCHEMA_VERSION]


def test_two_processes_creating_the_schema_at_once(staging_url):
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(PLUGINS)!r})
        from crm_sync.sync.staging import make_engine
        make_engine(sys.argv[1])
        """
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, staging_url], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = [worker.communicate(timeout=120)[1] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], errors
    engine = make_engine(staging_url)
    assert set(sa.inspect(engine).get_table_names()) >= TABLES
    assert _versions(engine) == [SCHEMA_VERSION]


def test_an_older_schema_gains_missing_columns_and_indexes(staging_url):
    raw = sa.create_engine(staging_url.replace("postgresql://", "postgresql+psycopg://"))
    old = sa.MetaData()
    sa.Table(  # sync_log as an older release might have left it: no "field", no indexes
        "sync_log",
        old,
        sa.Column("id", sa.Integer, primary_key=True),
        *(sa.Column(name, sa.String(64)) for name in ("run_id", "integration", "entity", "key")),
        sa.Column("action", sa.String(16)),
        sa.Column("status", sa.String(16)),
        sa.Column("target_id", sa.String(255)),
        sa.Column("error_code", sa.String(100)),
        sa.Column("message", sa.Text),
        sa.Column("logged_at", sa.DateTime(timezone=True)),
    )
    old.create_all(raw)
    raw.dispose()

    engine = make_engine(staging_url)
    inspector = sa.inspect(engine)
    assert "field" in {column["name"] for column in inspector.get_columns("sync_log")}
    assert {"ix_sync_log_integration_key", "ix_sync_log_integration_run"} <= {
        index["name"] for index in inspector.get_indexes("sync_log")
    }


def test_ddl_compiles_for_sql_server_with_reserved_words_quoted():
    # As on first connect to SQL Server 2012+: UnicodeText becomes NVARCHAR(max), not NTEXT.
    dialect = mssql.dialect(deprecate_large_types=True)
    ddl = {table.name: str(CreateTable(table).compile(dialect=dialect)) for table in metadata.sorted_tables}
    assert set(ddl) == TABLES
    # KEY is reserved in T-SQL (WINDOW and LIMIT are not, so SQLAlchemy leaves them bare).
    assert "[key] NVARCHAR(200) NOT NULL" in ddl["staged_record"]
    assert "IDENTITY" in ddl["sync_log"]
    assert "IDENTITY" in ddl["quarantine"]
    assert "DATETIMEOFFSET" in ddl["sync_state"]
    assert "NVARCHAR(max)" in ddl["staged_record"]
    indexes = [
        str(CreateIndex(index).compile(dialect=dialect)) for index in metadata.tables["staged_record"].indexes
    ]
    assert ["WHERE action IS NOT NULL" in text for text in indexes] == [True]


@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect()], ids=["postgresql", "sqlite"])
def test_ddl_compiles_for_the_other_dialects(dialect):
    text = str(CreateTable(sync_run).compile(dialect=dialect))
    assert "PRIMARY KEY (integration, run_id)" in text
    assert "dry_run BOOLEAN NOT NULL" in text
    quota = str(CreateTable(metadata.tables["quota_usage"]).compile(dialect=dialect))
    assert '"limit" BIGINT' in quota  # reserved in both
