"""The Pipedrive webhook receiver through Airflow's own API app (plugin loaded by Airflow).

Deliveries are refused without the ``pipedrive_webhook`` credentials, and a good one queues a
run of marketo_pipedrive_sync with ``{entity, entity_id, action}``; a duplicate of a still
queued run is dropped. The last test has the Pipedrive emulator deliver a real webhook over
HTTP to the receiver served by uvicorn, then runs the queued conf with ``dag.test()``.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.airflow_support import run_dag, task_states
from tests.dashboard.conftest import Api, parse_dag_into_db

DAG_ID = "marketo_pipedrive_sync"
URL = "/crm-sync-webhooks/pipedrive/events"
USER, PASSWORD = "pipedrive", "s3cret-hook-pw"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def event(entity: str = "person", entity_id: int = 42, action: str = "change", **meta: Any) -> dict:
    data = None if action == "delete" else {"id": entity_id, "name": "Jo Doe"}
    return {
        "meta": {
            "action": action,
            "entity": entity,
            "entity_id": str(entity_id),
            "id": str(uuid.uuid4()),
            "version": "2.0",
            "change_source": "app",
            "timestamp": "2026-11-25T10:00:00.000Z",
            **meta,
        },
        "data": data,
        "previous": {"id": entity_id} if action == "delete" else None,
    }


def runs() -> list[tuple[str, dict, str]]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(DagRun).filter(DagRun.dag_id == DAG_ID).order_by(DagRun.id).all()
        return [(r.run_id, dict(r.conf or {}), str(r.state)) for r in rows]


@pytest.fixture
def receiver(login_api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    """The app with connection pipedrive_webhook set and no runs of the DAG yet."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    monkeypatch.setenv(
        "AIRFLOW_CONN_PIPEDRIVE_WEBHOOK",
        json.dumps({"conn_type": "http", "login": USER, "password": PASSWORD}),
    )
    parse_dag_into_db(DAG_ID)
    with create_session() as session:
        session.query(DagRun).filter(DagRun.dag_id == DAG_ID).delete()
    return login_api


