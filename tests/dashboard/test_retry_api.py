"""The "retry these" action through Airflow's API app: login, role, validation, audit, the run it queues."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.dashboard.conftest import AOU, Api, parse_dag_into_db

POSTS = [
    ("/crm-sync/api/retry", {"json": {"integration": AOU, "keys": ["P010"]}}),
    ("/crm-sync/dashboard/rejected/retry", {"data": {"integration": AOU, "keys": ["P010"]}}),
]


@pytest.mark.parametrize(("path", "kwargs"), POSTS)
def test_retry_endpoints_need_a_login(login_api: Api, sqlite_ledger, path: str, kwargs: dict):
    assert login_api.client.post(path, **kwargs).status_code == 401
    engine, _ = sqlite_ledger
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM action_audit")).scalar_one() == 0


def test_retry_is_refused_to_viewers_and_for_unknown_records(login_api: Api, sqlite_ledger):
    engine, _ = sqlite_ledger
    parse_dag_into_db(AOU)
    post = lambda body, user="admin": login_api.client.post(  # noqa: E731
        "/crm-sync/api/retry", json=body, headers=login_api.headers(user)
    )
    viewer = post({"integration": AOU, "keys": ["P010"]}, user="vera")
    assert viewer.status_code == 403
    assert "vera" in viewer.json()["detail"]
    unknown = post({"integration": AOU, "keys": ["P010", "NOPE1"]})
    assert unknown.status_code == 422
    assert "NOPE1" in unknown.json()["detail"]
    assert post({"integration": AOU, "keys": []}).status_code == 422
    assert post({"integration": AOU, "keys": "P010"}).status_code == 422
    assert post({"keys": ["P010"]}).status_code == 422
    # An integration whose DAG Airflow does not know (removed, or never parsed).
    from crm_sync.sync.ledger import apply_outcomes, finish_run, start_run
    from crm_sync.sync.records import Action, Outcome, Status

    start_run(
        engine,
        integration="retired_sync",
        run_id="r1",
        dag_id="retired_sync",
        dry_run=False,
        full_refresh=False,
    )
    apply_outcomes(
        engine,
        run_id="r1",
        integration="retired_sync",
        entity="thing",
        outcomes=[Outcome("T1", Action.CREATE, Status.REJECTED, error_code="X")],
    )
    finish_run(engine, integration="retired_sync", run_id="r1", state="success", api_calls={}, budget_left={})
    no_dag = post({"integration": "retired_sync", "keys": ["T1"]})
    assert no_dag.status_code == 404
    assert "retired_sync" in no_dag.json()["detail"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM action_audit")).scalar_one() == 0


def test_retry_queues_a_run_with_exactly_the_selected_keys_and_audits_it(login_api: Api, sqlite_ledger):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    engine, _ = sqlite_ledger
    parse_dag_into_db(AOU)
    response = login_api.client.post(
        "/crm-sync/api/retry",
        json={"integration": AOU, "keys": ["P011", "P010", "P011"]},
        headers=login_api.headers("ursula"),
    )
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["keys"] == ["P011", "P010"]
    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=AOU, run_id=result["dag_run_id"]).one()
        assert run.conf == {"keys": ["P011", "P010"]}
        assert run.triggering_user_name == "ursula"
        assert str(run.run_type) in {"manual", "DagRunType.MANUAL"}
    audit = login_api.client.get("/crm-sync/api/audit", headers=login_api.headers()).json()["actions"]
    assert [(a["username"], a["action"], a["integration"], a["dag_run_id"]) for a in audit] == [
        ("ursula", "retry_records", AOU, result["dag_run_id"])
    ]
    assert audit[0]["detail"]["keys"] == ["P011", "P010"]

    # The form in the page: same-origin posts only (the login cookie must not ride a CSRF).
    form = {"integration": AOU, "keys": ["P012"]}
    cross = login_api.client.post(
        "/crm-sync/dashboard/rejected/retry",
        data=form,
        headers={**login_api.headers(), "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    page = login_api.client.post(
        "/crm-sync/dashboard/rejected/retry",
        data=form,
        headers={**login_api.headers(), "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    assert page.status_code == 200, page.text
    assert "re-sends 1 record(s)" in page.text
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM action_audit")).scalar_one() == 2


def test_a_dag_without_a_keys_param_cannot_retry(sqlite_ledger):
    from crm_sync.dashboard.retry import RetryRefused, RetryRequest, retry_records

    engine, _ = sqlite_ledger
    queued: list[dict] = []
    with pytest.raises(RetryRefused) as refused:
        retry_records(
            engine,
            RetryRequest.build(AOU, ["P010"]),
            dag_id=AOU,
            user_name="admin",
            dag_params=lambda dag_id: {"dry_run": False, "full_refresh": False},
            trigger=lambda dag_id, **kw: queued.append(kw) or "never",
        )
    assert refused.value.status == 409
    assert "'keys' Param" in refused.value.reason
    assert queued == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM action_audit")).scalar_one() == 0
