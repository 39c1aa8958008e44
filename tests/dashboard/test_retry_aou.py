"""'Retry these' end to end: the aou DAG (dag.test) against the Salesforce emulator, the
dashboard's retry through Airflow's API app, and the run it queued re-sending exactly the
selected records."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sandbox.testing import start_sandbox
from tests.airflow_support import task_states, xcom
from tests.dags.test_aou_salesforce_sync import DAG_ID, DAY, _build_world, _expected_participants
from tests.dashboard.conftest import Api

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.slow, pytest.mark.sandbox]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    with start_sandbox(["salesforce"], tmp_dir=tmp_path_factory.mktemp("sandbox")) as running:
        yield running


def test_retry_these_resends_the_selected_records_and_nothing_else(
    sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str, login_api: Api
):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    world = _build_world(sandbox, tmp_path, monkeypatch, sqlite_url)
    expected = sorted(_expected_participants(world))
    victims = expected[:3]
    # Salesforce rejects three participants (a lock error that outlives the hook's retries).
    world.sf.config(lock_rows={"keys": victims, "times": 50})
    first, _ = world.run()
    assert str(first.state) == "success", task_states(first)
    world.sf.config(lock_rows=None)
    assert set(world.contacts_by_pmi()) == set(expected) - set(victims)

    headers = login_api.headers("ursula")
    listed = login_api.client.get(
        f"/crm-sync/api/rejected?integration={DAG_ID}&error_code=UNABLE_TO_LOCK_ROW", headers=headers
    ).json()
    assert sorted({r["key"] for r in listed["records"]}) == victims

    selected = victims[:2]
    response = login_api.client.post(
        "/crm-sync/api/retry", json={"integration": DAG_ID, "keys": selected}, headers=headers
    )
    assert response.status_code == 201, response.text
    with create_session() as session:
        queued = session.query(DagRun).filter_by(dag_id=DAG_ID, run_id=response.json()["dag_run_id"]).one()
        conf = dict(queued.conf)
    assert conf == {"keys": selected}

    # Execute the queued request (dag.test runs it in-process with the same conf).
    world.sf.reset_calls()
    retry, summary = world.run(DAY + timedelta(days=1), **conf)
    assert str(retry.state) == "success", task_states(retry)
    contacts = world.contacts_by_pmi()
    assert set(selected) <= set(contacts)
    assert victims[2] not in contacts, "an unselected rejected record was re-sent"
    assert xcom(retry, "push_contacts")["outcomes"] == {"create:success": len(selected)}
    with world.staging().connect() as conn:
        touched = set(
            conn.execute(
                sa.text("SELECT key FROM sync_log WHERE run_id = :run AND integration = :i"),
                {"run": retry.run_id, "i": DAG_ID},
            ).scalars()
        )
    assert touched == set(selected)
    # Each selected participant: one contact and one journey planned, nothing else.
    assert summary["planned"]["create"] == 2 * len(selected)
    assert summary["planned"]["update"] == 0
