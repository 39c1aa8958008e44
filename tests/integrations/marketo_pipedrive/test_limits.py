"""API trouble in the middle of a sync: an expired Marketo token, 606, 607, Pipedrive's 429."""

from __future__ import annotations

from crm_sync.sync.records import Status

from .conftest import World
from .test_entities import seed_lead, seed_person


def test_an_expired_marketo_token_mid_run_is_refreshed_and_the_run_goes_on(world: World) -> None:
    first, second = seed_person(world), seed_person(world, name="Bo Li", emails=[{"value": "bo@example.com"}])
    sync = world.sync()
    assert sync.person_to_lead(sync.pipedrive.get("persons", first)).status == "created"
    world.mk.action("expire_tokens")
    assert sync.person_to_lead(sync.pipedrive.get("persons", second)).status == "created"
    assert sync.marketo.api_calls.get("replayed", 0) >= 1
    assert len(world.mk.state(leads=1)["leads"]) == 2


def test_606_is_waited_out_and_607_parks_the_record(world: World) -> None:
    person_id = seed_person(world)
    sync = world.sync()
    world.mk.action("inject", {"code": "606", "times": 2})
    assert sync.person_to_lead(sync.pipedrive.get("persons", person_id)).status == "created"
    assert sync.marketo.api_calls.get("throttled", 0) >= 2

    other = seed_person(world, name="Bo Li", emails=[{"value": "bo@example.com"}])
    world.mk.action("inject", {"code": "607", "times": 1, "path": r"/leads\.json$"})
    parked = world.sync().person_to_lead(world.sync().pipedrive.get("persons", other))
    assert (parked.outcome.status, parked.outcome.error_code) == (Status.PARKED, "QUOTA_EXHAUSTED")
    assert len(world.mk.state(leads=1)["leads"]) == 1


def test_a_pipedrive_429_is_retried_after_retry_after(world: World) -> None:
    lead_id = seed_lead(world, company=None)
    world.pd.action("throttle", {"calls": 2, "retry_after": 0})
    result = world.sync().lead_to_person(world.lead(lead_id))
    assert result.status == "created"
    assert len(world.pd_records("persons")) == 1