def test_bad_or_missing_credentials_are_refused_and_nothing_is_triggered(
    receiver: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    post = receiver.client.post
    for headers in (
        {},
        basic(USER, "wrong"),
        basic("someone", PASSWORD),
        {"Authorization": f"Bearer {PASSWORD}"},
        {"Authorization": "Basic !!not-base64"},
    ):
        answer = post(URL, json=event(), headers=headers)
        assert answer.status_code == 401, headers
        assert answer.json() == {"detail": "Unauthorized"}  # nothing about which part was wrong
        assert answer.headers["www-authenticate"].startswith("Basic")
    # Credentials are checked before the payload: a bad payload without them is a 401 too.
    assert post(URL, content=b"not json", headers=basic(USER, "wrong")).status_code == 401
    # Without the connection every delivery is refused.
    monkeypatch.delenv("AIRFLOW_CONN_PIPEDRIVE_WEBHOOK")
    assert post(URL, json=event(), headers=basic(USER, PASSWORD)).status_code == 401
    # The receiver takes POST only; Airflow's own login does not open it either.
    assert receiver.client.get(URL, headers=basic(USER, PASSWORD)).status_code == 405
    assert post(URL, json=event(), headers=receiver.headers()).status_code == 401
    assert runs() == []


def test_a_payload_that_is_not_webhooks_v2_is_refused(receiver: Api) -> None:
    good = basic(USER, PASSWORD)
    v1 = {"meta": {"action": "updated", "object": "person", "id": 42, "v": 1}, "current": {"id": 42}}
    for body in (v1, event(version="1.0"), event(action="merged"), event(entity_id="x"), [1, 2]):
        answer = receiver.client.post(URL, json=body, headers=good)
        assert answer.status_code == 400, body
    assert receiver.client.post(URL, content=b"{not json", headers=good).status_code == 400
    assert runs() == []


def test_a_good_delivery_queues_one_run_and_a_pending_duplicate_is_dropped(receiver: Api) -> None:
    good = basic(USER, PASSWORD)
    first = receiver.client.post(URL, json=event(entity_id=42), headers=good)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "queued"
    [(run_id, conf, state)] = runs()
    assert (run_id, conf, state) == (first.json()["run_id"], {"entity": "person", "entity_id": 42,
                                                              "action": "sync"}, "queued")  # fmt: skip

    # Another change of the same person while that run is still queued: the run will read it.
    again = receiver.client.post(URL, json=event(entity_id=42, action="create"), headers=good)
    assert (again.status_code, again.json()["status"], again.json()["run_id"]) == (200, "duplicate", run_id)
    assert len(runs()) == 1

    # A delete is a different task, and so is another record; activities are not synced.
    delete = receiver.client.post(URL, json=event(entity_id=42, action="delete"), headers=good)
    deal = receiver.client.post(URL, json=event(entity="deal", entity_id=7), headers=good)
    ignored = receiver.client.post(URL, json=event(entity="activity", entity_id=3), headers=good)
    org_delete = receiver.client.post(URL, json=event(entity="organization", action="delete"), headers=good)
    assert (delete.status_code, deal.status_code) == (201, 201)
    assert (ignored.json()["status"], org_delete.json()["status"]) == ("ignored", "ignored")
    assert [conf for _, conf, _ in runs()] == [
        {"entity": "person", "entity_id": 42, "action": "sync"},
        {"entity": "person", "entity_id": 42, "action": "delete"},
        {"entity": "deal", "entity_id": 7, "action": "sync"},
    ]

    # Once the run is no longer queued (it started), a new change queues a new run.
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState

    with create_session() as session:
        session.query(DagRun).filter(DagRun.run_id == run_id).update({"state": DagRunState.RUNNING})
    later = receiver.client.post(URL, json=event(entity_id=42), headers=good)
    assert later.status_code == 201
    assert len(runs()) == 4


@pytest.mark.slow
def test_the_emulator_delivers_a_webhook_whose_run_syncs_the_person(
    receiver: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Any, sqlite_url: str
) -> None:
    from crm_sync.hooks.pipedrive import PipedriveHook
    from sandbox.servers import UvicornThread, bind_loopback
    from sandbox.testing import start_sandbox

    server = UvicornThread(receiver.client.app, bind_loopback(0), ssl_files=None).start()
    try:
        with start_sandbox(["marketo", "pipedrive"], tmp_dir=tmp_path) as sandbox:
            env = {
                **sandbox.conn_env(),
                "AIRFLOW_CONN_CRM_SYNC_STAGING": json.dumps(
                    {"conn_type": "generic", "extra": {"sqlalchemy_url": sqlite_url}}
                ),
            }
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            mk, pd = sandbox.admin("marketo"), sandbox.admin("pipedrive")
            pd.seed({"fields": {"persons": [{"name": "Inferred country", "field_type": "varchar"}]}})
            # Registered as an operator would (README): the receiver's URL and the connection's pair.
            PipedriveHook().create_webhook(
                f"http://127.0.0.1:{server.port}{URL}",
                event_object="person",
                http_auth_user=USER,
                http_auth_password=PASSWORD,
                name="crm_sync",
            )
            email = {"value": "ann.lee@example.com", "primary": True}
            pd.action(
                "ui_change",
                {"entity": "persons", "action": "create", "changes": {"name": "Ann Lee", "emails": [email]}},
            )
            pd.action("webhooks/flush")
            [delivery] = pd.state(deliveries=1)["deliveries"]
            assert (delivery["status"], delivery["action"], delivery["entity"]) == (201, "create", "person")
            [(_, conf, state)] = runs()
            person_id = int(delivery["entity_id"])
            assert (conf, state) == ({"entity": "person", "entity_id": person_id, "action": "sync"}, "queued")

            dag_run = run_dag(DAG_ID, logical_date=datetime.now(UTC) + timedelta(seconds=1), conf=conf)
            assert set(task_states(dag_run).values()) == {"success"}, task_states(dag_run)
            [lead] = mk.state(leads=1)["leads"]
            assert (lead["email"], lead["pipedriveId"]) == ("ann.lee@example.com", person_id)
    finally:
        server.stop()
