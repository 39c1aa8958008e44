"""Each direction and entity, every matching-cascade step, write-back, field diff and deletes.

Against the Marketo and Pipedrive emulators over real HTTP (conftest.py).
"""

from __future__ import annotations

from typing import Any

from crm_sync.hooks.pipedrive_fields import snake_case
from crm_sync.sync.records import Action, Status

from .conftest import World

NX = "NX Subscription (New and Upsell)"


def custom(world: World, record: dict[str, Any], entity: str, name: str) -> Any:
    keys = world.pd.state(fields=entity)
    key = next(f["key"] for f in keys if snake_case(f["name"]) == name)
    return record["custom_fields"].get(key)


def seed_lead(world: World, **fields: Any) -> int:
    lead = {
        "email": "jo.doe@example.com",
        "firstName": "Jo",
        "lastName": "Doe",
        "title": "CTO",
        "company": "Example Ltd",
        "website": "https://www.example.com",
        "leadCountry": "fr",
        "leadOwnerFirstName": "Sandbox",
        "leadOwnerLastName": "Admin",
        "toDelete": False,
        **fields,
    }
    return world.mk.seed({"leads": [lead]})["leads"][0]


# ---- Marketo lead -> Pipedrive person -----------------------------------------------------------


def test_lead_creates_person_and_organization_with_cross_ids(world: World) -> None:
    lead_id = seed_lead(world)
    sync = world.sync()
    sync.check()
    result = sync.lead_to_person(world.lead(lead_id))
    assert (result.status, result.step) == ("created", None)
    [person] = world.pd_records("persons")
    assert person["name"] == "Jo Doe"
    assert person["emails"][0]["value"] == "jo.doe@example.com"
    assert person["owner_id"] == 1001  # "Sandbox Admin" resolved by name at run time
    assert custom(world, person, "persons", "marketoid") == str(lead_id)
    assert custom(world, person, "persons", "inferred_country") == "France"
    [org] = world.pd_records("organizations")
    assert (org["name"], person["org_id"]) == ("Example Ltd", org["id"])
    assert custom(world, org, "organizations", "email_domain") == "example.com"
    assert world.lead(lead_id)["pipedriveId"] == person["id"]  # written back
    assert result.outcome.target_id == str(person["id"])

    world.reset_calls()
    again = world.sync().lead_to_person(world.lead(lead_id))
    assert (again.status, again.step, again.written) == ("skipped", "pipedriveId", {})
    assert world.writes() == {"marketo": 0, "pipedrive": 0}


def test_lead_updates_only_changed_fields_never_blanks_and_keeps_no_clobber(world: World) -> None:
    seeded = world.pd.seed(
        {
            "persons": [
                {
                    "name": "Jo Doe",
                    "emails": [{"value": "jo.doe@example.com", "primary": True}],
                    "phones": [{"value": "+33 1 23 45 67 89", "primary": True}],
                    "owner_id": 208823,
                    "job_title": "CTO",
                }
            ]
        }
    )
    person_id = seeded["persons"][0]
    lead_id = seed_lead(world, pipedriveId=person_id, title="VP Engineering", company=None, phone=None)
    result = world.sync().lead_to_person(world.lead(lead_id))
    assert (result.status, result.step) == ("updated", "pipedriveId")
    # Only the title differed; the lead's empty phone did not blank the person's, and the
    # owner (no_clobber) stays the salesperson who took the person over.
    assert result.written == {
        "job_title": "VP Engineering",
        "inferred_country": "France",
        "marketoid": str(lead_id),
    }
    [person] = world.pd_records("persons")
    assert person["phones"][0]["value"] == "+33 1 23 45 67 89"
    assert person["owner_id"] == 208823
    assert person["job_title"] == "VP Engineering"


def test_lead_matches_person_by_marketoid_and_writes_pipedrive_id_back(world: World) -> None:
    lead_id = seed_lead(world, company=None)
    person_id = world.pd.seed({"persons": [{"name": "Jo Doe", "custom": {"marketoid": str(lead_id)}}]})[
        "persons"
    ][0]
    result = world.sync().lead_to_person(world.lead(lead_id))
    assert (result.status, result.step) == ("updated", "marketoid")
    assert len(world.pd_records("persons")) == 1
    assert world.lead(lead_id)["pipedriveId"] == person_id


