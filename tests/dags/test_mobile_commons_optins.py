"""mobile_commons_salesforce_optins end to end: real Airflow (dag.test), both emulators over real
HTTP, the staging database on SQLite. Mobile Commons activity is seeded inside one 5-minute window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.testing import start_sandbox
from tests.airflow_support import airflow_db, run_dag, task_states, xcom  # noqa: F401 - fixture
from tests.dags.test_mobile_commons_nightly import touched_keys

DAG_ID = "mobile_commons_salesforce_optins"
WINDOW_END = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)  # the run's window: 10:00 to 10:05
MISSING_ID = "003000000000ZZZ"
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with start_sandbox(
        ["salesforce", "mobile_commons"], tmp_dir=tmp_path_factory.mktemp("sandbox")
    ) as running:
        yield running


def profile(
    phone: str, *, at: str = "10:01", email: str | None = None, out: bool = False, **extra: Any
) -> dict:
    stamp = f"2026-11-20T{at}:00Z"
    sub = {"opt_in_path_id": 101, "activated_at": "2026-11-20T09:00:00Z" if out else stamp}
    if out:
        sub["opted_out_at"] = stamp
    record = {"phone_number": phone, "email": email, "updated_at": stamp, "subscriptions": [sub], **extra}
    if out:
        record["opted_out_at"] = stamp
    return {k: v for k, v in record.items() if v is not None}


@pytest.fixture
def world(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> dict[str, Any]:
    sf, mc = sandbox.admin("salesforce"), sandbox.admin("mobile_commons")
    for admin in (sf, mc):
        admin.reset()
        admin.clear_faults()
    ids = sf.seed(
        {
            "objects": {
                "Contact": [
                    {"LastName": "Xu", "Email": "x@example.org", "Mobile_Subscriber__c": False},
                    {"LastName": "Yu", "Email": "y@example.org", "Mobile_Subscriber__c": True},
                    {"LastName": "Dup1", "Email": "dup@example.org"},
                    {"LastName": "Dup2", "Email": "dup@example.org"},
                ]
            }
        }
    )["ids"]["Contact"]
    mc.seed({"campaigns": [{"id": 1, "name": "News", "opt_in_paths": [{"id": 101, "name": "Web"}]}]})
    mc.seed(
        {
            "profiles": [
                profile("12125550201", email="new@example.org", first_name="Nia", last_name="New"),  # creates
                profile("12125550202", email="x@example.org"),  # matches Xu by email: true
                profile("12125550203", out=True, custom_columns={"constituent_id": ids[1]}),  # Yu: false
                profile("12125550204"),  # no email, no Constituent ID: no export
                profile("12125550205", email="dup@example.org"),  # two matches: skipped members
                profile(
                    "12125550206", email="gone@example.org", custom_columns={"constituent_id": MISSING_ID}
                ),
                profile("12125550207", at="09:30", email="early@example.org"),  # before the window
            ]
        }
    )
    env = {
        **sandbox.conn_env(),
        "AIRFLOW_CONN_CRM_SYNC_STAGING": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": sqlite_url}}
        ),
        "AIRFLOW_VAR_MOBILE_COMMONS_SYNC_CONFIG": json.dumps({"report_dir": str(tmp_path / "reports")}),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {"sf": sf, "mc": mc, "ids": ids, "staging_url": sqlite_url}


def contacts(world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["LastName"]: c for c in world["sf"].state(object="Contact")["records"]}


def test_optins_and_optouts_reach_salesforce(world: dict[str, Any]) -> None:
    dag_run = run_dag(DAG_ID, logical_date=WINDOW_END)
    assert str(dag_run.state) == "success", task_states(dag_run)
    report = xcom(dag_run, "synchronization_report")
    assert report["counts"] == {
        "created": 1,
        "updated": 2,
        "no_export": 1,
        "skipped_members": 1,
        "processing_error": 1,
    }
    found = contacts(world)
    assert found["New"]["Mobile_Subscriber__c"] is True  # an opt-in with an email creates a record
    assert found["New"]["LeadSource"] == "Mobile Commons"
    assert found["Xu"]["Mobile_Subscriber__c"] is True
    assert found["Yu"]["Mobile_Subscriber__c"] is False  # the opt-out cleared it
    assert "early@example.org" not in {c.get("Email") for c in found.values()}
    [nia] = world["mc"].state(kind="profiles", phone_number="12125550201")
    assert nia["custom_columns"] == {"constituent_id": found["New"]["Id"]}  # Constituent ID write-back
    [xu] = world["mc"].state(kind="profiles", phone_number="12125550202")
    assert xu["custom_columns"] == {"constituent_id": world["ids"][0]}

    again = run_dag(DAG_ID, logical_date=WINDOW_END)
    assert str(again.state) == "success", task_states(again)
    # Yu is unchanged; Nia and Xu changed only by the write-back, so Salesforce already agrees.
    assert xcom(again, "classify_optins") == {"no_new_changes": 1}
    assert xcom(again, "push_optins")["outcomes"] == {"update:success": 2, "create:skipped": 3}
    assert len(world["sf"].state(object="Contact")["records"]) == 5  # no duplicate record


def test_quota_defers_optins_to_a_later_window(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_VAR_MOBILE_COMMONS_SYNC_CONFIG", json.dumps({"daily_quota": 0, "report_dir": str(tmp_path)})
    )
    first = run_dag(DAG_ID, logical_date=WINDOW_END)
    assert str(first.state) == "success", task_states(first)
    assert xcom(first, "synchronization_report")["counts"]["deferred_subscription"] == 3
    monkeypatch.setenv(
        "AIRFLOW_VAR_MOBILE_COMMONS_SYNC_CONFIG", json.dumps({"daily_quota": 10, "report_dir": str(tmp_path)})
    )
    later = run_dag(DAG_ID, logical_date=WINDOW_END + timedelta(hours=2))  # a window with no activity
    assert str(later.state) == "success", task_states(later)
    found = contacts(world)
    assert found["New"]["Mobile_Subscriber__c"] is True
    assert found["Yu"]["Mobile_Subscriber__c"] is False


def test_keys_resend_only_the_selected_profiles(
    world: dict[str, Any], capfd: pytest.CaptureFixture[str]
) -> None:
    xu_id, yu_id = world["ids"][0], world["ids"][1]
    # Salesforce keeps Xu's and Yu's records locked through the hook's retries: both fail.
    world["sf"].config(lock_rows={"keys": [xu_id, yu_id], "times": 50})
    first = run_dag(DAG_ID, logical_date=WINDOW_END)
    assert str(first.state) == "success", task_states(first)
    world["sf"].config(lock_rows=None)
    assert contacts(world)["Xu"]["Mobile_Subscriber__c"] is False
    assert contacts(world)["Yu"]["Mobile_Subscriber__c"] is True
    [xu] = world["mc"].state(kind="profiles", phone_number="12125550202")

    retry = run_dag(DAG_ID, logical_date=WINDOW_END + timedelta(hours=2), conf={"keys": [str(xu["id"])]})
    assert str(retry.state) == "success", task_states(retry)
    assert xcom(retry, "push_optins")["outcomes"] == {"update:success": 1}
    found = contacts(world)
    assert found["Xu"]["Mobile_Subscriber__c"] is True
    assert found["Yu"]["Mobile_Subscriber__c"] is True  # failed too, but not selected: not re-sent
    from crm_sync.sync.staging import make_engine

    assert touched_keys(make_engine(world["staging_url"]), retry.run_id, "optin") == {str(xu["id"])}

    never = run_dag(DAG_ID, logical_date=WINDOW_END + timedelta(hours=3), conf={"keys": ["999999"]})
    assert task_states(never)["stage_optins"] == "failed"
    assert "Param 'keys': no staged opt-in (so no phone to look up) for profile id(s) 999999" in (
        capfd.readouterr().out
    )
