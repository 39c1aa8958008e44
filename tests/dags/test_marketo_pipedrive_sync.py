"""marketo_pipedrive_sync end to end: real Airflow (dag.test), both emulators over HTTP, the
staging database on SQLite. One change on each side crosses over; the next run writes nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from sandbox.testing import start_sandbox
from tests.airflow_support import airflow_db, run_dag, task_states, xcom  # noqa: F401 - fixture

DAG_ID = "marketo_pipedrive_sync"
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    with start_sandbox(["marketo", "pipedrive"], tmp_dir=tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@dataclass
class World:
    mk: Any
    pd: Any
    staging_url: str

    def writes(self) -> dict[str, int]:
        mk = sum(n for route, n in self.mk.calls()["by_route"].items() if route.startswith("POST /rest"))
        pd = sum(
            n
            for route, n in self.pd.calls()["by_route"].items()
            if route.split(" ")[0] in {"POST", "PATCH", "DELETE"} and "/_sandbox" not in route
        )
        return {"marketo": mk, "pipedrive": pd}

    def run(self, **conf: Any) -> tuple[Any, dict[str, Any]]:
        # The window ends just after now, so it holds the changes the test just made.
        dag_run = run_dag(DAG_ID, logical_date=datetime.now(UTC) + timedelta(seconds=2), conf=conf)
        return dag_run, xcom(dag_run, "report") or {}

    def lead(self, lead_id: int) -> dict[str, Any]:
        return next(lead for lead in self.mk.state(leads=1)["leads"] if lead["id"] == lead_id)

    def persons(self) -> list[dict[str, Any]]:
        return [p for p in self.pd.state(entity="persons") if not p.get("is_deleted")]

    def log(self, run_id: str) -> dict[str, tuple[str, str | None]]:
        from crm_sync.sync.schema import sync_log
        from crm_sync.sync.staging import make_engine

        with make_engine(self.staging_url).connect() as conn:
            rows = conn.execute(
                sa.select(sync_log.c.key, sync_log.c.status, sync_log.c.error_code).where(
                    sync_log.c.run_id == run_id
                )
            )
            return {key: (status, code) for key, status, code in rows}


@pytest.fixture
def world(sandbox: Any, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> World:
    mk, pd = sandbox.admin("marketo"), sandbox.admin("pipedrive")
    mk.reset()
    pd.reset()
    pd.seed({"fields": {"persons": [{"name": "Inferred country", "field_type": "varchar"}]}})
    env = {
        **sandbox.conn_env(),
        "AIRFLOW_CONN_CRM_SYNC_STAGING": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": sqlite_url}}
        ),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return World(mk, pd, sqlite_url)


def test_a_change_on_each_side_crosses_over_and_the_next_run_writes_nothing(world: World) -> None:
    # Marketo: a lead created by a form (logged as New Lead). Pipedrive: a person added in the app.
    lead_id = world.mk.seed(
        {
            "leads": [
                {"email": "jo.doe@example.com", "firstName": "Jo", "lastName": "Doe", "title": "CTO",
                 "leadOwnerFirstName": "Sandbox", "leadOwnerLastName": "Admin", "toDelete": False}
            ],
            "log_activities": True,
        }
    )["leads"][0]  # fmt: skip
    world.pd.action(
        "ui_change",
        {"entity": "persons", "action": "create",
         "changes": {"name": "Ann Lee", "emails": [{"value": "ann.lee@example.com", "primary": True}]}},
    )  # fmt: skip

    dag_run, report = world.run()
    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    persons = {p["name"]: p for p in world.persons()}
    assert set(persons) == {"Jo Doe", "Ann Lee"}
    assert world.lead(lead_id)["pipedriveId"] == persons["Jo Doe"]["id"]
    leads = {lead["email"]: lead for lead in world.mk.state(leads=1)["leads"]}
    assert leads["ann.lee@example.com"]["pipedriveId"] == persons["Ann Lee"]["id"]
    assert report["by_status"].get("success", 0) >= 2

    world.mk.reset_calls()
    world.pd.reset_calls()
    dag_run, report = world.run()
    assert set(task_states(dag_run).values()) == {"success"}
    assert world.writes() == {"marketo": 0, "pipedrive": 0}  # no echo: nothing travels back
    logged = world.log(dag_run.run_id)
    # Each record the first run wrote came back as a change and was recognised as our own.
    assert logged[f"lead:{lead_id}"] == ("skipped", "ECHO")
    assert logged[f"person:{persons['Jo Doe']['id']}"] == ("skipped", "ECHO")
    assert logged[f"person:{persons['Ann Lee']['id']}"] == ("skipped", "ECHO")


def test_a_manual_delete_of_a_person_marks_its_lead(world: World) -> None:
    lead_id = world.mk.seed({"leads": [{"email": "x@example.com", "toDelete": False, "pipedriveId": 5}]})[
        "leads"
    ][0]
    dag_run, _ = world.run(entity="person", entity_id=5, action="delete")
    assert set(task_states(dag_run).values()) == {"success"}
    assert world.lead(lead_id)["toDelete"] is True


def test_a_manual_follow_up_activity_is_created_once(world: World) -> None:
    person_id = world.pd.seed({"persons": [{"name": "Jo Doe"}]})["persons"][0]
    lead_id = world.mk.seed(
        {"leads": [{"email": "jo@example.com", "firstName": "Jo", "lastName": "Doe", "pipedriveId": person_id,
                    "leadOwnerFirstName": "Sandbox", "leadOwnerLastName": "Admin"}]}
    )["leads"][0]  # fmt: skip
    for _ in range(2):  # the same trigger twice (a retry of the original's queue): one activity
        dag_run, _report = world.run(entity="lead", entity_id=lead_id, action="activity")
        assert set(task_states(dag_run).values()) == {"success"}
    [activity] = world.pd.state(entity="activities")
    assert (activity["subject"], activity["person_id"]) == ("Follow up with Jo Doe", person_id)


def test_the_demo_part(world: World, sandbox: Any, tmp_path: Any) -> None:
    from demo import marketo_pipedrive

    assert marketo_pipedrive.SERVICES == ["marketo", "pipedrive"]
    rows, note = marketo_pipedrive.run(sandbox, tmp_path)
    first, second, third = rows
    assert first.created >= 2  # a person (and its organization) and a lead
    assert second.updated == 1  # the title reached the lead
    assert (third.created, third.updated, third.rejected) == (0, 0, 0)
    assert third.skipped >= 2  # the echoes
    assert "echo" in note
    assert (
        next(lead for lead in world.mk.state(leads=1)["leads"] if lead["email"] == "ann.lee@example.com")[
            "title"
        ]
        == "CFO"
    )


def test_the_dashboards_retry_re_sends_only_the_selected_records(world: World) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from crm_sync.dashboard import airflow_meta
    from crm_sync.dashboard.registry import dag_id_for
    from crm_sync.dashboard.retry import RetryRequest, retry_records
    from crm_sync.sync.staging import make_engine
    from tests.dashboard.conftest import parse_dag_into_db

    ids = {}
    for name, email in (("Ann Lee", "ann@example.com"), ("Bo Li", "bo@example.com")):
        changes = {"name": name, "emails": [{"value": email, "primary": True}]}
        ids[name] = world.pd.action(
            "ui_change", {"entity": "persons", "action": "create", "changes": changes}
        )["id"]
    dag_run, _ = world.run()
    assert set(task_states(dag_run).values()) == {"success"}
    for name, new in (("Ann Lee", "Ann Lea"), ("Bo Li", "Bo Lee")):
        world.pd.action(
            "ui_change", {"entity": "persons", "action": "change", "id": ids[name], "changes": {"name": new}}
        )

    # "Retry these" in the dashboard: the DAG declares `keys`, so a run is queued with them.
    engine = make_engine(world.staging_url)
    parse_dag_into_db(DAG_ID)
    key = f"person:{ids['Ann Lee']}"
    queued = retry_records(
        engine,
        RetryRequest.build("marketo_pipedrive", [key]),
        dag_id=dag_id_for(engine, "marketo_pipedrive"),
        user_name="ursula",
        dag_params=airflow_meta.dag_params,
        trigger=airflow_meta.trigger,
    )
    with create_session() as session:
        conf = session.query(DagRun).filter_by(dag_id=DAG_ID, run_id=queued["dag_run_id"]).one().conf
    assert conf == {"keys": [key]}

    world.mk.reset_calls()
    world.pd.reset_calls()
    dag_run, _report = world.run(**conf)  # what the scheduler runs for the queued conf
    assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
    assert world.log(dag_run.run_id) == {key: ("success", None)}
    leads = {lead["email"]: lead for lead in world.mk.state(leads=1)["leads"]}
    assert (leads["ann@example.com"]["lastName"], leads["bo@example.com"]["lastName"]) == ("Lea", "Li")
    assert world.writes() == {"marketo": 1, "pipedrive": 0}