def test_unknown_owner_falls_back_to_the_bot_and_bad_data_is_rejected_by_field(world: World) -> None:
    good = seed_lead(world, leadOwnerFirstName="Nobody", leadOwnerLastName="Here", company=None)
    bad = seed_lead(world, email="bad@example.com", leadCountry="zz", company=None)
    sync = world.sync()
    assert sync.lead_to_person(world.lead(good)).status == "created"
    rejected = sync.lead_to_person(world.lead(bad))
    outcome = rejected.outcome
    assert (outcome.status, outcome.error_code, outcome.field) == (
        Status.REJECTED,
        "UNKNOWN_COUNTRY_CODE",
        "inferred_country",
    )
    assert f"lead:{bad}" in outcome.message
    [person] = world.pd_records("persons")
    assert person["owner_id"] == 208823


# ---- organization cascade (a lead's company -> Pipedrive organization) ------------------------


def test_organization_cascade_marketoid_then_unique_name_then_email_domain(world: World) -> None:
    ids = world.pd.seed(
        {
            "organizations": [
                {"name": "Acme", "custom": {"marketoid": "77"}},
                {"name": "Twin"},
                {"name": "Twin", "custom": {"email_domain": "twin.io"}},
                {"name": "Solo"},
            ]
        }
    )["organizations"]
    matcher = world.sync().matcher
    by_id = matcher.organization_for_company(name="Someone else", marketoid=77)
    assert (by_id.record.id, by_id.step) == (ids[0], "marketoid")
    by_name = matcher.organization_for_company(name="Solo")
    assert (by_name.record.id, by_name.step) == (ids[3], "name")
    # Two orgs share the name: not unique, so the domain decides.
    by_domain = matcher.organization_for_company(name="Twin", email_domain="twin.io")
    assert (by_domain.record.id, by_domain.step) == (ids[2], "email_domain")
    assert not matcher.organization_for_company(name="Twin").found


# ---- many leads in one run: batched write-backs, one lookup per company ----------------------


def routes(admin: Any, *needles: str) -> int:
    """Calls since the last reset to routes containing every needle."""
    return sum(n for route, n in admin.calls()["by_route"].items() if all(x in route for x in needles))


def test_leads_of_one_batch_write_pipedrive_id_back_in_one_call_and_share_their_organization(
    world: World,
) -> None:
    acme = [seed_lead(world, email=f"a{i}@acme.io", company="Acme", website="acme.io") for i in range(3)]
    other = seed_lead(world, email="b@beta.io", company="Beta", website="beta.io")
    leads = [world.lead(i) for i in [*acme, other]]
    world.reset_calls()
    results = world.sync().leads_to_persons(leads)
    assert [r.status for r in results] == ["created"] * 4
    assert routes(world.mk, "POST", "leads.json") == 1  # four write-backs, one call
    # Each company is looked up (name, then domain) and created once, not once per lead.
    assert routes(world.pd, "POST", "/organizations") == 2
    assert routes(world.pd, "GET", "/organizations/search") == 4
    orgs = {o["name"]: o["id"] for o in world.pd_records("organizations")}
    persons = {p["id"]: p["org_id"] for p in world.pd_records("persons")}
    for lead_id, result in zip([*acme, other], results, strict=True):
        person_id = int(result.outcome.target_id)
        assert world.lead(lead_id)["pipedriveId"] == person_id
        assert persons[person_id] == orgs["Beta" if lead_id == other else "Acme"]


def test_an_organization_deleted_while_the_run_holds_it_is_looked_up_again(world: World) -> None:
    org_id = world.pd.seed({"organizations": [{"name": "Acme"}]})["organizations"][0]
    lead_id = seed_lead(world, company="Acme", website="acme.io")
    # The org's empty email_domain is filled in by a PATCH; the first one finds it deleted.
    world.pd.faults([{"method": "PATCH", "path": r"/api/v2/organizations/\d+$", "status": 410, "times": 1}])
    world.reset_calls()
    result = world.sync().lead_to_person(world.lead(lead_id))
    assert result.status == "created"
    assert routes(world.pd, "PATCH", "/organizations") == 2
    assert routes(world.pd, "GET", "/organizations/search") == 2  # the cascade ran twice
    [person] = world.pd_records("persons")
    assert person["org_id"] == org_id
    [org] = world.pd_records("organizations")
    assert custom(world, org, "organizations", "email_domain") == "acme.io"


