"""Follow-up activities: created once per lead and day through the outbox, whatever the retries."""

from __future__ import annotations

from datetime import date

import pytest

from crm_sync.sync.outbox import Outbox
from crm_sync.sync.schema import ensure_schema
from crm_sync.sync.staging import make_engine

from .conftest import World
from .test_entities import seed_lead

DAY = date(2026, 11, 25)


@pytest.fixture
def outbox(sqlite_url: str) -> Outbox:
    engine = make_engine(sqlite_url)
    ensure_schema(engine)
    return Outbox(engine, "marketo_pipedrive")


def activities(world: World) -> list[dict]:
    return list(world.pd.state(entity="activities"))


def test_a_retried_task_creates_no_second_activity(world: World, outbox: Outbox) -> None:
    person_id = world.pd.seed({"persons": [{"name": "Jo Doe"}]})["persons"][0]
    lead_id = seed_lead(world, pipedriveId=person_id, lastInterestingMomentDesc="Visited pricing")
    sync = world.sync()
    sync.run_date = DAY
    first = sync.lead_activity(lead_id, outbox, "run-1")
    assert first.status == "created"
    [activity] = activities(world)
    assert (activity["subject"], activity["type"], activity["due_date"]) == (
        "Follow up with Jo Doe",
        "call",
        "2026-11-25",
    )
    assert (activity["person_id"], activity["owner_id"], activity["note"]) == (
        person_id,
        1001,
        "Visited pricing",
    )
    # The task is retried (same run, same day): the outbox knows it is done.
    again = world.sync()
    again.run_date = DAY
    assert again.lead_activity(lead_id, outbox, "run-1").outcome.error_code is None
    assert len(activities(world)) == 1


def test_a_lost_answer_is_looked_up_before_creating_again(world: World, outbox: Outbox) -> None:
    person_id = world.pd.seed({"persons": [{"name": "Jo Doe"}]})["persons"][0]
    lead_id = seed_lead(world, pipedriveId=person_id)
    # An earlier attempt claimed the operation and created the activity, then lost the answer.
    outbox.claim(Outbox.op_key("pipedrive_activity", lead_id, "2026-11-25"), entity="activity",
                 record_key=f"activity:{lead_id}", run_id="run-0")  # fmt: skip
    world.pd.seed(
        {
            "activities": [
                {
                    "subject": "Follow up with Jo Doe",
                    "type": "call",
                    "due_date": "2026-11-25",
                    "person_id": person_id,
                }
            ]
        }
    )
    sync = world.sync()
    sync.run_date = DAY
    result = sync.lead_activity(lead_id, outbox, "run-1")
    assert (result.status, result.step) == ("skipped", "outbox")
    assert len(activities(world)) == 1
    assert outbox.get(Outbox.op_key("pipedrive_activity", lead_id, "2026-11-25")).is_done


def test_no_activity_without_an_owner_or_a_person(world: World, outbox: Outbox) -> None:
    no_person = seed_lead(world)
    no_owner = seed_lead(
        world, email="x@example.com", pipedriveId=1, leadOwnerFirstName=None, leadOwnerLastName=None
    )
    sync = world.sync()
    for lead_id in (no_person, no_owner):
        assert sync.lead_activity(lead_id, outbox, "run-1").outcome.error_code == "NO_OWNER_OR_PERSON"
    assert activities(world) == []
    assert outbox.pending() == []  # nothing was claimed either
