"""The T-SQL files are valid T-SQL and compute what the portable files compute.

There is no SQL Server here, so sqlglot stands in: every mssql file must parse as T-SQL
with no part left unparsed, and the views and queries, transpiled to SQLite, must return
the same rows as the portable files on the same generated data.
"""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from crm_sync.integrations.aou.config import AouConfig
from crm_sync.integrations.aou.generator import generate_source
from crm_sync.integrations.aou.source import VIEWS, load_sql, split_statements, sql_dir

DAY = date(2024, 5, 1)
MSSQL_FILES = sorted(path.stem for path in (sql_dir() / "mssql").glob("*.sql"))
PORTABLE_FILES = sorted(path.stem for path in (sql_dir() / "portable").glob("*.sql"))


def test_both_dialects_have_the_same_files():
    assert MSSQL_FILES == PORTABLE_FILES
    assert set(MSSQL_FILES) >= {*VIEWS, "schema", "contacts", "journeys", "readiness"}


@pytest.mark.parametrize("name", MSSQL_FILES)
def test_tsql_file_parses_completely(name):
    statements = split_statements(load_sql("mssql", name), "mssql")
    assert statements
    for statement in statements:
        for tree in sqlglot.parse(statement, read="tsql", error_level=sqlglot.ErrorLevel.RAISE):
            assert tree is not None
            # sqlglot falls back to an opaque Command for syntax it does not know.
            assert not list(tree.find_all(exp.Command)), statement[:80]


@pytest.mark.parametrize("name", VIEWS)
def test_tsql_views_are_create_or_alter_in_dbo(name):
    tree = sqlglot.parse_one(load_sql("mssql", name), read="tsql")
    assert isinstance(tree, exp.Create)
    assert tree.args.get("kind") == "VIEW"
    assert tree.this.db == "dbo"
    assert tree.this.name == name


def test_tsql_schema_creates_each_object_only_if_missing():
    blocks = split_statements(load_sql("mssql", "schema"), "mssql")
    for block in blocks:
        code = [line for line in block.splitlines() if not line.startswith("--")]
        assert code[0].startswith("IF "), code[0]
        assert code[1].startswith("CREATE "), code[1]


def _to_sqlite(tree: exp.Expression, prefix: str) -> str:
    """Transpile a T-SQL SELECT to SQLite, reading the prefixed copies of the views."""

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table):
            node.set("db", None)
            if node.name in VIEWS:
                node.set("this", exp.to_identifier(prefix + node.name))
        if isinstance(node, exp.Concat):
            # SQLite has CONCAT only from 3.44; every argument here is non-NULL, so || is equal.
            parts = node.expressions
            chained = parts[0]
            for part in parts[1:]:
                chained = exp.DPipe(this=chained, expression=part)
            return exp.paren(chained, copy=False)
        return node

    return tree.transform(rewrite).sql("sqlite")


@pytest.fixture(scope="module")
def transpiled_db(tmp_path_factory):
    """One SQLite database: generated data, portable views, and the transpiled T-SQL views."""
    engine = sa.create_engine(f"sqlite:///{tmp_path_factory.mktemp('tsql') / 'source.db'}")
    generate_source(engine, participants=1500, seed=11, day=DAY)
    with engine.begin() as conn:
        for view in VIEWS:
            select = sqlglot.parse_one(load_sql("mssql", view), read="tsql").expression
            conn.exec_driver_sql(f"CREATE VIEW tsql_{view} AS {_to_sqlite(select, 'tsql_')}")
    yield engine
    engine.dispose()


def _rows(engine, sql, **params):
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql), params)
        return result.keys(), [tuple(row) for row in result]


@pytest.mark.parametrize("view", VIEWS)
def test_transpiled_tsql_view_equals_portable_view(transpiled_db, view):
    order = '"PMI ID_HP"' if view == "vw_reporting_base" else '"HP_PMI_ID__c"'
    portable_keys, portable = _rows(transpiled_db, f"SELECT * FROM {view} ORDER BY {order}")
    tsql_keys, tsql = _rows(transpiled_db, f"SELECT * FROM tsql_{view} ORDER BY {order}")
    assert list(tsql_keys) == list(portable_keys)
    assert len(portable) > 1000
    assert tsql == portable


@pytest.mark.parametrize("query", ["contacts", "journeys"])
def test_transpiled_tsql_query_equals_portable_query(transpiled_db, query):
    config = AouConfig()
    params = {"paired_organization": config.paired_organization, "account_id": config.account_id}
    tsql = _to_sqlite(sqlglot.parse_one(load_sql("mssql", query), read="tsql"), "tsql_")
    tsql_keys, tsql_rows = _rows(transpiled_db, f"SELECT * FROM ({tsql}) ORDER BY 1", **params)
    keys, rows = _rows(transpiled_db, f"SELECT * FROM ({load_sql('portable', query)}) ORDER BY 1", **params)
    assert list(tsql_keys) == list(keys)
    assert sorted(tsql_rows) == sorted(rows)
    assert 1000 < len(rows) < 1500  # the paired-organisation filter took effect


def test_transpiled_tsql_readiness_equals_portable(transpiled_db):
    bounds = {"load_start": "2024-05-01 00:00:00.000000", "load_end": "2024-05-02 00:00:00.000000"}
    tsql = _to_sqlite(sqlglot.parse_one(load_sql("mssql", "readiness"), read="tsql"), "tsql_")
    assert (
        _rows(transpiled_db, tsql, **bounds)[1]
        == _rows(transpiled_db, load_sql("portable", "readiness"), **bounds)[1]
    )
    assert _rows(transpiled_db, tsql, **bounds)[1] == [(1500,)]


def test_tsql_uses_sql_server_date_style_23():
    # CONVERT(varchar(10), d, 23) is yyyy-mm-dd whatever the session language or DATEFORMAT.
    text = load_sql("mssql", "aou_journey_source")
    assert text.count(", 23)") == sum(1 for line in text.splitlines() if "Date__c" in line)