def test_a_refused_write_back_fails_only_its_lead_and_names_the_field(world: World) -> None:
    kept, gone = seed_lead(world, company=None), seed_lead(world, email="gone@example.com", company=None)
    leads = [world.lead(kept), world.lead(gone)]
    sync = world.sync()
    sync.marketo.delete_leads([gone])  # deleted in Marketo between the read and the write-back
    first, second = sync.leads_to_persons(leads)
    assert first.status == "created"
    assert world.lead(kept)["pipedriveId"] == int(first.outcome.target_id)
    outcome = second.outcome
    assert (outcome.status, outcome.error_code, outcome.field) == (Status.REJECTED, "1004", "pipedriveId")
    assert "writing pipedriveId failed" in outcome.message


def test_write_backs_lost_to_a_marketo_outage_are_finished_later_without_a_second_person(
    world: World,
) -> None:
    lead_ids = [seed_lead(world, email=f"w{i}@example.com", company=None) for i in range(3)]
    world.mk.faults([{"method": "POST", "path": "/rest/v1/leads.json", "status": 503, "times": 10}])
    failed = world.sync().leads_to_persons([world.lead(i) for i in lead_ids])
    assert {(r.outcome.status, r.outcome.field) for r in failed} == {(Status.FAILED, "pipedriveId")}
    assert len(world.pd_records("persons")) == 3  # written, their leads not told yet
    world.mk.clear_faults()
    again = world.sync().leads_to_persons([world.lead(i) for i in lead_ids])
    assert {(r.status, r.step) for r in again} == {("skipped", "marketoid")}
    persons = {p["id"] for p in world.pd_records("persons")}
    assert len(persons) == 3
    assert {world.lead(i)["pipedriveId"] for i in lead_ids} == persons


def test_a_write_back_parked_by_607_is_finished_by_the_next_sync_without_a_second_person(
    world: World,
) -> None:
    lead_id = seed_lead(world, company=None)
    world.mk.action("inject", {"code": "607", "times": 1, "path": r"/leads\.json$"})
    [parked] = world.sync().leads_to_persons([world.lead(lead_id)])
    assert (parked.outcome.status, parked.outcome.field) == (Status.PARKED, "pipedriveId")
    assert world.lead(lead_id).get("pipedriveId") in (None, "")
    [done] = world.sync().leads_to_persons([world.lead(lead_id)])
    assert (done.outcome.status, done.step) == (Status.SKIPPED, "marketoid")
    [person] = world.pd_records("persons")
    assert world.lead(lead_id)["pipedriveId"] == person["id"]


# ---- Pipedrive person -> Marketo lead -----------------------------------------------------------


def seed_person(world: World, **extra: Any) -> int:
    org = world.pd.seed({"organizations": [{"name": "Example Ltd"}]})["organizations"][0]
    body = {
        "name": "Ann Lee",
        "emails": [{"value": "Ann.Lee@Example.com", "primary": True}],
        "job_title": "Buyer",
        "org_id": org,
        **extra,
    }
    return world.pd.seed({"persons": [body]})["persons"][0]


def test_person_creates_lead_and_gets_marketoid(world: World) -> None:
    person_id = seed_person(world)
    sync = world.sync()
    person = sync.pipedrive.get("persons", person_id)
    result = sync.person_to_lead(person)
    assert result.status == "created"
    lead_id = int(result.outcome.target_id)
    lead = world.lead(lead_id)
    assert (lead["email"], lead["firstName"], lead["lastName"]) == ("ann.lee@example.com", "Ann", "Lee")
    assert (lead["company"], lead["title"], lead["pipedriveId"]) == ("Example Ltd", "Buyer", person_id)
    assert lead["toDelete"] is False
    [record] = [p for p in world.pd_records("persons") if p["id"] == person_id]
    assert custom(world, record, "persons", "marketoid") == str(lead_id)

    world.reset_calls()
    again = world.sync().person_to_lead(world.sync().pipedrive.get("persons", person_id))
    assert (again.status, again.step) == ("skipped", "marketoid")
    assert world.writes() == {"marketo": 0, "pipedrive": 0}


def test_person_matches_lead_by_pipedrive_id_and_updates_changed_fields(world: World) -> None:
    person_id = seed_person(world, job_title="Head of Buying")
    lead_id = seed_lead(
        world, email="ann.lee@example.com", firstName="Ann", lastName="Lee", pipedriveId=person_id
    )
    sync = world.sync()
    result = sync.person_to_lead(sync.pipedrive.get("persons", person_id))
    assert (result.status, result.step) == ("updated", "pipedriveId")
    assert result.written == {"title": "Head of Buying"}
    lead = world.lead(lead_id)
    assert (lead["title"], lead["website"]) == ("Head of Buying", "https://www.example.com")  # not blanked


