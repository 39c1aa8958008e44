"""No echo after a round trip, and a field both sides changed resolved by the rule and logged.

Against both emulators over real HTTP and a real staging database.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from crm_sync.exceptions import ConfigurationError
from crm_sync.integrations.marketo_pipedrive.entities import EntitySync
from crm_sync.integrations.marketo_pipedrive.memory import RecordMemory
from crm_sync.sync.schema import ensure_schema, sync_log
from crm_sync.sync.staging import make_engine

from .conftest import World
from .test_entities import seed_lead


@pytest.fixture
def engine(staging_url: str) -> sa.Engine:
    engine = make_engine(staging_url)
    ensure_schema(engine)
    return engine


def memory_sync(world: World, engine: sa.Engine, **rules: str) -> EntitySync:
    sync = world.sync()
    sync.memory = RecordMemory(engine, "run-1", rules=rules)
    return sync


def read_lead(sync: EntitySync, lead_id: int) -> dict[str, Any]:
    lead = sync.marketo.get_lead(lead_id, sync.matcher.lead_fields)
    assert lead is not None
    return lead


def conflicts(engine: sa.Engine) -> list[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sync_log.c.key, sync_log.c.field, sync_log.c.status, sync_log.c.message).where(
                sync_log.c.error_code == "CONFLICT"
            )
        )
        return [tuple(row) for row in rows]


def test_a_round_trip_comes_back_as_an_echo_and_writes_nothing(world: World, engine: sa.Engine) -> None:
    lead_id = seed_lead(world)
    sync = memory_sync(world, engine)
    created = sync.lead_to_person(read_lead(sync, lead_id))
    assert created.status == "created"
    person_id = int(created.outcome.target_id)

    world.reset_calls()
    sync = memory_sync(world, engine)  # a new run: only the database remembers
    back = sync.person_to_lead(sync.pipedrive.get("persons", person_id))
    assert (back.status, back.outcome.error_code) == ("skipped", "ECHO")
    forth = sync.lead_to_person(read_lead(sync, lead_id))
    assert (forth.status, forth.outcome.error_code) == ("skipped", "ECHO")
    assert world.writes() == {"marketo": 0, "pipedrive": 0}


def test_a_change_on_one_side_crosses_once_then_echoes(world: World, engine: sa.Engine) -> None:
    lead_id = seed_lead(world, company=None)
    sync = memory_sync(world, engine)
    person_id = int(sync.lead_to_person(read_lead(sync, lead_id)).outcome.target_id)
    world.pd.action(
        "ui_change",
        {"entity": "persons", "action": "change", "id": person_id, "changes": {"job_title": "CEO"}},
    )
    result = sync.person_to_lead(sync.pipedrive.get("persons", person_id))
    assert (result.status, result.written) == ("updated", {"title": "CEO"})
    assert world.lead(lead_id)["title"] == "CEO"
    world.reset_calls()
    again = memory_sync(world, engine).lead_to_person(read_lead(sync, lead_id))
    assert again.outcome.error_code == "ECHO"
    assert world.writes() == {"marketo": 0, "pipedrive": 0}


def test_an_edit_on_the_target_is_not_undone_by_a_change_elsewhere(world: World, engine: sa.Engine) -> None:
    lead_id = seed_lead(world, company=None)
    sync = memory_sync(world, engine)
    person_id = int(sync.lead_to_person(read_lead(sync, lead_id)).outcome.target_id)
    world.mk.action("edit_lead", {"id": lead_id, "fields": {"title": "Founder"}})
    world.pd.action(
        "ui_change",
        {"entity": "persons", "action": "change", "id": person_id,
         "changes": {"phones": [{"value": "+14155550123", "primary": True}]}},
    )  # fmt: skip
    result = sync.person_to_lead(sync.pipedrive.get("persons", person_id))
    # The person's stale title must not overwrite the lead's new one: only the phone moves.
    assert (result.status, result.written) == ("updated", {"phone": "+14155550123"})
    assert world.lead(lead_id)["title"] == "Founder"
    assert conflicts(engine) == []


def test_both_sides_changed_a_field_most_recent_wins_and_is_logged(world: World, engine: sa.Engine) -> None:
    lead_id = seed_lead(world, company=None)
    sync = memory_sync(world, engine)
    person_id = int(sync.lead_to_person(read_lead(sync, lead_id)).outcome.target_id)
    world.mk.action("edit_lead", {"id": lead_id, "fields": {"title": "Marketo title"}})
    time.sleep(1.1)  # timestamps have second precision: make Pipedrive's edit the later one
    world.pd.action(
        "ui_change",
        {
            "entity": "persons",
            "action": "change",
            "id": person_id,
            "changes": {"job_title": "Pipedrive title"},
        },
    )
    # Marketo -> Pipedrive first: the lead's edit is older, so the person keeps its title.
    older = sync.lead_to_person(read_lead(sync, lead_id))
    assert older.status == "skipped"
    assert sync.pipedrive.get("persons", person_id).values["job_title"] == "Pipedrive title"
    # Pipedrive -> Marketo: the newer edit wins.
    newer = sync.person_to_lead(sync.pipedrive.get("persons", person_id))
    assert (newer.status, newer.written) == ("updated", {"title": "Pipedrive title"})
    assert world.lead(lead_id)["title"] == "Pipedrive title"
    logged = conflicts(engine)
    # Logged once, where it was found and decided; the person's pass then just carries it over.
    [(key, field, status, message)] = logged
    assert (key, field, status) == (f"lead:{lead_id}", "job_title", "skipped")
    assert "rule 'latest': pipedrive's value kept" in message


def test_a_configured_rule_lets_one_side_always_win(world: World, engine: sa.Engine) -> None:
    lead_id = seed_lead(world, company=None)
    sync = memory_sync(world, engine, person="marketo")
    person_id = int(sync.lead_to_person(read_lead(sync, lead_id)).outcome.target_id)
    world.pd.action(
        "ui_change",
        {"entity": "persons", "action": "change", "id": person_id, "changes": {"job_title": "PD"}},
    )
    world.mk.action("edit_lead", {"id": lead_id, "fields": {"title": "MK"}})
    result = sync.person_to_lead(sync.pipedrive.get("persons", person_id))
    assert result.status == "skipped"  # Marketo always wins: the lead keeps its title
    assert world.lead(lead_id)["title"] == "MK"
    assert [field for _, field, _, _ in conflicts(engine)] == ["title"]
    with pytest.raises(ConfigurationError, match="conflict rules"):
        RecordMemory(engine, "run-2", rules={"person": "newest"})
