"""The Python statement of the AOU row rules."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from crm_sync.integrations.aou.source import load_sql
from crm_sync.integrations.aou.transforms import (
    CONTACT_FIELDS,
    JOURNEY_COLUMNS,
    JOURNEY_FIELDS,
    STATE_NAMES,
    contact_from_base,
    flag,
    format_date,
    journey_from_base,
    normalise_email,
    normalise_phone,
    normalise_text,
    redcap_flag,
    state_name,
)


def test_state_table_covers_states_dc_and_territories():
    assert len(STATE_NAMES) == 62
    fifty = set(STATE_NAMES) - {"DC", "AS", "GU", "MP", "PR", "VI", "FM", "MH", "PW", "AA", "AE", "AP"}
    assert len(fifty) == 50
    assert STATE_NAMES["AK"] == "ALASKA"  # missing from the seed's CASE
    assert all(name == name.upper().strip() for name in STATE_NAMES.values())  # the seed padded five names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("NY", "NEW YORK"),
        ("ny", "NEW YORK"),
        (" nj ", "NEW JERSEY"),
        ("Pr", "PUERTO RICO"),
        ("DC", "DISTRICT OF COLUMBIA"),
        ("XX", ""),
        ("N.Y.", ""),
        ("New York", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_state_name(raw, expected):
    assert state_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (date(2019, 3, 4), "2019-03-04"),
        (datetime(2019, 3, 4, 10, 30), "2019-03-04"),
        ("2019-03-04", "2019-03-04"),
        (date(1900, 1, 1), ""),
        ("1900-01-01", ""),
        (None, ""),
        (date(1900, 1, 2), "1900-01-02"),
    ],
)
def test_format_date(raw, expected):
    assert format_date(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("  Jane.DOE@Example.COM ", "jane.doe@example.com"), ("a@b.org", "a@b.org"), (None, ""), ("   ", "")],
)
def test_normalise_email(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2125550100", "(212) 555-0100"),
        ("212-555-0100", "(212) 555-0100"),
        ("(212) 555-0100", "(212) 555-0100"),
        ("212.555.0100", "(212) 555-0100"),
        ("+1 212 555 0100", "(212) 555-0100"),
        ("1-212-555-0100", "(212) 555-0100"),
        (" 212 555 0100 ", "(212) 555-0100"),
        ("212/555-0100", "(212) 555-0100"),
        ("555-0100", ""),  # no area code
        ("212-555-0100 x12", ""),  # extension
        ("2-212-555-0100", ""),  # eleven digits, not the country code
        ("012-555-0100", ""),  # area code may not start with 0
        ("212-155-0100", ""),  # nor the exchange with 1
        ("000-000-0000", ""),
        ("n/a", ""),
        ("212\t555\t0100", ""),  # a tab is not a separator
        (
            "\uff12\uff11\uff12\uff15\uff15\uff15\uff10\uff11\uff10\uff10",
            "",
        ),  # full-width digits are not digits here
        ("", ""),
        (None, ""),
    ],
)
def test_normalise_phone(raw, expected):
    assert normalise_phone(raw) == expected


def test_normalise_phone_is_idempotent():
    for raw in ("2125550100", "+1 (646) 200-1234", "917.999.0000"):
        once = normalise_phone(raw)
        assert once
        assert normalise_phone(once) == once


def test_text_and_flags():
    assert normalise_text(None) == ""
    assert normalise_text("  a b  ") == "a b"
    assert normalise_text("\tx") == "\tx"  # SQL TRIM removes spaces only
    assert (flag(1), flag(0), flag(None), flag(2)) == (1, 0, 0, 0)
    assert (redcap_flag(1), redcap_flag(0), redcap_flag(None)) == ("1", "0", "")


def test_field_lists_match_the_seed():
    assert len(CONTACT_FIELDS) == 24  # the seed's 25 minus Id
    # The seed's 33 journey fields less 4 biospecimens the Opportunity has no field for,
    # with Medications replaced by Personal Medical History, as the org's Opportunity has it.
    assert len(JOURNEY_COLUMNS) == 29
    assert JOURNEY_FIELDS[0] == "HP_PMI_ID__c"
    assert len(set(JOURNEY_FIELDS)) == len(JOURNEY_FIELDS)


@pytest.mark.parametrize(
    ("sobject", "fields"), [("Contact", CONTACT_FIELDS), ("Opportunity", JOURNEY_FIELDS)]
)
def test_fields_exist_on_the_salesforce_objects(sobject, fields):
    path = Path(__file__).resolve().parents[3] / "sandbox" / "salesforce" / "schema" / f"{sobject}.yaml"
    if not path.is_file():
        pytest.skip(f"{path.name} not in this checkout")
    described = {field["name"] for field in yaml.safe_load(path.read_text())["fields"]}
    assert set(fields) <= described, sorted(set(fields) - described)


def test_sql_files_name_the_same_fields_and_states():
    for dialect, quote in (("portable", '"{}"'), ("mssql", "[{}]")):
        contact = load_sql(dialect, "aou_contact_source")
        journeys = load_sql(dialect, "journeys")
        for field in CONTACT_FIELDS:
            if field != "AccountId":
                assert f"AS {quote.format(field)}" in contact
        for field in JOURNEY_FIELDS:
            assert quote.format(field) in journeys
        pairs = dict(re.findall(r"WHEN '([A-Z]{2})' THEN '([A-Z ]+)'", contact))
        assert pairs == dict(STATE_NAMES)


def _base_row(**overrides):
    hp = {column: None for _, column, _ in JOURNEY_COLUMNS}
    hp.update(
        {
            "PMI ID": "P1",
            "Last Name": " Roe",
            "First Name": "Ann",
            "Date of Birth": "1900-01-01",
            "Street Address": "1 Main St",
            "City": "Bronx",
            "State": "ny",
            "ZIP": "10451",
            "Email": " A@B.COM",
            "Phone": "718.555.0199",
            "Sex": None,
            "Gender Identity": "Woman",
            "Race/Ethnicity": None,
            "Language": "Spanish",
            "DV Enrollment": 1,
            "Withdrawal Status": 1,
            "Withdrawal Date": date(2022, 1, 5),
        }
    )
    rc = dict.fromkeys(
        (
            "record_id",
            "aou_enroller",
            "spec_provider",
            "other_details",
            "tech_asst",
            "learn_aou",
            "tech_asst_other",
            "clinical_outreach_name",
        )
    )
    row = {f"{k}_HP": v for k, v in hp.items()} | {f"{k}_RC": v for k, v in rc.items()}
    row.update(overrides)
    return row


def test_contact_from_base():
    contact = contact_from_base(_base_row(record_id_RC=12, tech_asst_RC=0), account_id="001X")
    assert list(contact) == [*CONTACT_FIELDS, "withdrawn"]
    assert contact["LastName"] == "Roe"
    assert contact["Birthdate"] == ""
    assert contact["MailingState"] == "NEW YORK"
    assert contact["Email"] == "a@b.com"
    assert contact["Phone"] == "(718) 555-0199"
    assert contact["HP_Sex__c"] == ""
    assert contact["AccountId"] == "001X"
    assert contact["CH_REDCap_Record_ID__c"] == "12"
    assert contact["CH_Technical_Assistance_Required__c"] == "0"
    assert contact["CH_Specify_clinical_outreach__c"] == ""
    assert (contact["DV_Enrollment__c"], contact["withdrawn"]) == (1, 1)


def test_journey_from_base():
    journey = journey_from_base(_base_row())
    assert list(journey) == list(JOURNEY_FIELDS)
    assert journey["HP_Withdrawal_Status__c"] == 1
    assert journey["HP_Withdrawal_Date__c"] == "2022-01-05"
    assert journey["HP_General_Consent_Status__c"] == 0
    assert journey["HP_Participant_Status__c"] == ""
    assert journey["HP_1SAL_Collection_Date__c"] == ""