def test_persons_go_in_batches_and_a_refused_lead_fails_only_itself(world: World) -> None:
    by_marketoid = seed_lead(world, email="a@x.io", firstName="Al", lastName="One", title="CTO", company=None)
    person_a = seed_person(
        world,
        name="Al One",
        emails=[{"value": "a@x.io"}],
        job_title="CEO",
        custom={"marketoid": str(by_marketoid)},
    )
    person_b = seed_person(world, name="Bo Two", emails=[{"value": "b@x.io"}], job_title="CFO")
    by_pipedrive_id = seed_lead(
        world, email="b@x.io", firstName="Bo", lastName="Two", title="CFO", pipedriveId=person_b, company=None
    )
    new = seed_person(world, name="Cy Three", emails=[{"value": "c@x.io"}])
    no_mail = [seed_person(world, name=f"No Mail {i}", emails=[]) for i in range(2)]
    world.mk.seed({"leads": [{"email": "dup@x.io"}, {"email": "dup@x.io"}]})  # two leads, one address
    ambiguous = seed_person(world, name="Dee Dup", emails=[{"value": "dup@x.io"}])
    ids = [person_a, person_b, new, *no_mail, ambiguous]
    sync = world.sync()
    records = [sync.pipedrive.get("persons", i) for i in ids]
    world.reset_calls()
    results = dict(zip(ids, sync.persons_to_leads(records), strict=True))

    assert (results[person_a].status, results[person_a].step) == ("updated", "marketoid")
    assert world.lead(by_marketoid)["title"] == "CEO"
    assert (results[person_b].status, results[person_b].step) == ("updated", "pipedriveId")
    assert world.lead(by_pipedrive_id)["company"] == "Example Ltd"  # the person's organization
    assert results[new].status == "created"
    # The placeholder address never merges two strangers: two leads.
    made = {int(results[i].outcome.target_id) for i in no_mail}
    assert len(made) == 2
    assert all(world.lead(i)["email"] == "unknown@unknown.com" for i in made)
    refused = results[ambiguous].outcome
    assert (refused.status, refused.error_code) == (Status.REJECTED, "1007")
    # Six persons: two lead queries and three writes (by email, duplicates, by id) in Marketo.
    assert routes(world.mk, "GET", "leads.json") == 2
    assert routes(world.mk, "POST", "leads.json") == 3
    # Each person written now carries its lead id; the refused one does not.
    marketoids = {p["id"]: custom(world, p, "persons", "marketoid") for p in world.pd_records("persons")}
    assert marketoids[new] == results[new].outcome.target_id
    assert marketoids[ambiguous] in (None, "")


# ---- Pipedrive organization -> Marketo company --------------------------------------------------


def test_organization_creates_company_then_company_cascade(world: World) -> None:
    orgs = world.pd.seed(
        {
            "organizations": [
                {"name": "New Co", "custom": {"email_domain": "newco.com"}},
                {"name": "Known Co"},
                {"name": "Named Co"},
                {"name": "Linked Co"},
            ]
        }
    )["organizations"]
    companies = world.mk.seed(
        {
            "companies": [
                {"externalCompanyId": f"pd-organization-{orgs[1]}", "company": "Known Co"},
                {"externalCompanyId": "crm-9", "company": "Named Co"},
                {"externalCompanyId": "crm-10", "company": "Linked Co (old name)"},
            ]
        }
    )["companies"]
    world.pd.action("ui_change", {"entity": "organizations", "action": "change", "id": orgs[3]})
    sync = world.sync()
    linked = sync.pipedrive.get("organizations", orgs[3])
    body = {"custom_fields": {sync.fields("organizations").key("marketoid"): str(companies[2])}}
    sync.pipedrive.update("organizations", orgs[3], body)

    results = {
        org_id: sync.organization_to_company(sync.pipedrive.get("organizations", org_id)) for org_id in orgs
    }
    created = results[orgs[0]]
    assert created.status == "created"
    assert created.written["externalCompanyId"] == f"pd-organization-{orgs[0]}"
    assert created.written["website"] == "newco.com"
    assert (results[orgs[1]].step, results[orgs[1]].status) == ("externalCompanyId", "skipped")
    assert (results[orgs[2]].step, results[orgs[2]].outcome.target_id) == ("company", str(companies[1]))
    assert (results[orgs[3]].step, results[orgs[3]].status) == ("marketoid", "updated")
    assert linked is not None
    by_id = {c["id"]: c for c in world.mk.state(companies=1)["companies"]}
    assert by_id[companies[2]]["company"] == "Linked Co"
    assert by_id[companies[2]]["externalCompanyId"] == "crm-10"  # the dedupe key is left alone
    # Every org now carries its company id.
    marketoids = {
        o["id"]: custom(world, o, "organizations", "marketoid") for o in world.pd_records("organizations")
    }
    assert marketoids[orgs[2]] == str(companies[1])
    assert marketoids[orgs[0]] == str(created.outcome.target_id)


