"""The Marketo <-> Pipedrive mapping files: they load, map realistic records, refuse mistakes."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from crm_sync.exceptions import MappingError, RecordRejected
from crm_sync.integrations.marketo_pipedrive.mappings import DEFAULT_DIR, load_mapping_set
from crm_sync.sync.adapters import lookup_tables
from crm_sync.sync.mapping import MappingFileError, changed_fields

USERS = {"Ann Smith": 1001, "Sync Bot": 208823}

LEAD = {
    "id": 4242,
    "email": " Jo.Doe@Example.COM ",
    "firstName": "Jo",
    "lastName": "Doe",
    "title": "CTO",
    "phone": None,
    "mobilePhone": "+14155550123",
    "company": "Example Ltd",
    "website": "https://www.example.com/about",
    "inferredCountry": None,
    "leadCountry": "fr",
    "leadOwnerFirstName": "Ann",
    "leadOwnerLastName": "Smith",
    "lastInterestingMomentDesc": "Downloaded the pricing sheet",
    "pipedriveId": 77,
}
PERSON = {  # a v2 person as records.flatten shows it
    "id": 77,
    "name": "Jo Doe",
    "first_name": "Jo",
    "last_name": "Doe",
    "email": "jo.doe@example.com",
    "phone": "+14155550123",
    "job_title": "CTO",
    "org_id": 5,
    "org_name": "Example Ltd",
    "marketoid": "4242",
    "active_flag": True,
}
DEAL = {
    "id": 31,
    "title": "Example - 50 seats",
    "value": 12000,
    "probability": 60,
    "status": "won",
    "stage_name": "Negotiation",
    "close_time": "2026-11-03T09:30:00Z",
    "expected_close_date": "2026-12-31",
    "org_id": 5,
    "add_time": "2026-10-01T08:00:00Z",
    "person_marketoid": "4242",
    "person_job_title": None,
}


@pytest.fixture(scope="module")
def mappings():
    return load_mapping_set()


def test_lead_to_person_and_back(mappings) -> None:
    with lookup_tables(pipedrive_users=USERS):
        person = mappings.lead_to_person.apply(LEAD)
    assert person == {
        "name": "Jo Doe",
        "email": "jo.doe@example.com",
        "phone": "+14155550123",
        "job_title": "CTO",
        "owner_id": 1001,
        "inferred_country": "France",
        "marketoid": "4242",
    }
    lead = mappings.person_to_lead.apply(PERSON)
    assert lead == {
        "firstName": "Jo",
        "lastName": "Doe",
        "email": "jo.doe@example.com",
        "phone": "+14155550123",
        "title": "CTO",
        "company": "Example Ltd",
        "pipedriveId": 77,
        "toDelete": False,
    }
    # The round trip changes nothing on the lead it started from: no echo at field level.
    assert changed_fields(lead, {**LEAD, "email": "jo.doe@example.com", "phone": "+14155550123",
                                 "toDelete": False}) == {}  # fmt: skip


def test_defaults_and_fallback_owner(mappings) -> None:
    bare = {"id": 1, "leadOwnerFirstName": "Nobody", "leadOwnerLastName": "Known"}
    with lookup_tables(pipedrive_users=USERS):
        person = mappings.lead_to_person.apply(bare)
    assert person["name"] == "Unknown Unknown"
    assert person["owner_id"] == 208823
    lead = mappings.person_to_lead.apply({"id": 9, "active_flag": False})
    assert lead["email"] == "unknown@unknown.com"
    assert lead["toDelete"] is True
    org = mappings.lead_to_organization.apply({"id": 1})
    assert org == {"name": "Default organization name", "email_domain": None}
    assert mappings.deal_to_opportunity.apply({"id": 3})["name"] == "Default opportunity name"


def test_lead_company_as_organization(mappings) -> None:
    assert mappings.lead_to_organization.apply(LEAD) == {"name": "Example Ltd", "email_domain": "example.com"}
    assert mappings.lead_to_organization.no_clobber_fields == frozenset({"email_domain"})


def test_organization_to_company(mappings) -> None:
    address = {"value": "1 Rue X, Paris", "locality": "Paris", "postal_code": "75001", "country": "FR"}
    org = {"id": 5, "name": "Example Ltd", "email_domain": "example.com", "address": address}
    assert mappings.organization_to_company.apply(org) == {
        "externalCompanyId": "pd-organization-5",
        "company": "Example Ltd",
        "website": "example.com",
        "billingStreet": "1 Rue X, Paris",
        "billingCity": "Paris",
        "billingPostalCode": "75001",
        "billingCountry": "France",
    }


def test_deal_to_opportunity_status_dates_and_fiscal_period(mappings) -> None:
    opp = mappings.deal_to_opportunity.apply(DEAL)
    assert opp == {
        "externalOpportunityId": "pd-deal-31",
        "name": "Example - 50 seats",
        "amount": 12000.0,
        "probability": 60,
        "stage": "Negotiation",
        "isClosed": True,
        "isWon": True,
        "closeDate": "2026-11-03",
        "fiscalQuarter": 4,
        "fiscalYear": 2026,
        "externalCompanyId": "pd-organization-5",
        "externalCreatedDate": "2026-10-01T08:00:00+00:00",
    }
    open_deal = mappings.deal_to_opportunity.apply({**DEAL, "status": "open", "close_time": None})
    assert (open_deal["isClosed"], open_deal["isWon"], open_deal["closeDate"]) == (False, False, "2026-12-31")
    lost = mappings.deal_to_opportunity.apply({**DEAL, "status": "lost"})
    assert (lost["isClosed"], lost["isWon"]) == (True, False)
    with pytest.raises(RecordRejected) as info:
        mappings.deal_to_opportunity.apply({**DEAL, "status": "archived"})
    assert (info.value.code, info.value.field) == ("LOOKUP_MISS", "isClosed")


def test_deal_to_opportunity_role(mappings) -> None:
    role = mappings.deal_to_opportunity_role.apply(DEAL)
    assert role == {
        "externalOpportunityId": "pd-deal-31",
        "leadId": 4242,
        "role": "Default Role",
        "isPrimary": True,
    }
    titled = mappings.deal_to_opportunity_role.apply({**DEAL, "person_job_title": "Champion"})
    assert titled["role"] == "Champion"
    with pytest.raises(RecordRejected) as info:
        mappings.deal_to_opportunity_role.apply({**DEAL, "person_marketoid": None})
    assert (info.value.code, info.value.field) == ("REQUIRED_FIELD_MISSING", "leadId")


def test_lead_to_activity(mappings) -> None:
    with lookup_tables(pipedrive_users=USERS):
        activity = mappings.lead_to_activity.apply({**LEAD, "run_date": date(2026, 11, 25)})
    assert activity == {
        "subject": "Follow up with Jo Doe",
        "type": "call",
        "note": "Downloaded the pricing sheet",
        "due_date": "2026-11-25",
        "person_id": 77,
        "owner_id": 1001,
    }


def test_pipedrive_names_to_resolve(mappings) -> None:
    names = mappings.pipedrive_names()
    assert {"marketoid", "inferred_country", "owner_id", "email"} <= names["persons"]
    assert {"email_domain", "address", "name"} <= names["organizations"]
    assert {"title", "status", "close_time"} <= names["deals"]
    assert "run_date" not in names["activities"]


def test_a_file_with_mistakes_is_refused_with_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "maps"
    shutil.copytree(DEFAULT_DIR, folder)
    broken = folder / "deal_to_opportunity.yaml"
    lines = broken.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if "post_adapter: to_float" in text)
    lines[line] = lines[line].replace("post_adapter: to_float", "post_adaptor: to_flaot")
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(MappingFileError) as info:
        load_mapping_set(folder)
    assert f"{broken}:{line + 1}:" in str(info.value)
    assert "post_adapter" in str(info.value)


def test_a_missing_mapping_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "maps"
    shutil.copytree(DEFAULT_DIR, folder)
    (folder / "lead_to_activity.yaml").unlink()
    with pytest.raises(MappingError, match=r"marketo_pipedrive\.lead_to_activity"):
        load_mapping_set(folder)
