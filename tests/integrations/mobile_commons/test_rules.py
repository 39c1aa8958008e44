"""The Mobile Commons sync's rules without Airflow: configuration, the field-mapping table,
the shared quota and the synchronization report, on real staging databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_sync.exceptions import ConfigurationError
from crm_sync.integrations.mobile_commons import categories as cat
from crm_sync.integrations.mobile_commons.config import MobileCommonsConfig
from crm_sync.integrations.mobile_commons.fieldmap import ProfileMap
from crm_sync.integrations.mobile_commons.report import build_report, render_html, render_markdown
from crm_sync.integrations.mobile_commons.runtime import NIGHTLY, OPTINS, QUOTA_API, take
from crm_sync.sync.ledger import apply_outcomes
from crm_sync.sync.quota import QuotaBudget
from crm_sync.sync.records import Action, Outcome, Status
from crm_sync.sync.staging import make_engine

SF_ID = "0035g00000AbCdEAAZ"


def record(**fields: Any) -> dict[str, Any]:
    base = {
        "Id": SF_ID,
        "FirstName": "Ann",
        "LastName": "Lee",
        "MobilePhone": "(212) 555-0101",
        "Email": " Ann@Example.org ",
        "MailingStreet": "1 Main St\nApt 4\nRear",
        "MailingCity": "New York",
        "Mobile_Subscriber__c": True,
    }
    return {**base, **fields}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sync_type": "eager"}, "liberal or conservative"),
        ({"source": "report", "report_url": "/00O5g000001abcd"}, "xf=csv"),
        ({"required_fields": ["phone_number"]}, "must not list ['phone_number']"),
        ({"optin_field": "Mobile Subscriber"}, "Salesforce API name"),
        ({"daily_quota": -1}, "daily_quota"),
        ({"typo": 1}, "unknown Mobile Commons setting(s) 'typo'"),
        ({"group_paths": {"A": "101"}}, "group_paths['A']"),
    ],
)
def test_bad_configuration_is_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        MobileCommonsConfig.from_mapping(values)


def test_vendor_defaults() -> None:
    config = MobileCommonsConfig()
    assert (config.default_first_name, config.default_last_name, config.source_code) == (
        "Contact",
        "",
        "Mobile Commons",
    )
    assert config.daily_quota is None  # blank: unlimited
    assert config.path_for("Volunteers") is None
    routed = MobileCommonsConfig.from_mapping({"default_opt_in_path_id": 1, "group_paths": {"Volunteers": 2}})
    assert (routed.path_for("Volunteers"), routed.path_for("Other"), routed.path_for(None)) == (2, 1, 1)


def test_mapping_shapes_a_salesforce_record() -> None:
    payload = ProfileMap(MobileCommonsConfig()).shape(record(), SF_ID)
    assert payload == {
        "key": SF_ID,
        "phone_number": "+12125550101",
        "first_name": "Ann",
        "last_name": "Lee",
        "email": "ann@example.org",
        "street1": "1 Main St",
        "street2": "Apt 4, Rear",
        "city": "New York",
        "state": None,
        "postal_code": None,
        "country": None,
        "opt_in": True,
        "group": None,
    }


def test_mapping_reads_csv_headings_and_default_names() -> None:
    config = MobileCommonsConfig.from_mapping(
        {"default_first_name": "Friend", "default_last_name": "Supporter"}
    )
    row = {
        "Contact ID": SF_ID,
        "Mobile Phone": "+44 20 7946 0958",
        "First Name": None,
        "Mobile Subscriber": "1",
    }
    payload = ProfileMap(config).shape(row, SF_ID)
    assert (payload["phone_number"], payload["first_name"], payload["last_name"], payload["opt_in"]) == (
        "+442079460958",
        "Friend",
        "Supporter",
        True,
    )


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"MobilePhone": None}, "phone_number", "no mobile number"),
        ({"MobilePhone": "12"}, "phone_number", "INVALID_PHONE"),
        ({"MailingCity": " "}, "city", "REQUIRED_FIELD_MISSING"),
    ],
)
def test_records_that_cannot_be_imported_are_marked(fields: dict[str, Any], field: str, reason: str) -> None:
    pmap = ProfileMap(MobileCommonsConfig.from_mapping({"required_fields": ["city"]}))
    skip = pmap.shape(record(**fields), SF_ID)["skip"]
    assert (skip["category"], skip["field"]) == (cat.NO_IMPORT, field)
    assert reason in skip["message"]
    assert "212" not in skip["message"]  # never the value


def test_conservative_keeps_opted_in_records_only() -> None:
    conservative = ProfileMap(MobileCommonsConfig.from_mapping({"sync_type": "conservative"}))
    liberal = ProfileMap(MobileCommonsConfig())
    opted_out = record(Mobile_Subscriber__c=False)
    assert conservative.excluded(conservative.shape(opted_out, SF_ID))
    assert not conservative.excluded(conservative.shape(record(), SF_ID))
    assert not liberal.excluded(liberal.shape(opted_out, SF_ID))


def test_opt_in_field_name_is_configurable() -> None:
    pmap = ProfileMap(MobileCommonsConfig.from_mapping({"optin_field": "SMS_Opt_In__c"}))
    assert "SMS_Opt_In__c" in pmap.api_names
    assert pmap.shape(record(SMS_Opt_In__c=False), SF_ID)["opt_in"] is False


def test_report_header_must_have_the_key_phone_email_and_opt_in() -> None:
    pmap = ProfileMap(MobileCommonsConfig())
    pmap.check_header(["Contact ID", "Mobile Phone", "Email", "Mobile Subscriber"], "Contact ID")
    with pytest.raises(ConfigurationError, match=r"\['Contact ID', 'Email'\]"):
        pmap.check_header(["Mobile Phone", "Mobile Subscriber"], "Contact ID")


def test_quota_is_shared_and_granted_in_part(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    nightly = QuotaBudget(engine, QUOTA_API, daily_limit=5)
    optins = QuotaBudget(engine, QUOTA_API, daily_limit=5)
    assert take(nightly, 3) == 3
    assert take(optins, 4) == 2  # only two left today, whoever asks
    assert take(nightly, 1) == 0
    assert take(QuotaBudget(engine, QUOTA_API, daily_limit=None), 1000) == 1000


def _outcome(
    key: str, status: Status, code: str | None, action: Action = Action.CREATE, **extra: Any
) -> Outcome:
    return Outcome(key=key, action=action, status=status, error_code=code, **extra)


def test_report_counts_categories_with_details(staging_url: str) -> None:
    engine = make_engine(staging_url)
    apply_outcomes(
        engine,
        run_id="night",
        integration=NIGHTLY,
        entity="profile",
        outcomes=[
            _outcome("003A", Status.SUCCESS, None, target_id="1001"),
            _outcome("003B", Status.SUCCESS, None, Action.UPDATE, target_id="1002"),
            _outcome("003C", Status.PARKED, "QUOTA_EXHAUSTED"),
            _outcome("003D", Status.SKIPPED, cat.NO_IMPORT, field="phone_number", message="no mobile number"),
            _outcome("003E", Status.REJECTED, cat.UNABLE_TO_UPDATE, message="MC_19: <b>bad</b> | path"),
        ],
    )
    apply_outcomes(
        engine,
        run_id="five",
        integration=OPTINS,
        entity="optin",
        outcomes=[
            _outcome("1003", Status.SKIPPED, cat.NO_EXPORT),
            _outcome("1004", Status.FAILED, "NO_OUTCOME"),
        ],
    )
    report = build_report(engine)
    assert dict(report.counts) == {
        "created": 1,
        "updated": 1,
        "deferred_subscription": 1,
        "no_import": 1,
        "unable_to_update": 1,
        "no_export": 1,
        "processing_error": 1,
    }
    markdown = render_markdown(report)
    assert "| No Export (missing email) | 1 |" in markdown
    assert "| Salesforce -> Mobile Commons | 003D |  | phone_number | no mobile number |" in markdown
    assert "<b>bad</b> / path" in markdown  # a pipe never breaks the table
    assert "&lt;b&gt;bad&lt;/b&gt;" in render_html(report)  # escaped in HTML
    assert build_report(engine, end=datetime.now(UTC) + timedelta(days=2)).counts == {}  # older than 24 h
