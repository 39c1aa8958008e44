"""The run steps (runner.py) over both emulators: parked records retried by the next scheduled
run, follow-ups from new interesting moments, ``keys`` re-sending exactly those records, and
``full_refresh`` reading the other side without echoing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from crm_sync.exceptions import ConfigurationError
from crm_sync.integrations.marketo_pipedrive import runner
from crm_sync.integrations.marketo_pipedrive.selection import parked_keys, parse_keys
from crm_sync.operators.context import SyncRun
from crm_sync.sync.ledger import start_run
from crm_sync.sync.schema import ensure_schema, sync_log
from crm_sync.sync.staging import make_engine

from .conftest import World

ANN = {"name": "Ann Lee", "emails": [{"value": "ann.lee@example.com", "primary": True}]}


@pytest.fixture
def engine(sqlite_url: str) -> Any:
    engine = make_engine(sqlite_url)
    ensure_schema(engine)
    return engine


def new_run(engine: Any, start: datetime, end: datetime, **params: Any) -> SyncRun:
    run = SyncRun(
        integration=runner.INTEGRATION,
        dag_id="marketo_pipedrive_sync",
        run_id=f"test__{uuid.uuid4().hex[:8]}",
        dry_run=False,
        full_refresh=bool(params.get("full_refresh")),
        window_start=start,
        window_end=end,
        triggered_by="test",
        params=params,
    )
    start_run(engine, integration=run.integration, run_id=run.run_id, dag_id=run.dag_id, dry_run=False,
              full_refresh=run.full_refresh)  # fmt: skip
    return run


def both_ways(engine: Any, run: SyncRun) -> None:
    runner.marketo_to_pipedrive(run, engine)
    runner.pipedrive_to_marketo(run, engine)


def logged(engine: Any, run: SyncRun) -> dict[str, tuple[str, str | None]]:
    query = sa.select(sync_log.c.key, sync_log.c.status, sync_log.c.error_code).where(
        sync_log.c.run_id == run.run_id, sync_log.c.error_code.is_distinct_from("CONFLICT")
    )
    with engine.connect() as conn:
        return {key: (status, code) for key, status, code in conn.execute(query)}


def new_lead(world: World, **fields: Any) -> int:
    owner = {"leadOwnerFirstName": "Sandbox", "leadOwnerLastName": "Admin"}
    lead = {"email": "jo.doe@example.com", "firstName": "Jo", "lastName": "Doe", "title": "CTO",
            "toDelete": False, **owner, **fields}  # fmt: skip
    return world.mk.seed({"leads": [lead], "log_activities": True})["leads"][0]


def new_person(world: World, **changes: Any) -> int:
    body = {"entity": "persons", "action": "create", "changes": {**ANN, **changes}}
    return int(world.pd.action("ui_change", body)["id"])


def test_records_parked_by_either_quota_are_retried_by_the_next_scheduled_run(
    world: World, engine: Any
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    lead_id, person_id = new_lead(world), new_person(world)
    end1 = datetime.now(UTC) + timedelta(seconds=1)
    first = new_run(engine, t0, end1)
    # Pipedrive's daily budget runs out on the person create; Marketo's 607 on the lead lookup.
    world.pd.faults([{"method": "POST", "path": r"/api/v2/persons$", "daily_limit_exhausted": True}])
    runner.marketo_to_pipedrive(first, engine)
    world.mk.action("inject", {"code": "607", "times": 1, "path": r"/leads\.json$"})
    runner.pipedrive_to_marketo(first, engine)
    assert logged(engine, first) == {
        f"lead:{lead_id}": ("parked", "QUOTA_EXHAUSTED"),
        f"person:{person_id}": ("parked", "QUOTA_EXHAUSTED"),
    }
    assert parked_keys(engine) == [f"lead:{lead_id}", f"person:{person_id}"]
    assert [p["name"] for p in world.pd_records("persons")] == ["Ann Lee"]
    assert len(world.mk.state(leads=1)["leads"]) == 1

    # The quotas reset; the next scheduled window holds neither change, yet both go through.
    second = new_run(engine, end1, end1 + timedelta(minutes=10))
    both_ways(engine, second)
    assert logged(engine, second)[f"lead:{lead_id}"] == ("success", None)
    assert logged(engine, second)[f"person:{person_id}"] == ("success", None)
    persons = {p["name"]: p["id"] for p in world.pd_records("persons")}
    assert world.lead(lead_id)["pipedriveId"] == persons["Jo Doe"]
    leads = {lead["email"]: lead for lead in world.mk.state(leads=1)["leads"]}
    assert leads["ann.lee@example.com"]["pipedriveId"] == person_id
    assert parked_keys(engine) == []

    # Nothing is parked any more: a later run retries nothing and writes nothing.
    world.reset_calls()
    later = datetime.now(UTC) + timedelta(minutes=1)
    third = new_run(engine, later, later + timedelta(minutes=10))
    both_ways(engine, third)
    assert logged(engine, third) == {}
    assert world.writes() == {"marketo": 0, "pipedrive": 0}


def test_the_scheduled_run_creates_a_follow_up_per_new_interesting_moment_once_a_day(
    world: World, engine: Any
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    moment = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    hot = new_lead(world, lastInterestingMomentDate=moment, lastInterestingMomentDesc="Visited pricing")
    cold = new_lead(
        world, email="bo@example.com", firstName="Bo", lastInterestingMomentDate="2026-01-05T10:00:00Z"
    )
    end = datetime.now(UTC) + timedelta(seconds=1)
    first = new_run(engine, t0, end)
    counts = runner.marketo_to_pipedrive(first, engine)["counts"]
    assert counts["activity"]["success"] == 1
    [activity] = world.pd.state(entity="activities")
    assert (activity["subject"], activity["note"], activity["person_id"]) == (
        "Follow up with Jo Doe",
        "Visited pricing",
        world.lead(hot)["pipedriveId"],
    )
    assert logged(engine, first)[f"activity:{hot}"] == ("success", None)
    assert f"activity:{cold}" not in logged(engine, first)
    # The same window again (a retried task), then a wider one after the lead was edited (its
    # moment still in the window): the lead's edit travels, the follow-up stays the one of the day.
    runner.marketo_to_pipedrive(new_run(engine, t0, end), engine)
    world.mk.action("edit_lead", {"id": hot, "fields": {"title": "CEO"}})
    again = new_run(engine, t0, datetime.now(UTC) + timedelta(seconds=1))
    runner.marketo_to_pipedrive(again, engine)
    assert logged(engine, again)[f"activity:{hot}"] == ("skipped", None)
    assert len(world.pd.state(entity="activities")) == 1
    assert {p["job_title"] for p in world.pd_records("persons")} == {"CEO", "CTO"}  # the edit went


def test_keys_re_send_exactly_those_records(world: World, engine: Any) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    lead_id = new_lead(world)
    ann = new_person(world)
    bo = new_person(world, name="Bo Li", emails=[{"value": "bo@example.com", "primary": True}])
    both_ways(engine, new_run(engine, t0, datetime.now(UTC) + timedelta(seconds=1)))
    for person_id, name in ((ann, "Ann Lea"), (bo, "Bo Lee")):
        world.pd.action("ui_change", {"entity": "persons", "action": "change", "id": person_id,
                                      "changes": {"name": name}})  # fmt: skip
    world.reset_calls()
    # Every change is inside this window, but a run given keys reads no window.
    run = new_run(engine, t0, datetime.now(UTC) + timedelta(seconds=1), keys=[f"person:{ann}"])
    both_ways(engine, run)
    assert logged(engine, run) == {f"person:{ann}": ("success", None)}
    leads = {lead["email"]: lead for lead in world.mk.state(leads=1)["leads"]}
    assert leads["ann.lee@example.com"]["lastName"] == "Lea"
    assert leads["bo@example.com"]["lastName"] == "Li"  # not asked for: not re-sent
    assert world.writes()["pipedrive"] == 0
    assert world.lead(lead_id)["pipedriveId"] is not None


def test_keys_that_are_not_this_syncs_records_are_refused() -> None:
    assert parse_keys(["person:2", "lead:1001", "role:7", "deal:7", "person:2"]).ids == {
        "person": [2],
        "lead": [1001],
        "deal": [7],
    }
    with pytest.raises(ConfigurationError, match="contact:1, person:x"):
        parse_keys(["person:2", "contact:1", "person:x"])
    assert parse_keys(["contact:1"], strict=False).ids == {}


def test_full_refresh_reads_the_other_side_instead_of_the_echo_shortcut_and_still_writes_nothing(
    world: World, engine: Any
) -> None:
    t0 = datetime.now(UTC) - timedelta(minutes=1)
    person_id = new_person(world)
    both_ways(engine, new_run(engine, t0, datetime.now(UTC) + timedelta(seconds=1)))
    end = datetime.now(UTC) + timedelta(seconds=1)
    world.reset_calls()
    usual = new_run(engine, t0, end)
    runner.pipedrive_to_marketo(usual, engine)
    assert logged(engine, usual)[f"person:{person_id}"] == ("skipped", "ECHO")
    reads = lambda: sum(  # noqa: E731 - lead reads, by id or by filter
        n
        for route, n in world.mk.calls()["by_route"].items()
        if route.startswith("GET /rest/v1/lead/") or route == "GET /rest/v1/leads.json"
    )
    assert reads() == 0  # the shortcut: the lead was not even looked up

    world.reset_calls()
    fresh = new_run(engine, t0, end, full_refresh=True)
    runner.pipedrive_to_marketo(fresh, engine)
    assert logged(engine, fresh)[f"person:{person_id}"] == ("skipped", None)  # diffed: unchanged
    assert reads() >= 1
    assert world.writes() == {"marketo": 0, "pipedrive": 0}
