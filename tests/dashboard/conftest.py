"""Fixtures for the dashboard: Airflow's own API app (which mounts our plugin) and a ledger.

The app is ``airflow.api_fastapi.app.create_app("core")``: Airflow's plugin loader reads
plugins/crm_sync_plugin.py and mounts the dashboard at /crm-sync, and tokens come from the
SimpleAuthManager's ``POST /auth/token``, as in production. The ledger is written with the
engine's own functions (start_run, apply_outcomes, finish_run, Outbox, QuotaBudget, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_support import airflow_db  # noqa: F401 - fixture

PASSWORDS = {"admin": "admin-pw", "ursula": "user-pw", "vera": "viewer-pw"}
USERS = "admin:admin,ursula:user,vera:viewer"
AOU = "aou_salesforce_sync"
MC = "mobile_commons_salesforce_optins"
RUN_1 = "scheduled__2026-11-20T06:00:00+00:00"
RUN_2 = "scheduled__2026-11-21T06:00:00+00:00"


@dataclass
class Api:
    """A TestClient on Airflow's API app and the way to log in to it."""

    client: Any
    mode: str

    def token(self, user: str = "admin") -> str:
        if self.mode == "all_admins":
            response = self.client.get("/auth/token")
        else:
            response = self.client.post("/auth/token", json={"username": user, "password": PASSWORDS[user]})
        assert response.status_code == 201, response.text
        return response.json()["access_token"]

    def headers(self, user: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}


def _build_app(tmp: Path, mode: str) -> Any:
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from fastapi.testclient import TestClient

    passwords = tmp / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = USERS
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords)
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = str(mode == "all_admins")
    purge_cached_app()
    return TestClient(create_app(apps="core"))


_AUTH_ENV = (
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS",
)


def _serve(tmp: Path, mode: str) -> Iterator[Api]:
    saved = {key: os.environ.get(key) for key in _AUTH_ENV}
    client = _build_app(tmp, mode)
    try:
        with client:
            yield Api(client=client, mode=mode)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module", params=["login", "all_admins"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Airflow's API with the plugin mounted: logins on (SimpleAuthManager), or off (all admins)."""
    request.getfixturevalue("airflow_db")
    yield from _serve(tmp_path_factory.mktemp("auth"), request.param)


@pytest.fixture(scope="module")
def login_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Airflow's API with logins on: users admin (admin), ursula (user) and vera (viewer)."""
    request.getfixturevalue("airflow_db")
    yield from _serve(tmp_path_factory.mktemp("auth"), "login")


def use_staging(monkeypatch: pytest.MonkeyPatch, url: str) -> Any:
    """Point connection crm_sync_staging at ``url`` and return its engine."""
    from crm_sync.sync.staging import make_engine

    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM_SYNC_STAGING",
        json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": url}}),
    )
    return make_engine(url)


def _at(engine: Any, table: Any, run_id: str, when: datetime, column: str, **where: Any) -> None:
    """Move the timestamps of one run's rows (the ledger stamps now(); trends need history)."""
    from crm_sync.sync.schema import begin_write

    with begin_write(engine) as conn:
        conn.execute(
            table.update()
            .where(table.c.run_id == run_id, *[table.c[k] == v for k, v in where.items()])
            .values({column: when})
        )


