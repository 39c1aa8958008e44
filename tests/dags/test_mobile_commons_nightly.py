"""salesforce_mobile_commons_nightly end to end: real Airflow (dag.test), the Salesforce and
Mobile Commons emulators over real HTTP, the staging database on SQLite."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sandbox.testing import start_sandbox
from tests.airflow_support import airflow_db, run_dag, task_states, xcom  # noqa: F401 - fixture

DAG_ID = "salesforce_mobile_commons_nightly"
NIGHT = datetime(2026, 11, 21, 3, tzinfo=UTC)
OTHER_OWNER = "003000000000999"
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with start_sandbox(
        ["salesforce", "mobile_commons"], tmp_dir=tmp_path_factory.mktemp("sandbox")
    ) as running:
        yield running


def contact(first: str | None, phone: str | None, **extra: Any) -> dict[str, Any]:
    record = {
        "FirstName": first,
        "LastName": f"Last{first or ''}",
        "MobilePhone": phone,
        "MailingCity": "New York",
    }
    record["Email"] = f"{(first or 'anon').lower()}@example.org"
    record["Mobile_Subscriber__c"] = True
    return {**record, **extra}


class World:
    """Both emulators seeded for the nightly cases, the staging database and the report dir."""

    def __init__(
        self, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staging_url: str
    ) -> None:
        self.sandbox, self.staging_url, self.report_dir = sandbox, staging_url, tmp_path / "reports"
        self.sf, self.mc = sandbox.admin("salesforce"), sandbox.admin("mobile_commons")
        for admin in (self.sf, self.mc):
            admin.reset()
            admin.clear_faults()
        self.mc.seed(
            {
                "campaigns": [
                    {"id": 1, "name": "News", "opt_in_paths": [{"id": 101, "name": "Web"}]},
                    {"id": 2, "name": "Volunteers", "opt_in_paths": [{"id": 202, "name": "Volunteer web"}]},
                ]
            }
        )
        records = [
            contact("Ann", "(212) 555-0101"),  # new: default path
            contact(None, "212-555-0102"),  # default first name
            contact("Cy", "2125550103", Mobile_Commons_Group__c="Volunteers"),  # group path
            contact("Di", None),  # no phone: no import
            contact("Ed", "2125550105"),  # Ed and Fay share a phone: skipped members
            contact("Fay", "+1 212 555 0105"),
            contact("Gus", "2125550107", Mobile_Subscriber__c=False),  # opt-in false: no path
            contact("Hal", "2125550108"),  # opted out in Mobile Commons: never re-subscribed
            contact("Ivy", "2125550109"),  # the profile belongs to another record: field conflict
            contact("Jo", "2125550110", MailingCity=None),  # Required city missing: no import
            contact("Kay", "2125550111"),  # profile already equal: no difference
            contact("Lu", "12"),  # invalid phone: no import
            contact("Max", "2125550113", Mobile_Commons_Group__c="Broken"),  # path 999: unable to update
        ]
        ids = self.sf.seed({"objects": {"Contact": records}})["ids"]["Contact"]
        self.ids = dict(zip([r["FirstName"] or "Anon" for r in records], ids, strict=True))
        kay = {"first_name": "Kay", "last_name": "LastKay", "email": "kay@example.org", "city": "New York"}
        self.mc.seed(
            {
                "profiles": [
                    {
                        "phone_number": "12125550108",
                        "opted_out_at": "2026-11-01T00:00:00Z",
                        "subscriptions": [
                            {
                                "opt_in_path_id": 101,
                                "activated_at": "2026-10-01T00:00:00Z",
                                "opted_out_at": "2026-11-01T00:00:00Z",
                            }
                        ],
                    },
                    {"phone_number": "12125550109", "custom_columns": {"constituent_id": OTHER_OWNER}},
                    {
                        "phone_number": "12125550111",
                        **kay,
                        "custom_columns": {"constituent_id": self.ids["Kay"]},
                    },
                ]
            }
        )
        self.config = {
            "default_opt_in_path_id": 101,
            "group_paths": {"Volunteers": 202, "Broken": 999},
            "required_fields": ["city"],
            "report_dir": str(self.report_dir),
        }
        env = {
            **sandbox.conn_env(),
            "AIRFLOW_CONN_CRM_SYNC_STAGING": json.dumps(
                {"conn_type": "generic", "extra": {"sqlalchemy_url": staging_url}}
            ),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    def run(self, night: datetime = NIGHT, **config: Any) -> tuple[Any, dict[str, Any]]:
        dag_run = run_dag(DAG_ID, logical_date=night, conf={"config": {**self.config, **config}})
        return dag_run, xcom(dag_run, "synchronization_report") or {}

    def profile(self, phone: str) -> dict[str, Any]:
        [found] = self.mc.state(kind="profiles", phone_number=phone)
        return found

    def staging(self) -> sa.engine.Engine:
        from crm_sync.sync.staging import make_engine

        return make_engine(self.staging_url)


def touched_keys(engine: sa.engine.Engine, run_id: str, entity: str) -> set[str]:
    """The record keys one run wrote to the ledger."""
    with engine.connect() as conn:
        query = sa.text("SELECT key FROM sync_log WHERE run_id = :run AND entity = :entity")
        return set(conn.execute(query, {"run": run_id, "entity": entity}).scalars())


@pytest.fixture
def world(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> World:
    return World(sandbox, tmp_path, monkeypatch, sqlite_url)


def test_liberal_night_sorts_every_record_into_its_category(world: World) -> None:
    dag_run, report = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    counts = report["counts"]
    assert counts == {
        "created": 4,  # Ann, Anon, Cy, Gus
        "updated": 1,  # Hal
        "no_import": 3,  # Di (phone), Jo (city), Lu (invalid phone)
        "skipped_members": 2,
        "field_conflict": 1,
        "no_difference": 1,
        "unable_to_update": 1,
    }
    ann = world.profile("2125550101")
    assert [s["opt_in_path_id"] for s in ann["subscriptions"]] == [101]
    assert ann["custom_columns"] == {"constituent_id": world.ids["Ann"]}  # Constituent ID write-back
    assert world.profile("2125550102")["first_name"] == "Contact"  # the default first name
    assert [s["opt_in_path_id"] for s in world.profile("2125550103")["subscriptions"]] == [202]
    assert world.profile("2125550107")["subscriptions"] == []  # opt-in false: never subscribed
    hal = world.profile("2125550108")
    assert hal["status"] == "Opted Out"
    assert [s["opted_out_at"] is not None for s in hal["subscriptions"]] == [True]
    assert world.profile("2125550109")["custom_columns"] == {"constituent_id": OTHER_OWNER}
    assert world.mc.state()["counts"]["profiles"] == 7  # Ann, Anon, Cy, Gus, Hal, Ivy, Kay
    markdown = Path(report["markdown"]).read_text()
    assert "| Skipped Members (multiple matches) | 2 |" in markdown
    assert world.ids["Ed"] in markdown
    assert "212555" not in markdown  # no phone numbers in the report

    # The next night, with the broken path fixed: only Max is written again.
    fixed = {"Volunteers": 202, "Broken": 202}
    dag_run, report = world.run(NIGHT + timedelta(days=1), group_paths=fixed)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert xcom(dag_run, "push_profiles")["outcomes"] == {"create:success": 1, "create:skipped": 4}
    second = xcom(dag_run, "classify_profiles")
    assert second["no_new_changes"] == 6  # the six synced (no difference included) stay unchanged


def test_conservative_night_syncs_opted_in_records_only(world: World) -> None:
    dag_run, _ = world.run(sync_type="conservative")
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert world.mc.state(kind="profiles", phone_number="2125550107") == []  # Gus: opt-in false
    assert world.profile("2125550101")["status"] == "Active Subscriber"


def test_quota_reached_mid_run_resumes_next_day_with_nothing_lost(world: World) -> None:
    dag_run, report = world.run(daily_quota=2)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert report["counts"]["deferred_subscription"] == 4  # 6 writes wanted, 2 allowed
    assert world.mc.state()["counts"]["profiles"] == 3 + 2  # seeded + two written
    # The day rolls over: today's usage row becomes yesterday's.
    from crm_sync.sync.schema import quota_usage

    with world.staging().begin() as conn:
        conn.execute(
            sa.update(quota_usage).values(window_start=quota_usage.c.window_start - timedelta(days=1))
        )
    dag_run, _ = world.run(NIGHT + timedelta(days=1), daily_quota=10)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert world.mc.state()["counts"]["profiles"] == 7  # everyone deferred arrived
    assert xcom(dag_run, "push_profiles")["budget_left"]["mobile_commons_sync"] == 10 - 4


def test_error_27_is_absorbed_and_bad_credentials_are_a_validation_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    error_27 = '<response success="false"><error id="27" message="API rate limit exceeded"/></response>'
    world.mc.faults([{"path": "/api/profile_update", "status": 200, "body": error_27, "times": 3}])
    dag_run, report = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert report["counts"]["created"] == 4
    conn = world.sandbox.connection("mobile_commons_default")
    monkeypatch.setenv("AIRFLOW_CONN_MOBILE_COMMONS_DEFAULT", json.dumps({**conn, "password": "wrong"}))
    dag_run, report = world.run(NIGHT + timedelta(days=1))
    assert str(dag_run.state) == "failed"
    assert report["counts"]["validation_error"] == 1


def test_report_csv_export_is_a_source(world: World) -> None:
    report_id = "00O5g000001AbCdEAA"
    world.sf.action(
        "reports",
        {
            "id": report_id,
            "soql": "SELECT Id, FirstName, LastName, MobilePhone, Email, Mobile_Subscriber__c FROM Contact "
            "WHERE FirstName IN ('Ann', 'Cy')",
            "headings": [
                "Contact ID",
                "First Name",
                "Last Name",
                "Mobile Phone",
                "Email",
                "Mobile Subscriber",
            ],
        },
    )
    url = f"https://my.salesforce.example/{report_id}?export=1&enc=UTF-8&xf=csv"
    dag_run, report = world.run(source="report", report_url=url, required_fields=[])
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert report["counts"] == {"created": 2}
    assert world.profile("2125550103")["custom_columns"] == {"constituent_id": world.ids["Cy"]}


def test_keys_resend_only_the_selected_records(world: World) -> None:
    dag_run, report = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert report["counts"]["unable_to_update"] == 1  # Max: the broken path
    zed = world.sf.seed({"objects": {"Contact": [contact("Zed", "2125550120")]}})["ids"]["Contact"][0]
    world.mc.reset_calls()

    fixed = {**world.config, "group_paths": {"Volunteers": 202, "Broken": 202}}
    conf = {"config": fixed, "keys": [world.ids["Max"]]}
    retry = run_dag(DAG_ID, logical_date=NIGHT + timedelta(days=1), conf=conf)
    assert str(retry.state) == "success", task_states(retry)
    assert xcom(retry, "push_profiles")["outcomes"] == {"create:success": 1}
    assert [s["opt_in_path_id"] for s in world.profile("2125550113")["subscriptions"]] == [202]
    assert world.mc.state(kind="profiles", phone_number="2125550120") == []  # Zed: not selected
    touched = touched_keys(world.staging(), retry.run_id, "profile")
    assert touched == {world.ids["Max"]}
    assert zed not in touched


def test_a_key_that_is_not_a_salesforce_id_is_refused_before_any_query(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    world.sf.reset_calls()
    conf = {"config": world.config, "keys": [world.ids["Ann"], "003' OR Id != '"]}
    dag_run = run_dag(DAG_ID, logical_date=NIGHT, conf=conf)
    assert task_states(dag_run)["stage_profiles"] == "failed"
    logged = capfd.readouterr().out
    assert "Param 'keys'" in logged
    assert "invalid Salesforce id" in logged
    assert [r for r in world.sf.calls()["by_route"] if "query" in r] == []
    assert world.mc.state()["counts"]["profiles"] == 3  # only the seeded ones
