"""aou_salesforce_sync end to end: real Airflow (dag.test), the Salesforce emulator over HTTPS,
a generated SQL source, and the staging database on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sandbox.testing import start_sandbox
from tests.airflow_support import airflow_db, run_dag, task_states, xcom  # noqa: F401 - fixture

DAG_ID = "aou_salesforce_sync"
PARTICIPANTS = 240
DAY = datetime(2026, 11, 20, 6, tzinfo=UTC)
LOAD_DAY = (DAY + timedelta(days=5)).date()  # the source's latest load: every run below is ready
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    with start_sandbox(["salesforce"], tmp_dir=tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@dataclass
class World:
    sandbox: Any
    source: sa.engine.Engine
    staging_url: str
    config: dict[str, str]

    @property
    def sf(self) -> Any:
        return self.sandbox.admin("salesforce")

    def records(self, sobject: str) -> list[dict[str, Any]]:
        return self.sf.state(object=sobject)["records"]

    def contacts_by_pmi(self) -> dict[str, dict[str, Any]]:
        return {c["HP_PMI_ID__c"]: c for c in self.records("Contact") if c.get("HP_PMI_ID__c")}

    def write_calls(self) -> int:
        calls = self.sf.calls()["by_route"]
        return sum(
            n
            for route, n in calls.items()
            if route.split()[0] in {"POST", "PATCH", "PUT", "DELETE"}
            and "oauth2" not in route
            and "/jobs/query" not in route
        )

    def run(self, day: datetime = DAY, **conf: Any) -> tuple[Any, dict[str, Any]]:
        dag_run = run_dag(DAG_ID, logical_date=day, conf=conf)
        return dag_run, xcom(dag_run, "report") or {}

    def staging(self) -> sa.engine.Engine:
        from crm_sync.sync.staging import make_engine

        return make_engine(self.staging_url)


def _expected_participants(world: World) -> dict[str, dict[str, Any]]:
    from crm_sync.integrations.aou.config import AouConfig
    from crm_sync.integrations.aou.source import extract_contacts

    return {
        r["HP_PMI_ID__c"]: r
        for r in extract_contacts(world.source, config=AouConfig.from_mapping(world.config))
    }


def _build_world(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, staging_url: str) -> World:
    from crm_sync.integrations.aou.generator import generate_source

    admin = sandbox.admin("salesforce")
    admin.reset()
    admin.clear_faults()
    ids = admin.seed(
        {
            "objects": {
                "Account": [
                    {"Id": "0010a00001Qa6gPAAR", "Name": "Columbia University Irving Medical Center"}
                ],
                "User": [
                    {"LastName": "Owner", "Username": "owner@aou.test", "Email": "owner@aou.test"},
                    {"LastName": "Pardot One", "Username": "pardot1@aou.test", "Email": "pardot1@aou.test"},
                    {"LastName": "Pardot Two", "Username": "pardot2@aou.test", "Email": "pardot2@aou.test"},
                    {"LastName": "Sovereign", "Username": "sov@aou.test", "Email": "sov@aou.test"},
                ],
            }
        }
    )["ids"]
    owner, pardot1, pardot2, sovereign = ids["User"]
    config = {
        "owner_id": owner,
        "pardot_user_1": pardot1,
        "pardot_user_2": pardot2,
        "sovereign_user": sovereign,
        "readiness_threshold": 100,
    }
    source = sa.create_engine(f"sqlite:///{tmp_path / 'source.db'}")
    generate_source(source, participants=PARTICIPANTS, seed=11, day=LOAD_DAY)
    env = {
        **sandbox.conn_env(),
        "AIRFLOW_CONN_AOU_SOURCE": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{tmp_path / 'source.db'}"}}
        ),
        "AIRFLOW_CONN_CRM_SYNC_STAGING": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": staging_url}}
        ),
        "AIRFLOW_VAR_AOU_SALESFORCE_SYNC_CONFIG": json.dumps(config),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return World(sandbox=sandbox, source=source, staging_url=staging_url, config=config)


@pytest.fixture
def world(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> World:
    return _build_world(sandbox, tmp_path, monkeypatch, sqlite_url)


@pytest.fixture
def pg_world(sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str) -> World:
    return _build_world(sandbox, tmp_path, monkeypatch, pg_url)


def _assert_first_run_creates_everyone(world: World) -> None:
    dag_run, _summary = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    expected = _expected_participants(world)
    contacts = world.contacts_by_pmi()
    assert set(contacts) == set(expected)
    assert xcom(dag_run, "push_contacts")["outcomes"]["create:success"] == len(expected)
    sample = next(iter(sorted(expected)))
    assert contacts[sample]["LastName"] == expected[sample]["LastName"]
    assert contacts[sample]["AccountId"] == "0010a00001Qa6gPAAR"
    journeys = [j for j in world.records("Opportunity") if j.get("HP_PMI_ID__c")]
    assert len(journeys) == len(expected), "Salesforce automation creates one journey per contact"


def test_first_run_creates_every_contact_and_a_rerun_writes_nothing(world: World):
    _assert_first_run_creates_everyone(world)

    world.sf.reset_calls()
    dag_run, summary = world.run(DAY + timedelta(days=1))
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert world.write_calls() == 0, world.sf.calls()
    assert summary["planned"]["create"] == 0
    assert summary["planned"]["update"] == 0


def test_first_run_on_postgresql_staging(pg_world: World):
    _assert_first_run_creates_everyone(pg_world)


def test_changed_source_rows_update_exactly_those_records(world: World):
    from crm_sync.integrations.aou.generator import mutate_source

    world.run()
    before = _expected_participants(world)
    changed = mutate_source(world.source, fraction=0.05, seed=3, day=LOAD_DAY)
    after = _expected_participants(world)
    differing = {k for k in after if after[k] != before[k]}
    assert 0 < len(differing) <= changed
    withdrawn = {k for k in differing if after[k]["withdrawn"]}

    dag_run, summary = world.run(DAY + timedelta(days=1))
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert summary["planned"]["create"] == 0
    with world.staging().connect() as conn:
        updated = set(
            conn.execute(
                sa.text(
                    "SELECT key FROM sync_log WHERE entity = 'contact' AND action = 'update'"
                    " AND status = 'success' AND run_id = :run"
                ),
                {"run": dag_run.run_id},
            ).scalars()
        )
    # Exactly the participants whose source rows changed, except those who withdrew (their
    # Contact is no longer updated; the withdrawal goes to the journey).
    assert updated == differing - withdrawn
    contacts = world.contacts_by_pmi()
    for pmi in updated:
        assert contacts[pmi]["LastName"] == after[pmi]["LastName"]
        assert (contacts[pmi].get("Email") or "") == after[pmi]["Email"]


def test_rejected_records_land_in_the_ledger_and_are_retried(world: World):
    expected = sorted(_expected_participants(world))
    victims = expected[:3]
    # A record Salesforce rejects: an injected lock error that outlives the hook's retries.
    world.sf.config(lock_rows={"keys": victims, "times": 50})
    dag_run, _ = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)
    contacts = world.contacts_by_pmi()
    assert set(contacts) == set(expected) - set(victims)

    engine = world.staging()
    with engine.connect() as conn:
        logged = conn.execute(
            sa.text(
                "SELECT key, status, error_code FROM sync_log"
                " WHERE entity = 'contact' AND status != 'success'"
            )
        ).all()
    assert {row.key for row in logged} >= set(victims)
    assert {row.error_code for row in logged if row.key in victims} == {"UNABLE_TO_LOCK_ROW"}

    world.sf.config(lock_rows=None)
    dag_run, _summary = world.run(DAY + timedelta(days=1))
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert set(world.contacts_by_pmi()) == set(expected)
    assert xcom(dag_run, "push_contacts")["outcomes"]["create:success"] == len(victims)


def test_lost_responses_after_writes_create_no_duplicates(world: World):
    # Every Collections upsert answer is lost after Salesforce applied it, more times than
    # the HTTP policy retries: the push ends with failed outcomes and no state...
    world.sf.faults(
        [{"method": "PATCH", "path": "/composite/sobjects/Contact/", "times": 20, "lost_response": True}]
    )
    dag_run, _ = world.run()
    world.sf.clear_faults()
    # ... and the next run upserts again: every participant exactly once.
    dag_run, _summary = world.run(DAY + timedelta(days=1))
    assert str(dag_run.state) == "success", task_states(dag_run)
    pmis = [c["HP_PMI_ID__c"] for c in world.records("Contact") if c.get("HP_PMI_ID__c")]
    assert len(pmis) == len(set(pmis)) == len(_expected_participants(world))


def test_dry_run_writes_nothing_to_salesforce(world: World):
    world.sf.reset_calls()
    dag_run, summary = world.run(dry_run=True)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert world.write_calls() == 0
    assert world.contacts_by_pmi() == {}
    assert summary["state"] == "dry_run"
    assert xcom(dag_run, "push_contacts")["planned"]["create"] == len(_expected_participants(world))


def test_backfill_of_three_missed_days_runs_each_window_once(world: World):
    days = [DAY - timedelta(days=n) for n in (3, 2, 1)]
    runs = [world.run(day)[0] for day in days]
    assert all(str(r.state) == "success" for r in runs)
    engine = world.staging()
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text("SELECT run_id, state FROM sync_run WHERE integration = :i"), {"i": DAG_ID}
        ).all()
    assert sorted(r.run_id for r in stored) == sorted(r.run_id for r in runs)
    windows = [(r.data_interval_start, r.data_interval_end) for r in runs]
    assert [end - start for start, end in windows] == [timedelta(days=1)] * 3
    assert len(set(windows)) == 3
    # Only the first day had anything to create.
    creates = [xcom(r, "push_contacts")["planned"].get("create", 0) for r in runs]
    assert creates[0] == len(_expected_participants(world))
    assert creates[1:] == [0, 0]


def test_pmi_ids_param_resyncs_only_those_participants(world: World):
    wanted = sorted(_expected_participants(world))[:5]
    dag_run, _summary = world.run(pmi_ids=wanted)
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert set(world.contacts_by_pmi()) == set(wanted)


def test_withdrawn_participants_get_only_their_withdrawal_fields(world: World):
    world.run()
    journeys = {j["HP_PMI_ID__c"]: j for j in world.records("Opportunity") if j.get("HP_PMI_ID__c")}
    withdrawn = [pmi for pmi, j in journeys.items() if j.get("HP_Withdrawal_Status__c") == "1"]
    assert withdrawn, "the generated source has withdrawn participants"
    sample = journeys[withdrawn[0]]
    assert sample["HP_Withdrawal_Date__c"]
    # Other journey fields of a withdrawn participant are not written.
    assert sample.get("HP_Participant_Status__c") in (None, "")
    active = [j for pmi, j in journeys.items() if pmi not in withdrawn]
    assert any(j.get("HP_Participant_Status__c") for j in active)


def test_pardot_contacts_are_claimed_single_ambiguous_or_none(world: World):
    from crm_sync.integrations.aou.config import AouConfig
    from crm_sync.integrations.aou.generator import PardotMix, generate_pardot_contacts

    mix = PardotMix(single=3, ambiguous=1, contested=1, near_miss=2)
    pardot = generate_pardot_contacts(
        world.source, mix=mix, config=AouConfig.from_mapping(world.config), seed=5
    )
    # Salesforce assigns the ids (the generator's are placeholders without a valid checksum).
    pardot = [{k: v for k, v in contact.items() if k != "Id"} for contact in pardot]
    seeded = world.sf.seed({"objects": {"Contact": pardot}})["ids"]["Contact"]
    dag_run, summary = world.run()
    assert str(dag_run.state) == "success", task_states(dag_run)

    assert summary["outcomes"]["claim"]["success"] == 3
    engine = world.staging()
    with engine.connect() as conn:
        ambiguous = (
            conn.execute(sa.text("SELECT key FROM sync_log WHERE error_code = 'AMBIGUOUS_PARDOT_MATCH'"))
            .scalars()
            .all()
        )
    assert len(ambiguous) == 1 + 2  # one with two candidates, two contesting one contact
    contacts = world.records("Contact")
    claimed = [c for c in contacts if c["Id"] in seeded and c.get("HP_PMI_ID__c")]
    assert len(claimed) == 3
    # Ambiguous participants get no contact at all until someone resolves the match.
    pmis = {c.get("HP_PMI_ID__c") for c in contacts}
    assert not set(ambiguous) & pmis
    # The log views carry the seed's columns.
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM contact_log WHERE Action = 'Claim'")).mappings().first()
    assert row is not None
    assert {"PMI_ID", "LastName", "FirstName", "Action", "Success", "Error", "Last_Modified_Time"} <= set(row)


def test_readiness_sensor_waits_for_the_days_load(world: World):
    from crm_sync.integrations.aou.salesforce_sync import source_ready
    from crm_sync.operators.context import SyncRun

    def run_for(day: datetime) -> SyncRun:
        return SyncRun(
            integration=DAG_ID,
            dag_id=DAG_ID,
            run_id="r",
            dry_run=False,
            full_refresh=False,
            window_start=day - timedelta(days=1),
            window_end=day,
            triggered_by="test",
            params={},
        )

    ready, count, threshold = source_ready(run_for(DAY))
    assert ready
    assert count > threshold
    ready, count, _ = source_ready(run_for(DAY + timedelta(days=6)))
    assert not ready
    assert count == 0


def test_claimed_contacts_are_in_sync_state_so_the_next_run_writes_nothing(world: World):
    from crm_sync.integrations.aou.config import AouConfig
    from crm_sync.integrations.aou.generator import PardotMix, generate_pardot_contacts

    mix = PardotMix(single=3, ambiguous=0, contested=0, near_miss=0)
    pardot = generate_pardot_contacts(
        world.source, mix=mix, config=AouConfig.from_mapping(world.config), seed=5
    )
    world.sf.seed({"objects": {"Contact": [{k: v for k, v in c.items() if k != "Id"} for c in pardot]}})
    _, summary = world.run()
    assert summary["outcomes"]["claim"]["success"] == 3
    world.sf.reset_calls()
    dag_run, summary = world.run(DAY + timedelta(days=1))
    assert str(dag_run.state) == "success", task_states(dag_run)
    assert world.write_calls() == 0
    assert summary["planned"]["create"] == 0