def test_organizations_go_in_batches_through_every_cascade_step(world: World) -> None:
    names = ["New Co", "Known Co", "Named Co", "Twin Co", "Twin Co"]
    orgs = world.pd.seed({"organizations": [{"name": n} for n in names]})["organizations"]
    world.mk.seed(
        {
            "companies": [
                {"externalCompanyId": f"pd-organization-{orgs[1]}", "company": "Known Co"},
                {"externalCompanyId": "crm-9", "company": "Named Co", "website": "named.example"},
            ]
        }
    )
    sync = world.sync()
    records = [sync.pipedrive.get("organizations", o) for o in orgs]
    world.reset_calls()
    results = dict(zip(orgs, sync.organizations_to_companies(records), strict=True))
    assert (results[orgs[0]].status, results[orgs[0]].step) == ("created", None)
    assert (results[orgs[1]].status, results[orgs[1]].step) == ("skipped", "externalCompanyId")
    assert results[orgs[2]].step == "company"
    # Two Pipedrive orgs share a name: each gets its own company by its own external id.
    assert [results[o].status for o in orgs[3:]] == ["created", "created"]
    assert len(world.mk.state(companies=1)["companies"]) == 5
    # Five orgs: one query by external id, one by name (no org had a marketoid to ask for),
    # one write creating the three new companies.
    assert routes(world.mk, "GET", "companies.json") == 2
    assert routes(world.mk, "POST", "companies.json") == 1


# ---- Pipedrive deal -> Marketo opportunity + role -----------------------------------------------


def test_deal_of_a_configured_pipeline_becomes_opportunity_and_role(world: World) -> None:
    sync = world.sync()
    nx = sync.pipedrive.pipeline_ids([NX])[NX]
    other = sync.pipedrive.pipeline_ids(["Default pipeline"])["Default pipeline"]
    lead_id = seed_lead(world, company=None)
    person_id = world.pd.seed({"persons": [{"name": "Jo Doe", "custom": {"marketoid": str(lead_id)}}]})[
        "persons"
    ][0]
    deals = world.pd.seed(
        {
            "deals": [
                {
                    "title": "Big deal",
                    "value": 5000,
                    "currency": "EUR",
                    "pipeline_id": nx,
                    "person_id": person_id,
                    "expected_close_date": "2026-12-15",
                },
                {"title": "Elsewhere", "pipeline_id": other},
            ]
        }
    )["deals"]
    [opp, role] = sync.deal_to_opportunity(sync.pipedrive.get("deals", deals[0]))
    assert (opp.status, role.status) == ("created", "created")
    [stored] = world.mk.state(opportunities=1)["opportunities"]
    assert stored["externalOpportunityId"] == f"pd-deal-{deals[0]}"
    assert (stored["name"], stored["amount"], stored["isClosed"], stored["isWon"]) == (
        "Big deal",
        5000,
        False,
        False,
    )
    assert (stored["closeDate"], stored["fiscalQuarter"], stored["fiscalYear"]) == ("2026-12-15", 4, 2026)
    assert stored["stage"] in {"Lead in", "Negotiation", "Contract sent"}
    [stored_role] = world.mk.state(roles=1)["roles"]
    assert (stored_role["leadId"], stored_role["role"], stored_role["isPrimary"]) == (
        lead_id,
        "Default Role",
        True,
    )

    [skipped] = sync.deal_to_opportunity(sync.pipedrive.get("deals", deals[1]))
    assert skipped.outcome.error_code == "PIPELINE_NOT_SYNCED"

    sync.pipedrive.update("deals", deals[0], {"status": "won"})
    roles_before = world.mk.state(roles=1)["roles"]
    [opp2, role2] = sync.deal_to_opportunity(sync.pipedrive.get("deals", deals[0]))
    assert (opp2.status, opp2.step, role2.status) == ("updated", "externalOpportunityId", "skipped")
    assert {"isClosed": True, "isWon": True}.items() <= opp2.written.items()
    assert world.mk.state(roles=1)["roles"] == roles_before  # the role was not rewritten
    assert len(world.mk.state(opportunities=1)["opportunities"]) == 1


