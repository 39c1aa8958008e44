"""gpconnect_rapidpro_import end to end: real Airflow (dag.test), S3 on moto's server, the RapidPro
and WhatsApp emulators over HTTP, and the staging database on SQLite (and PostgreSQL once)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sandbox.testing import start_sandbox
from tests.airflow_support import airflow_db, run_dag, task_states, xcom  # noqa: F401 - fixture

DAG_ID = "gpconnect_rapidpro_import"
NEW_FLOW = "6b0c8f0e-5b1a-4c1e-9a0d-000000000001"
UPDATE_FLOW = "6b0c8f0e-5b1a-4c1e-9a0d-000000000002"
HOUR = datetime(2026, 11, 25, 9, tzinfo=UTC)
ROWS = 60
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    with start_sandbox(["s3", "rapidpro", "whatsapp"], tmp_dir=tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@dataclass
class World:
    sandbox: Any
    tmp: Path
    staging_url: str
    runs: int = 0

    @property
    def rapidpro(self) -> Any:
        return self.sandbox.admin("rapidpro")

    def upload(self, name: str, rows: list[dict[str, Any]], **kwargs: Any) -> str:
        from crm_sync.integrations.gpconnect.generator import write_xlsx
        from sandbox.s3 import BUCKET, s3_client

        path = write_xlsx(self.tmp / name, rows, **kwargs)
        key = f"uploads/{name}"
        s3_client(self.sandbox.url("s3")).upload_file(str(path), BUCKET, key)
        return key

    def run(self, **conf: Any) -> tuple[Any, dict[str, Any]]:
        self.runs += 1
        dag_run = run_dag(DAG_ID, logical_date=HOUR + timedelta(hours=self.runs), conf=conf)
        return dag_run, xcom(dag_run, "report") or {}

    def api_calls(self) -> dict[str, int]:
        """RapidPro API calls since the last reset_calls (admin calls left out)."""
        return {r: n for r, n in self.rapidpro.calls()["by_route"].items() if "/api/" in r}

    def state(self, what: str) -> list[dict[str, Any]]:
        return self.rapidpro.state(**{what: ""})[what]

    def starts_by_flow(self) -> Counter[str]:
        return Counter(start["flow"]["uuid"] for start in self.state("flow_starts"))

    def contacts_per_start(self, flow: str) -> Counter[str]:
        return Counter(
            c["uuid"] for s in self.state("flow_starts") if s["flow"]["uuid"] == flow for c in s["contacts"]
        )

    def staging(self) -> sa.engine.Engine:
        from crm_sync.sync.staging import make_engine

        return make_engine(self.staging_url)

    def imports(self) -> list[dict[str, Any]]:
        with self.staging().connect() as conn:
            return [
                dict(r)
                for r in conn.execute(sa.text("SELECT * FROM file_import ORDER BY started_at")).mappings()
            ]


def _world(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staging_url: str) -> World:
    from crm_sync.integrations.gpconnect.generator import rapidpro_seed
    from sandbox.s3 import BUCKET, s3_client

    sandbox.admin("s3").reset()
    client = s3_client(sandbox.url("s3"))
    assert client.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    for name in ("rapidpro", "whatsapp"):
        sandbox.admin(name).reset()
        sandbox.admin(name).clear_faults()
    sandbox.admin("rapidpro").seed(rapidpro_seed(NEW_FLOW, UPDATE_FLOW))
    env = {
        **sandbox.conn_env(),
        "AIRFLOW_CONN_CRM_SYNC_STAGING": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": staging_url}}
        ),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AIRFLOW_VAR_GPCONNECT_RAPIDPRO_IMPORT_CONFIG", raising=False)
    return World(sandbox=sandbox, tmp=tmp_path, staging_url=staging_url)


@pytest.fixture
def world(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> World:
    return _world(sandbox, tmp_path, monkeypatch, sqlite_url)


@pytest.fixture
def pg_world(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> World:
    return _world(sandbox, tmp_path, monkeypatch, pg_url)


def _positive(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if str(r["patients_tested_positive"]) == "1"]


def _assert_new_file_imported(world: World) -> tuple[list[dict[str, Any]], str]:
    from crm_sync.integrations.gpconnect.generator import patient_rows

    rows = patient_rows(ROWS, seed=3)
    key = world.upload("report-1.xlsx", rows)
    dag_run, summary = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    kept = _positive(rows)
    contacts = world.state("contacts")
    assert len(contacts) == len(kept)
    # Every contact was started once on new_contact, and the flow saved the row into its fields.
    assert set(world.contacts_per_start(NEW_FLOW).values()) == {1}
    assert sum(world.contacts_per_start(NEW_FLOW).values()) == len(kept)
    assert world.starts_by_flow()[UPDATE_FLOW] == 0
    sample = next(c for c in contacts if c["fields"].get("facility"))
    assert sample["fields"]["has_whatsapp"] in {"true", "false"}
    assert all(any(u.startswith("tel:+27") for u in c["urns"]) for c in contacts)
    # WhatsApp numbers (the emulator: even last digit) got a whatsapp: URN too.
    assert any(any(u.startswith("whatsapp:") for u in c["urns"]) for c in contacts)
    [record] = world.imports()
    assert record["file_key"] == key
    assert record["status"] == "imported"
    assert record["requested_by"] == "manual" or record["requested_by"]
    assert (record["rows_total"], record["rows_kept"], record["rows_ok"], record["rows_rejected"]) == (
        ROWS,
        len(kept),
        len(kept),
        0,
    )
    assert summary["outcomes"]["create"]["success"] == len(kept)
    return rows, key


def test_new_file_then_same_file_again_then_a_changed_file(world: World):
    from crm_sync.integrations.gpconnect.generator import mutate_rows

    rows, _key = _assert_new_file_imported(world)

    # The same file again: nothing to import, nothing written.
    world.rapidpro.reset_calls()
    dag_run, _summary = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert xcom(dag_run, "discover_files")["files"] == []
    assert world.api_calls() == {}

    # A second file where some rows changed: contact_update for exactly those rows.
    changed_rows, changed = mutate_rows(rows, fraction=0.2, seed=4)
    world.upload("report-2.xlsx", changed_rows)
    dag_run, summary = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    kept_changed = {i for i in changed if str(rows[i]["patients_tested_positive"]) == "1"}
    updated = world.contacts_per_start(UPDATE_FLOW)
    assert sum(updated.values()) == len(kept_changed) > 0
    assert set(updated.values()) == {1}
    assert summary["outcomes"]["update"]["success"] == len(kept_changed)
    assert summary["outcomes"]["unchanged"]["skipped"] == len(_positive(rows)) - len(kept_changed)
    # No contact was created twice.
    assert len(world.state("contacts")) == len(_positive(rows))
    assert [r["status"] for r in world.imports()] == ["imported", "imported"]


def test_first_import_on_postgresql_staging(pg_world: World):
    _assert_new_file_imported(pg_world)


def test_throttling_and_server_errors_are_retried(world: World):
    from crm_sync.integrations.gpconnect.generator import patient_rows

    rows = patient_rows(21, seed=5, positive_ratio=1.0)
    rows[3]["telephone_no"] = "12345"  # rejected on its own; the rest of the file goes through
    world.upload("report-1.xlsx", rows)
    world.rapidpro.faults(
        [
            {"method": "GET", "path": "/api/v2/contacts", "status": 503, "times": 2},
            {
                "method": "POST",
                "path": "/api/v2/flow_starts",
                "status": 429,
                "times": 2,
                "headers": {"Retry-After": "1"},
                "body": {"detail": "Request was throttled. Expected available in 1 second."},
            },
        ]
    )
    world.sandbox.admin("whatsapp").faults(
        [{"method": "POST", "path": "/v1/contacts", "status": 502, "times": 1}]
    )
    dag_run, summary = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert summary["outcomes"]["create"]["success"] == 20
    assert sum(world.contacts_per_start(NEW_FLOW).values()) == 20
    assert xcom(dag_run, "push_rows")["api_calls"]["total"] > 0
    [record] = world.imports()
    assert (record["status"], record["rows_ok"], record["rows_rejected"]) == ("imported", 20, 1)
    assert summary["rejected"] == 1
    with world.staging().connect() as conn:
        problem = conn.execute(sa.text("SELECT key, field, code, message FROM quarantine")).one()
    assert (problem.key, problem.field, problem.code) == (
        f"{record['import_id']}:0000005",
        "telephone_no",
        "INVALID_PHONE",
    )
    assert "12345" not in problem.message


def test_lost_flow_start_answers_are_resumed_without_a_duplicate_start(world: World):
    from crm_sync.integrations.gpconnect.generator import patient_rows

    rows = patient_rows(30, seed=6, positive_ratio=1.0)
    world.upload("report-1.xlsx", rows)
    # RapidPro starts the flows but the answers never arrive (the worker "crashed" after the call).
    world.rapidpro.faults(
        [{"method": "POST", "path": "/api/v2/flow_starts", "times": 3, "lost_response": True}]
    )
    dag_run, summary = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert summary["by_status"]["failed"] == 3
    [record] = world.imports()
    assert record["status"] == "importing", "rows without an outcome keep the file open"
    assert record["rows_ok"] == 27
    assert sum(world.contacts_per_start(NEW_FLOW).values()) == 30, "the lost starts did happen"

    # The next run resumes the file: the three starts are found, none is made again.
    dag_run, summary = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert xcom(dag_run, "discover_files")["files"][0]["resumed"] is True
    assert summary["outcomes"]["create"]["success"] == 3
    assert world.contacts_per_start(NEW_FLOW) == Counter({c["uuid"]: 1 for c in world.state("contacts")})
    assert world.imports()[0]["status"] == "imported"


def test_a_push_that_dies_midway_resumes_without_duplicates(world: World):
    from crm_sync.integrations.gpconnect.generator import patient_rows

    rows = patient_rows(24, seed=7, positive_ratio=1.0)
    world.upload("report-1.xlsx", rows)
    # The token is refused at the 10th flow start: the push task fails in the middle of its chunk.
    world.rapidpro.faults(
        [
            {"method": "POST", "path": "/api/v2/flow_starts", "times": 9, "latency_ms": 1},
            {
                "method": "POST",
                "path": "/api/v2/flow_starts",
                "times": 1,
                "status": 403,
                "body": {"detail": "Invalid token"},
            },
        ]
    )
    dag_run, _ = world.run()
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run)["push_rows"] == "failed"
    assert world.imports()[0]["status"] == "importing"
    assert sum(world.contacts_per_start(NEW_FLOW).values()) == 9

    dag_run, _summary = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert world.contacts_per_start(NEW_FLOW) == Counter({c["uuid"]: 1 for c in world.state("contacts")})
    assert len(world.state("contacts")) == 24
    assert world.imports()[0]["status"] == "imported"


def test_unknown_headers_fail_the_file_before_any_write(world: World):
    from crm_sync.integrations.gpconnect.generator import HEADERS, patient_rows

    rows = [{**r, "blood_type": "O"} for r in patient_rows(5, seed=8, positive_ratio=1.0)]
    world.upload("report-1.xlsx", rows, headers=(*HEADERS, "blood_type"))
    world.rapidpro.reset_calls()
    dag_run, _ = world.run()
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run)["finish_imports"] == "failed"
    [record] = world.imports()
    assert record["status"] == "failed"
    assert "UNKNOWN_HEADERS" in record["error"]
    assert "blood_type" in record["error"]
    assert world.state("contacts") == []
    by_route = world.rapidpro.calls()["by_route"]
    assert not [route for route in by_route if route.startswith("POST")], by_route


def test_a_missing_flow_fails_the_run_before_any_write(world: World):
    from crm_sync.integrations.gpconnect.generator import patient_rows

    world.upload("report-1.xlsx", patient_rows(5, seed=9, positive_ratio=1.0))
    other = "6b0c8f0e-5b1a-4c1e-9a0d-0000000000ff"
    dag_run, _ = world.run(config={"orgs": {"GP Connect": {"flows": {"contact_update": other}}}})
    assert str(dag_run.state) == "failed"
    assert task_states(dag_run)["discover_files"] == "failed"
    assert world.state("contacts") == []
    assert world.imports() == []


def test_file_key_reprocess_and_dry_run(world: World):
    from crm_sync.integrations.gpconnect.generator import patient_rows

    first = world.upload("a-report.xlsx", patient_rows(6, seed=10, positive_ratio=1.0))
    second = world.upload("b-report.xlsx", patient_rows(4, seed=11, positive_ratio=1.0, start=100))
    dag_run, summary = world.run(dry_run=True, file_key=second)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert world.state("contacts") == []
    assert world.imports() == []
    dag_run, _ = world.run(file_key=second)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert [(r["file_key"], r["status"]) for r in world.imports()] == [(second, "imported")]
    assert len(world.state("contacts")) == 4
    # Asking for it again does nothing; reprocess re-checks it (the contacts match: no start).
    dag_run, _ = world.run(file_key=second)
    assert xcom(dag_run, "discover_files")["files"] == []
    dag_run, summary = world.run(file_key=second, reprocess=True)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert summary["outcomes"]["unchanged"]["skipped"] == 4
    # The scheduled run then takes the other file.
    dag_run, _ = world.run()
    assert {r["file_key"]: r["status"] for r in world.imports()} == {first: "imported", second: "imported"}


def _ledger(world: World, run_id: str) -> dict[str, str]:
    with world.staging().connect() as conn:
        query = sa.text("SELECT key, status FROM sync_log WHERE run_id = :run AND entity = 'row'")
        return dict(conn.execute(query, {"run": run_id}).all())


def _quarantined(world: World, run_id: str) -> dict[str, str]:
    with world.staging().connect() as conn:
        query = sa.text("SELECT key, code FROM quarantine WHERE run_id = :run")
        return dict(conn.execute(query, {"run": run_id}).all())


def test_keys_reprocess_exactly_the_selected_rows_of_their_import(world: World):
    from crm_sync.integrations.gpconnect.generator import patient_rows

    rows = patient_rows(20, seed=12, positive_ratio=1.0)
    rows[3]["telephone_no"] = "12345"  # sheet row 5: rejected while reading
    world.upload("report-1.xlsx", rows)
    world.rapidpro.faults(
        [{"method": "POST", "path": "/api/v2/flow_starts", "times": 3, "lost_response": True}]
    )
    first, _ = world.run()
    assert str(first.state) == "success", task_states(first)
    [record] = world.imports()
    bad = f"{record['import_id']}:0000005"
    assert _quarantined(world, first.run_id) == {bad: "INVALID_PHONE"}
    lost = sorted(key for key, status in _ledger(world, first.run_id).items() if status == "failed")
    assert len(lost) == 3
    starts = world.contacts_per_start(NEW_FLOW)
    contacts = len(world.state("contacts"))
    world.rapidpro.reset_calls()

    selected = [lost[0], lost[1], bad]
    retry, _ = world.run(keys=selected)
    states = task_states(retry)
    # The bad phone is rejected again (the file did not change): 1 of 3 fails the report.
    assert states.pop("report") == "failed"
    assert set(states.values()) == {"success"}, states
    # Only the selected rows: the two lost starts are confirmed from the outbox, not made again;
    # the third lost row waits.
    assert _ledger(world, retry.run_id) == {lost[0]: "success", lost[1]: "success"}
    assert _quarantined(world, retry.run_id) == {bad: "INVALID_PHONE"}
    assert world.contacts_per_start(NEW_FLOW) == starts
    assert len(world.state("contacts")) == contacts
    assert "POST /api/v2/flow_starts" not in world.api_calls()
    assert xcom(retry, "push_rows")["outcomes"] == {"create:success": 2}
    # The import's counts take the retried rows in: one lost row is still open.
    [finished] = xcom(retry, "finish_imports")["files"]
    assert finished == {
        "file_key": record["file_key"],
        "status": "importing",
        "rows_total": record["rows_total"],
        "rows_kept": record["rows_kept"],
        "rows_ok": record["rows_kept"] - 2,
        "rows_rejected": 1,
        "rows_open": 1,
        "retried": True,
    }
    assert (world.imports()[0]["rows_ok"], world.imports()[0]["status"]) == (
        record["rows_kept"] - 2,
        "importing",
    )

    # The scheduled run resumes the import as before (re-reading the bad row too) and closes it.
    later, _ = world.run()
    assert task_states(later)["finish_imports"] == "success", task_states(later)
    assert world.imports()[0]["status"] == "imported"
    assert sum(world.contacts_per_start(NEW_FLOW).values()) == 19


def test_a_transient_failure_is_resent_by_a_retry_and_a_replaced_file_is_refused(
    world: World, capfd: pytest.CaptureFixture[str]
):
    from crm_sync.integrations.gpconnect.generator import patient_rows

    rows = patient_rows(6, seed=13, positive_ratio=1.0)
    key = world.upload("report-1.xlsx", rows)
    world.rapidpro.faults([{"method": "POST", "path": "/api/v2/flow_starts", "status": 503, "times": 5}])
    first, _ = world.run()
    ledger = _ledger(world, first.run_id)
    unsent = sorted(k for k, status in ledger.items() if status != "success")
    assert unsent
    assert {ledger[k] for k in unsent} == {"failed"}  # transient: retried by a later try
    started = sum(world.contacts_per_start(NEW_FLOW).values())
    retry, _ = world.run(keys=unsent[:1])
    assert str(retry.state) == "success", task_states(retry)
    assert _ledger(world, retry.run_id) == {unsent[0]: "success"}
    assert sum(world.contacts_per_start(NEW_FLOW).values()) == started + 1
    if len(unsent) > 1:  # the rest, by key too: the last open row closes the import
        world.run(keys=unsent[1:])
    assert world.imports()[0]["status"] == "imported"
    assert world.imports()[0]["rows_ok"] == 6

    world.upload("report-1.xlsx", patient_rows(6, seed=14, positive_ratio=1.0))  # the same key, new version
    refused, _ = world.run(keys=unsent[1:2] or unsent[:1])
    assert task_states(refused)["discover_files"] == "failed"
    assert f"{key} was replaced or removed since import" in capfd.readouterr().out
