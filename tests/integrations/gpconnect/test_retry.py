"""GP Connect retries without Airflow: row keys -> imports, orgs and file versions, on a real
staging database (the DAG's e2e tests run the whole retry)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from crm_sync.exceptions import ConfigurationError
from crm_sync.integrations.gpconnect.files import S3File, Selected, row_key
from crm_sync.integrations.gpconnect.retry import import_org, requested_rows, retry_selections
from crm_sync.operators.context import SyncRun
from crm_sync.sync.schema import begin_write, file_import
from crm_sync.sync.staging import make_engine
from tests.integrations.maxio_billing.test_rules import manual_run

INTEGRATION = "gpconnect_rapidpro_import"
A, B = "0123456789abcdef", "fedcba9876543210"


def _run(keys: Any) -> SyncRun:
    return manual_run(INTEGRATION, keys=keys)


@pytest.fixture
def engine(sqlite_url: str) -> Any:
    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    with begin_write(engine) as conn:
        for import_id, key, org in ((A, "uploads/a.xlsx", "GP Connect"), (B, "uploads/b.xlsx", "Clinic B")):
            conn.execute(
                file_import.insert().values(
                    integration=INTEGRATION,
                    file_key=key,
                    etag=f"etag-{import_id[:4]}",
                    import_id=import_id,
                    org=org,
                    status="imported",
                    started_at=now,
                )
            )
    return engine


def _listed(**etags: str) -> list[S3File]:
    return [
        S3File(key=f"uploads/{name}.xlsx", etag=etag, size=1, last_modified=None)
        for name, etag in etags.items()
    ]


def test_keys_group_by_import_and_a_malformed_key_is_named():
    keys = [row_key(A, 5), row_key(A, 12), row_key(B, 2)]
    assert requested_rows(_run(keys)) == {A: {keys[0], keys[1]}, B: {keys[2]}}
    assert requested_rows(_run([])) == {}
    with pytest.raises(
        ConfigurationError, match=r"Param 'keys': '0123456789abcdef:12' is not a GP Connect row key"
    ):
        requested_rows(_run([row_key(A, 5), f"{A}:12"]))


def test_the_import_org_and_file_version_come_from_file_import(engine: Any):
    rows = requested_rows(_run([row_key(A, 5)]))
    assert import_org(engine, INTEGRATION, rows) == "GP Connect"
    chosen = retry_selections(engine, INTEGRATION, rows, _listed(a="etag-0123", b="etag-fedc"))
    assert chosen == [Selected("uploads/a.xlsx", "etag-0123", A, resumed=True)]


def test_a_replaced_file_an_unknown_import_and_several_orgs_are_refused(engine: Any):
    rows = requested_rows(_run([row_key(A, 5)]))
    with pytest.raises(
        ConfigurationError, match=r"0000005: uploads/a.xlsx was replaced or removed since import"
    ):
        retry_selections(engine, INTEGRATION, rows, _listed(a="a-new-etag"))
    unknown = requested_rows(_run([row_key("00000000000000ff", 3)]))
    with pytest.raises(
        ConfigurationError, match=r"no import of this integration for 00000000000000ff:0000003"
    ):
        import_org(engine, INTEGRATION, unknown)
    both = requested_rows(_run([row_key(A, 5), row_key(B, 2)]))
    with pytest.raises(ConfigurationError, match=r"rows of several orgs \(Clinic B, GP Connect\)"):
        import_org(engine, INTEGRATION, both)