def test_deals_go_in_batches_and_one_refused_role_fails_only_itself(world: World) -> None:
    sync = world.sync()
    nx = sync.pipedrive.pipeline_ids([NX])[NX]
    leads = [seed_lead(world, email=f"c{i}@example.com", company=None) for i in range(2)]
    contacts = [{"name": f"Contact {i}", "custom": {"marketoid": str(lead)}} for i, lead in enumerate(leads)]
    contacts.append({"name": "Lead gone", "custom": {"marketoid": "999999"}})  # no such lead
    persons = world.pd.seed({"persons": contacts})["persons"]
    deal_bodies = [
        {"title": f"Deal {i}", "value": 100 * (i + 1), "pipeline_id": nx, "person_id": person}
        for i, person in enumerate([*persons, None])
    ]
    deals = world.pd.seed({"deals": deal_bodies})["deals"]
    records = [sync.pipedrive.get("deals", d) for d in deals]
    world.reset_calls()
    results = {r.outcome.key: r for r in sync.deals_to_opportunities(records)}
    assert [results[f"deal:{d}"].status for d in deals] == ["created"] * 4
    assert [results[f"role:{d}"].status for d in deals[:2]] == ["created"] * 2
    refused = results[f"role:{deals[2]}"].outcome
    assert (refused.status, refused.error_code) == (Status.REJECTED, "1004")
    assert f"role:{deals[3]}" not in results  # no contact, no role
    # Four deals: one list read of their contacts, one opportunity query and upsert, one role
    # query and upsert - not two or three calls per deal.
    assert routes(world.pd, "GET", "/api/v2/persons") == 1
    assert routes(world.mk, "opportunities.json") == 2
    assert routes(world.mk, "opportunities/roles.json") == 2
    assert len(world.mk.state(opportunities=1)["opportunities"]) == 4

    sync.pipedrive.update("deals", deals[1], {"status": "won"})
    records = [sync.pipedrive.get("deals", d) for d in deals]
    again = {r.outcome.key: r.status for r in world.sync().deals_to_opportunities(records)}
    assert again[f"deal:{deals[1]}"] == "updated"
    assert [again[f"deal:{d}"] for d in (deals[0], deals[2], deals[3])] == ["skipped"] * 3
    assert again[f"role:{deals[0]}"] == "skipped"


def test_deals_wait_for_the_reset_when_pipedrive_budget_runs_out_reading_their_contacts(world: World) -> None:
    sync = world.sync()
    nx = sync.pipedrive.pipeline_ids([NX])[NX]
    person = world.pd.seed({"persons": [{"name": "Jo Doe"}]})["persons"][0]
    deals = world.pd.seed(
        {"deals": [{"title": f"D{i}", "pipeline_id": nx, "person_id": person} for i in range(3)]}
    )
    records = [sync.pipedrive.get("deals", d) for d in deals["deals"]]
    world.pd.faults([{"method": "GET", "path": r"/api/v2/persons$", "daily_limit_exhausted": True}])
    results = sync.deals_to_opportunities(records)
    assert {(r.outcome.status, r.outcome.error_code) for r in results} == {(Status.PARKED, "QUOTA_EXHAUSTED")}
    assert len(results) == 3
    assert world.mk.state(opportunities=1)["opportunities"] == []


# ---- deletes both ways --------------------------------------------------------------------------


def test_deleted_person_marks_the_lead_to_delete(world: World) -> None:
    person_id = seed_person(world)
    lead_id = seed_lead(world, pipedriveId=person_id, company=None)
    sync = world.sync()
    sync.pipedrive.delete("persons", person_id)
    result = sync.person_deleted(person_id)
    assert (result.status, result.step) == ("deleted", "pipedriveId")
    assert world.lead(lead_id)["toDelete"] is True
    assert sync.person_deleted(person_id).status == "skipped"


def test_deleted_lead_removes_the_person_and_a_410_is_fine(world: World) -> None:
    lead_id = seed_lead(world, company=None)
    person_id = world.pd.seed({"persons": [{"name": "Jo Doe", "custom": {"marketoid": str(lead_id)}}]})[
        "persons"
    ][0]
    sync = world.sync()
    result = sync.lead_deleted(lead_id, pipedrive_id=person_id)
    assert (result.status, result.outcome.action) == ("deleted", Action.DELETE)
    assert world.pd_records("persons") == []
    again = sync.lead_deleted(lead_id, pipedrive_id=person_id)
    assert again.outcome.status is Status.SKIPPED