def seed_ledger(engine: Any) -> dict[str, Any]:
    """Two aou runs (the second with rejections), a Mobile Commons run, quota, outbox, a file import."""
    from crm_sync.sync.ledger import apply_outcomes, finish_run, start_run
    from crm_sync.sync.outbox import Outbox
    from crm_sync.sync.quarantine import quarantine_rejections
    from crm_sync.sync.quota import QuotaBudget
    from crm_sync.sync.records import Action, Outcome, Status
    from crm_sync.sync.schema import begin_write, file_import, sync_log, sync_run

    now = datetime.now(UTC)
    day1, day2 = now - timedelta(days=2), now - timedelta(days=1)

    start_run(engine, integration=AOU, run_id=RUN_1, dag_id=AOU, dry_run=False, full_refresh=False)
    apply_outcomes(
        engine,
        run_id=RUN_1,
        integration=AOU,
        entity="contact",
        outcomes=[
            Outcome(f"P{n:03d}", Action.CREATE, Status.SUCCESS, target_id=f"003X{n:03d}") for n in range(10)
        ],
    )
    finish_run(
        engine,
        integration=AOU,
        run_id=RUN_1,
        state="success",
        api_calls={"salesforce": 4},
        budget_left={"salesforce": 4996},
    )

    start_run(engine, integration=AOU, run_id=RUN_2, dag_id=AOU, dry_run=False, full_refresh=False)
    outcomes = [
        Outcome(f"P{n:03d}", Action.UPDATE, Status.SUCCESS, target_id=f"003X{n:03d}") for n in range(3)
    ]
    outcomes += [
        Outcome(
            "P010",
            Action.CREATE,
            Status.REJECTED,
            error_code="INVALID_EMAIL_ADDRESS",
            message="Email: invalid email address: ann.smith@example.org",
            field="Email",
        ),
        Outcome(
            "P011",
            Action.CREATE,
            Status.REJECTED,
            error_code="INVALID_EMAIL_ADDRESS",
            message="Email: invalid email address: bob@example.org",
            field="Email",
        ),
        Outcome(
            "P012",
            Action.CREATE,
            Status.REJECTED,
            error_code="UNABLE_TO_LOCK_ROW",
            message="unable to obtain exclusive access to this record",
        ),
        Outcome(
            "P013", Action.CREATE, Status.PARKED, error_code="QUOTA_EXHAUSTED", message="daily budget spent"
        ),
        Outcome("P014", Action.UPDATE, Status.SKIPPED, error_code="WITHDRAWN"),
    ]
    apply_outcomes(engine, run_id=RUN_2, integration=AOU, entity="contact", outcomes=outcomes)
    from crm_sync.exceptions import RecordRejected

    quarantine_rejections(
        engine,
        run_id=RUN_2,
        integration=AOU,
        entity="contact",
        problems=[RecordRejected("P015", "MISSING_FIELD", "LastName is required", field="LastName")],
    )
    box = Outbox(engine, AOU)
    box.claim(Outbox.op_key("contact", "P016"), entity="contact", record_key="P016", run_id=RUN_2)
    budget = QuotaBudget(engine, "salesforce", daily_limit=5000)
    budget.spend(7)
    finish_run(
        engine,
        integration=AOU,
        run_id=RUN_2,
        state="success",
        api_calls={"salesforce": 7},
        budget_left={"salesforce": 4993},
    )

    mc_run = "scheduled__2026-11-21T00:05:00+00:00"
    start_run(engine, integration=MC, run_id=mc_run, dag_id=MC, dry_run=False, full_refresh=False)
    apply_outcomes(
        engine,
        run_id=mc_run,
        integration=MC,
        entity="optin",
        outcomes=[
            Outcome("+27820000001", Action.UPDATE, Status.SUCCESS, error_code="opted_in"),
            Outcome("+27820000002", Action.UPDATE, Status.SUCCESS, error_code="opted_in"),
            Outcome(
                "+27820000003",
                Action.UPDATE,
                Status.REJECTED,
                error_code="invalid_number",
                message="Phone +27 82 000 0003 is not a mobile number",
            ),
        ],
    )
    finish_run(
        engine,
        integration=MC,
        run_id=mc_run,
        state="failed",
        api_calls={"mobile_commons": 3},
        budget_left={"mobile_commons": None},
        error="failed tasks: push_optins",
    )

    with begin_write(engine) as conn:
        conn.execute(
            file_import.insert().values(
                integration="gpconnect_rapidpro_import",
                file_key="gpconnect/2026-11-21/clinic-a.xlsx",
                etag="e1",
                org="Clinic A",
                status="imported",
                requested_by="ops@example.org",
                run_id="manual__2026-11-21T09:00:00+00:00",
                started_at=day2,
                finished_at=day2,
                rows_total=120,
                rows_kept=118,
                rows_ok=115,
                rows_rejected=3,
            )
        )
    _at(engine, sync_run, RUN_1, day1, "started_at")
    _at(engine, sync_run, RUN_1, day1 + timedelta(minutes=3), "finished_at")
    _at(engine, sync_log, RUN_1, day1, "logged_at")
    _at(engine, sync_run, RUN_2, day2, "started_at")
    _at(engine, sync_run, RUN_2, day2 + timedelta(minutes=2), "finished_at")
    _at(engine, sync_log, RUN_2, day2, "logged_at")
    return {"day1": day1, "day2": day2, "mc_run": mc_run}


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch, staging_url: str) -> Any:
    """A seeded ledger on SQLite and on PostgreSQL; the app reads it through crm_sync_staging."""
    engine = use_staging(monkeypatch, staging_url)
    return engine, seed_ledger(engine)


def parse_dag_into_db(dag_id: str) -> None:
    """Write one DAG file's DAG to the metadata DB, as the dag-processor does (no run)."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    from tests.conftest import ROOT

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    bundle = manager.get_bundle("dags-folder")
    bundle.initialize()
    bag = BundleDagBag(
        dag_folder=str(ROOT / "dags" / f"{dag_id}.py"), bundle_path=bundle.path, bundle_name=bundle.name
    )
    assert dag_id in bag.dags, bag.import_errors
    with create_session() as session:
        sync_bag_to_db(bag, bundle.name, None, session=session)


@pytest.fixture
def sqlite_ledger(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> Any:
    """A seeded ledger on SQLite only (for tests about auth, not about the database)."""
    engine = use_staging(monkeypatch, sqlite_url)
    return engine, seed_ledger(engine)
