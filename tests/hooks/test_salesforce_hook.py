"""SalesforceSyncHook: pure helpers, then the contract against the emulator over real HTTPS.

The connection comes from AIRFLOW_CONN_SALESFORCE_DEFAULT (tests/hooks/conftest.py); faults,
limits and lock contention are injected through the emulator's admin API.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from crm_sync.exceptions import AuthError, ConfigurationError, QuotaExhausted
from crm_sync.hooks import soql
from crm_sync.hooks.salesforce import SalesforceSyncHook
from crm_sync.hooks.salesforce_auth import SalesforceSettings
from crm_sync.hooks.salesforce_bulk import Bulk2, PollPolicy, build_csv_batches, read_csv
from crm_sync.hooks.salesforce_query import RowShaper, coerce, parse_query
from crm_sync.hooks.salesforce_records import prepare_rows
from crm_sync.hooks.salesforce_types import RecordResult, SObjectDescription, parse_sf_error, to_wire
from crm_sync.http import HttpPolicy
from crm_sync.sync.quota import QuotaBudget
from crm_sync.sync.records import Action, Change, Status
from crm_sync.sync.staging import make_engine

FAST_HTTP = HttpPolicy(backoff_factor=0.01, backoff_max=0.05, backoff_jitter=0.0, read_timeout=20)
UPSERT = "composite/sobjects/{sobject}/{field}"
FAST_POLL = PollPolicy(first=0.05, factor=2.0, cap=0.4, max_wait=30)


# ---- pure helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --",
            ("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ("LastName",)),
        ),
        (
            "DUPLICATE_VALUE:duplicate value found: HP_PMI_ID__c duplicates value on record with id: 003x: --",  # noqa: E501
            (
                "DUPLICATE_VALUE",
                "duplicate value found: HP_PMI_ID__c duplicates value on record with id: 003x",
                (),
            ),
        ),
        (
            "STRING_TOO_LONG:First Name: data value too large:FirstName,LastName --",
            ("STRING_TOO_LONG", "First Name: data value too large", ("FirstName", "LastName")),
        ),
        ("something odd", ("UNKNOWN_ERROR", "something odd", ())),
    ],
)
def test_parse_sf_error(text: str, expected: tuple[str, str, tuple[str, ...]]) -> None:
    assert parse_sf_error(text) == expected


def test_csv_batches_quote_clear_and_leave_fields() -> None:
    rows = [
        ("K1", {"HP_PMI_ID__c": "K1", "LastName": 'O"Neil, Jr.', "Email": None}),
        ("K2", {"HP_PMI_ID__c": "K2", "LastName": "two\nlines", "DV_Enrollment__c": True}),
    ]
    [(payload, keys)] = list(build_csv_batches(rows, "HP_PMI_ID__c"))
    assert keys == ["K1", "K2"]
    parsed = read_csv(payload)
    assert parsed == [
        {"HP_PMI_ID__c": "K1", "LastName": 'O"Neil, Jr.', "Email": "#N/A", "DV_Enrollment__c": ""},
        {"HP_PMI_ID__c": "K2", "LastName": "two\nlines", "Email": "", "DV_Enrollment__c": "true"},
    ]


def test_csv_batches_split_under_the_size_limit() -> None:
    rows = [(f"K{i:04d}", {"HP_PMI_ID__c": f"K{i:04d}", "LastName": "x" * 50}) for i in range(100)]
    batches = list(build_csv_batches(rows, "HP_PMI_ID__c", max_bytes=1000))
    assert len(batches) > 5
    assert all(len(payload) <= 1000 for payload, _ in batches)
    assert [k for _, keys in batches for k in keys] == [k for k, _ in rows]
    assert all(read_csv(payload)[0]["HP_PMI_ID__c"] == keys[0] for payload, keys in batches)
    with pytest.raises(ValueError, match="alone exceeds"):
        list(build_csv_batches(rows[:1], "HP_PMI_ID__c", max_bytes=40))


def test_prepare_rows_rejects_before_sending() -> None:
    records = [
        {"HP_PMI_ID__c": "A", "LastName": "a"},
        {"LastName": "no key"},
        {"HP_PMI_ID__c": "B", "LastName": "b1"},
        {"HP_PMI_ID__c": "B", "LastName": "b2"},
        {"HP_PMI_ID__c": "C", "Bogus__c": 1},
        {"HP_PMI_ID__c": "D", "LastName": object()},
    ]
    keys, early, rows = prepare_rows(
        records,
        key_field="HP_PMI_ID__c",
        key_of=lambda r: r.get("HP_PMI_ID__c"),
        duplicate_code="DUPLICATE_EXTERNAL_ID",
        field_ok=lambda name, _value: name != "Bogus__c",
    )
    assert keys == ["A", "", "B", "B", "C", "D"]
    assert [k for k, _ in rows] == ["A"]
    assert {i: r.error_code for i, r in early.items()} == {
        1: "REQUIRED_FIELD_MISSING",
        2: "DUPLICATE_EXTERNAL_ID",
        3: "DUPLICATE_EXTERNAL_ID",
        4: "INVALID_FIELD",
        5: "INVALID_VALUE",
    }
    assert early[4].fields == ("Bogus__c",)
    _, early_ids, _ = prepare_rows(
        [{"Id": "003000000000001"}, {"Id": "003000000000001AAb"}],
        key_field="Id",
        key_of=lambda r: r.get("Id"),
        duplicate_code="X",
        ids=True,
    )
    assert [r.error_code for r in early_ids.values()] == ["MALFORMED_ID"]


def test_rest_and_csv_rows_get_the_same_shape() -> None:
    parsed = parse_query(
        "SELECT Id, Account.Name, DV_Enrollment__c, CreatedDate, Amount__c, n__c FROM Contact"
    )
    contact = SObjectDescription.from_json(
        {
            "name": "Contact",
            "fields": [
                {"name": "Id", "type": "id"},
                {
                    "name": "AccountId",
                    "type": "reference",
                    "relationshipName": "Account",
                    "referenceTo": ["Account"],
                },
                {"name": "DV_Enrollment__c", "type": "boolean"},
                {"name": "CreatedDate", "type": "datetime"},
                {"name": "Amount__c", "type": "currency"},
                {"name": "n__c", "type": "int"},
            ],
        }
    )
    account = SObjectDescription.from_json(
        {"name": "Account", "fields": [{"name": "Name", "type": "string"}]}
    )
    shaper = RowShaper.build(parsed, {"Contact": contact, "Account": account}.__getitem__)
    rest = {
        "attributes": {"type": "Contact"},
        "Id": "003A",
        "Account": None,
        "DV_Enrollment__c": False,
        "CreatedDate": "2024-01-31T10:00:00.000+0000",
        "Amount__c": 5,
        "n__c": 7,
    }
    csv_row = {
        "Id": "003A",
        "Account.Name": "",
        "DV_Enrollment__c": "false",
        "CreatedDate": "2024-01-31T10:00:00.000Z",
        "Amount__c": "5.0",
        "n__c": "7",
    }
    expected = {
        "Id": "003A",
        "Account.Name": None,
        "DV_Enrollment__c": False,
        "CreatedDate": "2024-01-31T10:00:00.000Z",
        "Amount__c": 5.0,
        "n__c": 7,
    }
    assert shaper.from_rest(rest) == expected
    assert shaper.from_csv(csv_row) == expected
    assert list(shaper.from_rest(rest)) == list(expected)


def test_parse_query_and_coerce() -> None:
    parsed = parse_query("select Id, Name, (SELECT Id FROM Contacts) from Account where Name = 'a, FROM b'")
    assert parsed.sobject == "Account"
    assert [c.path for c in parsed.columns] == ["Id", "Name", None]
    assert not parsed.bulk_ok
    assert parse_query("SELECT COUNT() FROM Contact").bulk_ok is False
    assert parse_query("SELECT Id FROM Contact WHERE Name = 'GROUP BY'").bulk_ok is False  # conservative
    with pytest.raises(ValueError, match="SELECT"):
        parse_query("DELETE FROM Contact")
    assert coerce("true", "boolean") is True
    assert coerce("", "string") is None
    assert coerce("12", "double") == 12.0
    assert coerce("2024-01-31T10:00:00+01:00", "datetime") == "2024-01-31T09:00:00.000Z"


def test_record_result_flags() -> None:
    assert RecordResult.failure("k", "QUOTA_EXHAUSTED", "x").parked
    assert RecordResult.failure("k", "UNABLE_TO_LOCK_ROW", "x").transient
    assert not RecordResult.failure("k", "STRING_TOO_LONG", "x").transient


def test_settings_pick_the_auth_flow_and_hide_secrets() -> None:
    extras = {
        "security_token": "TOK",
        "client_id": "cid",
        "consumer_secret": "sec",
        "login_url": "https://x.test/",
        "bulk_threshold": "500",
        "api_daily_limit": 9000,
        "domain": "",
    }
    settings = SalesforceSettings.from_connection("user@x", "pw", extras)
    assert settings.uses_own_oauth
    assert settings.token_url == "https://x.test/services/oauth2/token"
    data, basic = settings.token_request()
    assert data == {
        "grant_type": "password",
        "client_id": "cid",
        "client_secret": "sec",
        "username": "user@x",
        "password": "pwTOK",
    }
    assert basic is None
    assert (settings.bulk_threshold, settings.api_daily_limit) == (500, 9000)
    assert "pw" not in repr(settings)
    assert "TOK" not in repr(settings)
    assert "sec" not in repr(settings)

    client = SalesforceSettings.from_connection(
        None, None, {"consumer_key": "cid", "consumer_secret": "sec", "domain": "acme.my"}
    )
    assert client.token_url == "https://acme.my.salesforce.com/services/oauth2/token"
    assert client.token_request() == ({"grant_type": "client_credentials"}, ("cid", "sec"))
    jwt = SalesforceSettings.from_connection("u", None, {"consumer_key": "cid", "private_key": "k"})
    assert not jwt.uses_own_oauth  # JWT goes through the provider's login
    soap = SalesforceSettings.from_connection("u", "p", {"security_token": "t", "domain": "test"})
    assert not soap.uses_own_oauth
    with pytest.raises(ConfigurationError, match="bulk_threshold"):
        SalesforceSettings.from_connection("u", "p", {"bulk_threshold": "many"})


def test_csv_flattens_parent_references_and_refuses_bad_values() -> None:
    rows = [("K1", {"HP_PMI_ID__c": "K1", "Account": {"Ext__c": "A-1"}})]
    [(payload, _)] = list(build_csv_batches(rows, "HP_PMI_ID__c"))
    assert read_csv(payload) == [{"HP_PMI_ID__c": "K1", "Account.Ext__c": "A-1"}]
    assert to_wire({"Ext__c": Decimal("2")}) == {"Ext__c": 2}
    assert to_wire(datetime(2024, 1, 1, 12, tzinfo=UTC)) == "2024-01-01T12:00:00.000Z"
    with pytest.raises(ValueError, match="finite"):
        to_wire(float("nan"))
    with pytest.raises(ValueError, match="naive"):
        to_wire(datetime(2024, 1, 1))


# ---- contract against the emulator ------------------------------------------------------------


def contacts(n: int, prefix: str = "P", **extra: Any) -> list[dict[str, Any]]:
    """``n`` valid Contact records keyed by HP_PMI_ID__c."""
    return [
        {"HP_PMI_ID__c": f"{prefix}{i:07d}", "LastName": f"Last{i}", "FirstName": "Ann", **extra}
        for i in range(n)
    ]


def routes(admin: Any, method: str, path: str) -> int:
    """Calls the emulator counted on one route, e.g. ``routes(admin, "GET", "query/{locator}")``."""
    return admin.calls()["by_route"].get(f"{method} /services/data/v{{version}}/{path}", 0)


def stored(admin: Any, sobject: str = "Contact") -> dict[str, dict[str, Any]]:
    """Stored records by external id (Contact) or by Id."""
    records = admin.state(object=sobject)["records"]
    key = "HP_PMI_ID__c" if sobject == "Contact" else "Id"
    return {r[key]: r for r in records}


@pytest.fixture
def hook(sf_admin: Any) -> SalesforceSyncHook:
    return SalesforceSyncHook(poll=FAST_POLL, row_retry_backoff=0.01, http_policy=FAST_HTTP)


@pytest.mark.sandbox
def test_collections_upsert_150_is_one_write_call(hook: SalesforceSyncHook, sf_admin: Any) -> None:
    results = hook.upsert("Contact", "HP_PMI_ID__c", contacts(150))
    assert [r.key for r in results] == [c["HP_PMI_ID__c"] for c in contacts(150)]
    assert all(r.success and r.created for r in results)
    data = stored(sf_admin)
    assert len(data) == 150
    assert all(data[r.key]["Id"] == r.id for r in results)
    assert routes(sf_admin, "PATCH", UPSERT) == 1
    assert hook.api_calls["collections"] == 1
    assert hook.api_calls["auth"] == 1
    again = hook.upsert("Contact", "HP_PMI_ID__c", contacts(150))
    assert all(r.success and r.created is False for r in again)


@pytest.mark.sandbox
@pytest.mark.parametrize("bulk_threshold", [2000, 1], ids=["collections", "bulk"])
def test_validation_errors_are_per_record(sf_admin: Any, bulk_threshold: int) -> None:
    sf_admin.seed({"objects": {"Contact": [{"LastName": "Taken", "HP_PMI_ID__c": "TAKEN"}]}})
    hook = SalesforceSyncHook(poll=FAST_POLL, http_policy=FAST_HTTP, bulk_threshold=bulk_threshold)
    records = [
        {"HP_PMI_ID__c": "OK1", "LastName": "Fine"},
        {"HP_PMI_ID__c": "MISS", "FirstName": "No last name"},
        {"HP_PMI_ID__c": "LONG", "LastName": "L", "FirstName": "x" * 41},
        {"HP_PMI_ID__c": "TAKEN", "LastName": "Again"},
        {"HP_PMI_ID__c": "BADF", "LastName": "L", "Nope__c": "x"},
        {"HP_PMI_ID__c": "OK2", "LastName": "Fine too"},
    ]
    results = hook.insert("Contact", records, key_field="HP_PMI_ID__c")
    by_key = {r.key: r for r in results}
    assert [r.key for r in results] == [r["HP_PMI_ID__c"] for r in records]
    assert by_key["OK1"].success
    assert by_key["OK2"].success
    assert by_key["MISS"].error_code == "REQUIRED_FIELD_MISSING"
    assert "LastName" in by_key["MISS"].fields
    assert by_key["LONG"].error_code == "STRING_TOO_LONG"
    assert by_key["LONG"].fields == ("FirstName",)
    assert by_key["TAKEN"].error_code == "DUPLICATE_VALUE"
    assert by_key["BADF"].error_code == "INVALID_FIELD"
    assert by_key["BADF"].fields == ("Nope__c",)
    assert set(stored(sf_admin)) == {"TAKEN", "OK1", "OK2"}
    assert stored(sf_admin)["TAKEN"]["LastName"] == "Taken"


@pytest.mark.sandbox
def test_partial_failures_across_several_collections(hook: SalesforceSyncHook, sf_admin: Any) -> None:
    records = contacts(450)
    bad = {7, 199, 200, 333, 449}
    for i in bad:
        records[i]["FirstName"] = "y" * 41
    results = hook.upsert("Contact", "HP_PMI_ID__c", records)
    assert [i for i, r in enumerate(results) if not r.success] == sorted(bad)
    assert all(results[i].error_code == "STRING_TOO_LONG" for i in bad)
    assert len(stored(sf_admin)) == 445
    assert routes(sf_admin, "PATCH", UPSERT) == 3


@pytest.mark.sandbox
@pytest.mark.parametrize(
    "fault",
    [
        {
            "status": 429,
            "headers": {"Retry-After": "0"},
            "body": [
                {"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentPerOrgLongTxn Limit exceeded."}
            ],
        },
        {"status": 503, "body": [{"errorCode": "SERVER_UNAVAILABLE", "message": "try later"}]},
        {"drop": True},
    ],
    ids=["429", "503", "drop"],
)
def test_transient_call_failures_are_retried(hook: SalesforceSyncHook, sf_admin: Any, fault: dict) -> None:
    sf_admin.faults([{"method": "PATCH", "path": "/composite/sobjects/", "times": 2, **fault}])
    results = hook.upsert("Contact", "HP_PMI_ID__c", contacts(20))
    assert all(r.success for r in results)
    assert len(stored(sf_admin)) == 20
    assert hook.api_calls["collections"] == 3  # two refused attempts, then the one that worked


@pytest.mark.sandbox
def test_lost_upsert_response_is_resent_without_duplicates(hook: SalesforceSyncHook, sf_admin: Any) -> None:
    sf_admin.faults([{"method": "PATCH", "path": "/composite/sobjects/Contact/", "lost_response": True}])
    results = hook.upsert("Contact", "HP_PMI_ID__c", contacts(30))
    assert all(r.success for r in results)
    assert all(r.created is False for r in results)  # the resend found what the lost call created
    assert len(sf_admin.state(object="Contact")["records"]) == 30
    assert routes(sf_admin, "PATCH", UPSERT) == 2


@pytest.mark.sandbox
def test_lost_insert_response_is_not_resent(hook: SalesforceSyncHook, sf_admin: Any) -> None:
    sf_admin.faults([{"method": "POST", "path": "/composite/sobjects", "lost_response": True}])
    results = hook.insert("Contact", contacts(5), key_field="HP_PMI_ID__c")
    assert {r.error_code for r in results} == {"OUTCOME_UNKNOWN"}
    assert all(r.transient for r in results)
    assert routes(sf_admin, "POST", "composite/sobjects") == 1
    assert len(stored(sf_admin)) == 5  # they do exist: a blind resend would have doubled them


@pytest.mark.sandbox
def test_expired_session_reauthenticates_once_and_replays_the_same_request(
    hook: SalesforceSyncHook, sf_admin: Any
) -> None:
    hook.upsert("Contact", "HP_PMI_ID__c", contacts(3))
    sf_admin.action("expire_tokens")
    second = [{**c, "FirstName": f"Second{i}"} for i, c in enumerate(contacts(3, prefix="Q"))]
    results = hook.upsert("Contact", "HP_PMI_ID__c", second)
    assert all(r.success and r.created for r in results)
    data = stored(sf_admin)
    assert {k: data[k]["FirstName"] for k in data if k.startswith("Q")} == {
        c["HP_PMI_ID__c"]: c["FirstName"] for c in second
    }
    assert hook.api_calls["auth"] == 2
    assert routes(sf_admin, "PATCH", UPSERT) == 3  # first, refused (401), replayed


@pytest.mark.sandbox
def test_bad_credentials_fail_with_auth_error(sf_admin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    conn["password"] = "wrong-password-123"
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_BAD", json.dumps(conn))
    hook = SalesforceSyncHook("salesforce_bad", http_policy=FAST_HTTP)
    with pytest.raises(AuthError, match="invalid_grant") as caught:
        hook.upsert("Contact", "HP_PMI_ID__c", contacts(1))
    assert "wrong-password" not in str(caught.value)


@pytest.mark.sandbox
def test_query_pages_through_more_than_2000_rows_and_survives_expiry(
    hook: SalesforceSyncHook, sf_admin: Any
) -> None:
    sf_admin.seed({"objects": {"Contact": contacts(4500)}, "automation": False})
    rows = hook.query("SELECT Id, HP_PMI_ID__c, LastName FROM Contact ORDER BY HP_PMI_ID__c", bulk=False)
    first = next(rows)
    sf_admin.action("expire_tokens")
    rest = list(rows)
    assert len(rest) + 1 == 4500
    assert [r["HP_PMI_ID__c"] for r in [first, *rest]] == sorted(c["HP_PMI_ID__c"] for c in contacts(4500))
    assert list(first) == ["Id", "HP_PMI_ID__c", "LastName"]
    assert (
        routes(sf_admin, "GET", "query") + routes(sf_admin, "GET", "query/{locator}") == 4
    )  # first page, two queryMore, one replay after expiry


@pytest.mark.sandbox
def test_rest_and_bulk_queries_return_identical_records(hook: SalesforceSyncHook, sf_admin: Any) -> None:
    ids = sf_admin.seed({"objects": {"Account": [{"Name": 'CUMC, "East"'}]}})["ids"]["Account"]
    people = contacts(30, DV_Enrollment__c=True, Birthdate="1980-02-29")
    for i, person in enumerate(people):
        if i % 2:
            person["AccountId"] = ids[0]
        if i % 3 == 0:
            person["MailingStreet"] = "1 Main St\nApt 2"
            person["DV_Enrollment__c"] = False
    sf_admin.seed({"objects": {"Contact": people}, "automation": False})
    query = (
        "SELECT Id, HP_PMI_ID__c, Account.Name, DV_Enrollment__c, Birthdate, CreatedDate, MailingStreet "
        "FROM Contact"
    )
    rest = sorted(hook.query(query, bulk=False), key=lambda r: r["Id"])
    bulk = sorted(hook.query(query, bulk=True), key=lambda r: r["Id"])
    assert len(rest) == 30
    assert rest == bulk
    with_account = next(r for r in rest if r["Account.Name"])
    assert with_account["Account.Name"] == 'CUMC, "East"'
    assert isinstance(with_account["DV_Enrollment__c"], bool)
    assert rest[0]["CreatedDate"].endswith("Z")
    assert routes(sf_admin, "POST", "jobs/query") == 1


@pytest.mark.sandbox
def test_query_switches_to_bulk_when_the_count_is_large(sf_admin: Any) -> None:
    sf_admin.seed({"objects": {"Contact": contacts(2500)}, "automation": False})
    hook = SalesforceSyncHook(poll=FAST_POLL, http_policy=FAST_HTTP, query_bulk_threshold=2100)
    rows = list(hook.query("SELECT Id, HP_PMI_ID__c FROM Contact"))
    assert len(rows) == 2500
    assert len({r["Id"] for r in rows}) == 2500
    assert routes(sf_admin, "POST", "jobs/query") == 1
    assert (
        routes(sf_admin, "GET", "query/{locator}") == 0
    )  # no queryMore: the REST path stopped after one page


@pytest.mark.sandbox
def test_injection_attempt_matches_nothing(hook: SalesforceSyncHook, sf_admin: Any) -> None:
    sf_admin.seed({"objects": {"Contact": contacts(5)}, "automation": False})
    attack = "x' OR LastName != '"
    query = soql.select("Contact", ["Id"], where={"LastName": attack})
    assert list(hook.query(query)) == []
    # quote() leaves LIKE wildcards alone (so '%' matches everything); like_pattern() escapes them
    wildcard = soql.fragment("LastName LIKE {}", "%")
    assert len(list(hook.query(soql.select("Contact", ["Id"], where=wildcard)))) == 5
    literal = soql.Fragment(f"LastName LIKE {soql.like_pattern('%', match='exact')}")
    assert list(hook.query(soql.select("Contact", ["Id"], where=literal))) == []


@pytest.mark.sandbox
def test_bulk_upsert_maps_failed_and_unprocessed_rows_by_key(sf_admin: Any) -> None:
    sf_admin.config(bulk_unprocessed_records=7)
    hook = SalesforceSyncHook(
        poll=FAST_POLL, http_policy=FAST_HTTP, bulk_threshold=50, row_retry_backoff=0.01
    )
    records = contacts(120)
    for i in (3, 64, 101):
        records[i]["LastName"] = None  # clearing a required field fails the insert
    results = hook.upsert("Contact", "HP_PMI_ID__c", records)
    assert [r.key for r in results] == [r["HP_PMI_ID__c"] for r in records]
    failed = {r.key: r for r in results if not r.success}
    assert set(failed) == {records[i]["HP_PMI_ID__c"] for i in (3, 64, 101)}
    assert {r.error_code for r in failed.values()} == {"REQUIRED_FIELD_MISSING"}
    data = stored(sf_admin)
    assert len(data) == 117
    assert all(data[r.key]["Id"] == r.id for r in results if r.success)  # matched by key, not by order
    jobs = sf_admin.state(jobs="ingest")
    assert len(jobs["jobs"] if isinstance(jobs, dict) else jobs) == 1  # the 7 unprocessed went by Collections
    assert routes(sf_admin, "PATCH", UPSERT) == 1


@pytest.mark.sandbox
@pytest.mark.parametrize("bulk_threshold", [2000, 1], ids=["collections", "bulk"])
def test_lock_contention_resubmits_only_locked_rows(sf_admin: Any, bulk_threshold: int) -> None:
    records = contacts(10)
    locked = [records[2]["HP_PMI_ID__c"], records[7]["HP_PMI_ID__c"]]
    sf_admin.config(lock_rows={"keys": locked, "times": 2})
    hook = SalesforceSyncHook(
        poll=FAST_POLL, http_policy=FAST_HTTP, bulk_threshold=bulk_threshold, row_retry_backoff=0.01
    )
    results = hook.upsert("Contact", "HP_PMI_ID__c", records)
    assert all(r.success for r in results)
    if bulk_threshold == 1:
        jobs = sf_admin.state(jobs="ingest")
        jobs = jobs["jobs"] if isinstance(jobs, dict) else jobs
        assert sorted(int(j["numberRecordsProcessed"]) for j in jobs) == [2, 2, 10]
    else:
        assert routes(sf_admin, "PATCH", UPSERT) == 3

    sf_admin.config(lock_rows={"keys": locked, "times": 9})
    hook = SalesforceSyncHook(http_policy=FAST_HTTP, row_retry_backoff=0.01, max_row_retries=2)
    results = hook.upsert("Contact", "HP_PMI_ID__c", records)
    assert {r.key for r in results if not r.success} == set(locked)
    assert {r.error_code for r in results if not r.success} == {"UNABLE_TO_LOCK_ROW"}
    assert hook.api_calls["collections"] == 3  # first try + 2 resubmissions of the locked two


@pytest.mark.sandbox
def test_salesforce_daily_limit_parks_the_rest_and_nothing_is_lost(sf_admin: Any) -> None:
    hook = SalesforceSyncHook(http_policy=FAST_HTTP)
    sf_admin.config(daily_api_limit=4, api_usage=0)  # describe + 3 collections, then 403
    changes = [
        Change(
            key=c["HP_PMI_ID__c"],
            action=Action.CREATE,
            payload={"LastName": c["LastName"]},
            row_hash="h",
            target_id=None,
        )
        for c in contacts(1000)
    ]
    outcomes = hook.push_changes("Contact", "HP_PMI_ID__c", changes)
    assert [o.key for o in outcomes] == [c.key for c in changes]
    done = [o for o in outcomes if o.status == Status.SUCCESS]
    parked = [o for o in outcomes if o.status == Status.PARKED]
    assert len(done) == 600
    assert len(parked) == 400
    assert {o.error_code for o in parked} == {"REQUEST_LIMIT_EXCEEDED"}
    assert set(stored(sf_admin)) == {o.key for o in done}
    calls_before = sf_admin.calls()["total"]
    assert all(o.status == Status.PARKED for o in hook.push_changes("Contact", "HP_PMI_ID__c", changes[:3]))
    assert sf_admin.calls()["total"] == calls_before  # once the org is out of calls, none are wasted

    sf_admin.config(daily_api_limit=100_000)  # the next day: the parked records go through
    retry = [c for c in changes if c.key in {o.key for o in parked}]
    second = SalesforceSyncHook(http_policy=FAST_HTTP).push_changes("Contact", "HP_PMI_ID__c", retry)
    assert all(o.status == Status.SUCCESS for o in second)
    assert len(stored(sf_admin)) == 1000


@pytest.mark.sandbox
def test_own_daily_cap_stops_before_salesforce_does(sf_admin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    conn["extra"]["api_daily_limit"] = 5
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_CAPPED", json.dumps(conn))
    hook = SalesforceSyncHook("salesforce_capped", http_policy=FAST_HTTP)
    results = hook.upsert("Contact", "HP_PMI_ID__c", contacts(1600))
    sent = [r for r in results if r.success]
    assert {r.error_code for r in results if not r.success} == {"QUOTA_EXHAUSTED"}
    assert all(r.parked for r in results if not r.success)
    assert len(sent) == len(stored(sf_admin)) > 0
    assert hook.budget_left == 0
    with pytest.raises(QuotaExhausted):
        list(hook.query("SELECT Id FROM Contact"))


@pytest.mark.sandbox
def test_push_changes_updates_deletes_and_rejects(hook: SalesforceSyncHook, sf_admin: Any) -> None:
    seeded = sf_admin.seed({"objects": {"Contact": contacts(4)}, "automation": False})["ids"]["Contact"]
    changes = [
        Change("P0000000", Action.UPDATE, {"LastName": "Renamed", "Email": None}, "h1", seeded[0]),
        Change("NEW1", Action.CREATE, {"LastName": "New", "FirstName": None}, "h2", None),
        Change("P0000001", Action.DELETE, None, None, seeded[1]),
        Change("P0000002", Action.DELETE, None, None, None),  # looked up by external id
        Change("GONE", Action.DELETE, None, None, None),  # not in Salesforce: nothing to do
        Change("BAD", Action.CREATE, {"FirstName": "z" * 41, "LastName": "L"}, "h3", None),
    ]
    outcomes = hook.push_changes("Contact", "HP_PMI_ID__c", changes)
    assert [o.status for o in outcomes] == [Status.SUCCESS] * 5 + [Status.REJECTED]
    assert outcomes[0].target_id == seeded[0]
    assert outcomes[0].row_hash == "h1"
    assert outcomes[1].target_id
    assert outcomes[1].target_id.startswith("003")
    assert outcomes[5].error_code == "STRING_TOO_LONG"
    assert outcomes[5].field == "FirstName"
    data = stored(sf_admin)
    assert set(data) == {"P0000000", "P0000003", "NEW1"}
    assert data["P0000000"]["LastName"] == "Renamed"
    again = hook.delete("Contact", [seeded[1]])
    assert again[0].success  # already deleted counts as done


@pytest.mark.sandbox
@pytest.mark.parametrize("bulk_threshold", [2000, 1], ids=["collections", "bulk"])
def test_none_clears_a_field_and_absent_leaves_it(sf_admin: Any, bulk_threshold: int) -> None:
    sf_admin.seed(
        {"objects": {"Contact": contacts(4, Email="a@example.org", Phone="555")}, "automation": False}
    )
    hook = SalesforceSyncHook(poll=FAST_POLL, http_policy=FAST_HTTP, bulk_threshold=bulk_threshold)
    # LastName is sent with each record only because the emulator wrongly requires required
    # fields on partial updates (reported); Email and Phone show the None / absent semantics.
    results = hook.upsert(
        "Contact",
        "HP_PMI_ID__c",
        [
            {"HP_PMI_ID__c": "P0000000", "LastName": "Last0", "Email": None},
            {"HP_PMI_ID__c": "P0000001", "LastName": "Last1", "Phone": ""},
            {"HP_PMI_ID__c": "P0000002", "LastName": "Last2", "FirstName": "Changed"},
        ],
    )
    assert all(r.success for r in results)
    assert all(r.created is False for r in results)
    data = stored(sf_admin)
    assert data["P0000000"]["Email"] is None
    assert data["P0000000"]["Phone"] == "555"
    assert data["P0000001"]["Phone"] is None
    assert data["P0000001"]["Email"] == "a@example.org"
    assert data["P0000002"]["FirstName"] == "Changed"
    assert data["P0000002"]["Email"] == "a@example.org"
    assert routes(sf_admin, "POST", "jobs/ingest") == (1 if bulk_threshold == 1 else 0)


@pytest.mark.sandbox
def test_bulk_uploads_split_into_jobs_are_all_mapped(hook: SalesforceSyncHook, sf_admin: Any) -> None:
    small = Bulk2(hook.client.call, FAST_POLL, max_upload_bytes=600)
    rows = [(c["HP_PMI_ID__c"], c) for c in contacts(100)]
    results = small.ingest(
        "Contact", "upsert", rows, key_column="HP_PMI_ID__c", external_id_field="HP_PMI_ID__c"
    )
    assert set(results) == {k for k, _ in rows}
    assert all(r.success for r in results.values())
    assert routes(sf_admin, "POST", "jobs/ingest") > 2
    data = stored(sf_admin)
    assert all(data[k]["Id"] == r.id for k, r in results.items())


@pytest.mark.sandbox
def test_describe_is_cached_and_limits_are_typed(hook: SalesforceSyncHook, sf_admin: Any) -> None:
    first = hook.describe("Contact")
    assert hook.describe("contact") is first
    assert first.field("hp_pmi_id__c").external_id
    assert first.relationship("Account").reference_to == ("Account",)
    assert routes(sf_admin, "GET", "sobjects/{sobject}/describe") == 1
    limits = hook.limits()
    assert limits["DailyApiRequests"].max == 100_000
    assert limits["DailyApiRequests"].used > 0
    assert hook.budget_left is not None
    assert hook.budget_left < 100_000
    assert hook.api_calls["total"] == hook.api_calls["auth"] + hook.api_calls["rest"] == 3


@pytest.mark.sandbox
@pytest.mark.parametrize("bulk_threshold", [2000, 1], ids=["collections", "bulk"])
def test_update_and_delete_by_id(sf_admin: Any, bulk_threshold: int) -> None:
    ids = sf_admin.seed({"objects": {"Contact": contacts(5)}, "automation": False})["ids"]["Contact"]
    hook = SalesforceSyncHook(poll=FAST_POLL, http_policy=FAST_HTTP, bulk_threshold=bulk_threshold)
    missing = soql.sf_id_18("003" + "9" * 12)
    updates = [
        {"Id": ids[0], "LastName": "Zero", "FirstName": "New"},
        {"Id": ids[1].lower(), "LastName": "Bad id"},  # lower-cased: checksum no longer matches
        {"Id": missing, "LastName": "Nobody"},
        {"Id": ids[2], "LastName": "L", "FirstName": "w" * 41},
    ]
    results = hook.update("Contact", updates)
    assert [r.key for r in results] == [u["Id"] for u in updates]
    assert results[0].success
    assert results[0].created is False
    assert results[1].error_code == "MALFORMED_ID"
    assert results[2].error_code == "INVALID_CROSS_REFERENCE_KEY"
    assert results[3].error_code == "STRING_TOO_LONG"
    assert stored(sf_admin)["P0000000"]["FirstName"] == "New"

    deleted = hook.delete("Contact", [ids[3], ids[4], ids[3][:15]])
    assert [r.success for r in deleted[:2]] == [True, True]
    assert deleted[2].success  # the same record by its 15-character id: already deleted
    assert set(stored(sf_admin)) == {"P0000000", "P0000001", "P0000002"}
    assert all(r.success for r in hook.delete("Contact", [ids[3]]))  # already deleted: done


@pytest.mark.sandbox
def test_client_credentials_flow(sf_admin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
    conn.pop("login")
    conn.pop("password")
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_APP", json.dumps(conn))
    hook = SalesforceSyncHook("salesforce_app", http_policy=FAST_HTTP)
    assert hook.upsert("Contact", "HP_PMI_ID__c", contacts(2))[0].success
    assert hook.api_calls["auth"] == 1
    assert sf_admin.calls()["by_route"]["POST /services/oauth2/token"] == 1


@pytest.mark.sandbox
def test_bulk_job_past_the_wait_bound_is_aborted_and_reported_unprocessed(sf_admin: Any) -> None:
    # long enough to outlast the wait bound, short enough not to hold up the emulator's only
    # bulk worker (a reset does not cancel a job that is waiting to run)
    sf_admin.config(bulk_processing_delay_s=2)
    hook = SalesforceSyncHook(
        poll=PollPolicy(first=0.05, cap=0.1, max_wait=0.3),
        http_policy=FAST_HTTP,
        bulk_threshold=1,
        max_row_retries=1,
        row_retry_backoff=0.01,
    )
    results = hook.upsert("Contact", "HP_PMI_ID__c", contacts(5))
    assert {r.error_code for r in results} == {"UNPROCESSED"}
    assert all(r.transient for r in results)  # not reported as failed: the next run sends them
    jobs = sf_admin.state(jobs="ingest")["jobs"]
    assert [j["state"] for j in jobs] == ["Aborted", "Aborted"]  # first try and one resubmission
    assert stored(sf_admin) == {}


def creates(n: int) -> list[Change]:
    """``n`` create changes for Contacts."""
    return [
        Change(
            key=c["HP_PMI_ID__c"],
            action=Action.CREATE,
            payload={"LastName": c["LastName"]},
            row_hash="h",
            target_id=None,
        )
        for c in contacts(n)
    ]


@pytest.mark.sandbox
def test_budget_exhausted_mid_run_parks_the_rest(sf_admin: Any, sqlite_url: str) -> None:
    budget = QuotaBudget(make_engine(sqlite_url), "salesforce", daily_limit=3)
    hook = SalesforceSyncHook(http_policy=FAST_HTTP, budget=budget)
    outcomes = hook.push_changes("Contact", "HP_PMI_ID__c", creates(1000))
    done = [o.key for o in outcomes if o.status == Status.SUCCESS]
    parked = [o for o in outcomes if o.status == Status.PARKED]
    assert len(done) == 400  # describe + 2 collections of 200 = the 3 calls of the budget
    assert len(parked) == 600
    assert {o.error_code for o in parked} == {"QUOTA_EXHAUSTED"}
    assert set(stored(sf_admin)) == set(done)
    assert hook.budget_left == budget.remaining() == 0
    assert hook.api_calls == {"total": 4, "auth": 1, "rest": 1, "collections": 2, "bulk": 0}


@pytest.mark.sandbox
def test_budget_follows_salesforce_usage_and_stops_before_a_403(sf_admin: Any, sqlite_url: str) -> None:
    sf_admin.config(daily_api_limit=100_000, api_usage=99_994)
    budget = QuotaBudget(make_engine(sqlite_url), "salesforce", daily_limit=None)
    hook = SalesforceSyncHook(http_policy=FAST_HTTP, budget=budget)
    outcomes = hook.push_changes("Contact", "HP_PMI_ID__c", creates(2000 - 1))
    parked = [o for o in outcomes if o.status == Status.PARKED]
    done = [o for o in outcomes if o.status == Status.SUCCESS]
    assert len(done) + len(parked) == 1999
    assert parked
    assert {o.error_code for o in parked} == {"QUOTA_EXHAUSTED"}  # ours, not Salesforce's 403
    assert len(stored(sf_admin)) == len(done)
    assert budget.remaining() == 0


@pytest.mark.sandbox
@pytest.mark.parametrize(("daily_limit", "written"), [(3, 0), (4, 5)], ids=["before-close", "after-close"])
def test_budget_and_bulk_jobs(sf_admin: Any, sqlite_url: str, daily_limit: int, written: int) -> None:
    budget = QuotaBudget(make_engine(sqlite_url), "salesforce", daily_limit=daily_limit)
    hook = SalesforceSyncHook(poll=FAST_POLL, http_policy=FAST_HTTP, budget=budget, bulk_threshold=1)
    results = hook.upsert("Contact", "HP_PMI_ID__c", contacts(5))  # describe, create, upload, close, ...
    assert sum(r.success for r in results) == written
    assert len(stored(sf_admin)) == written
    if written:
        # a closed job is running: it is polled and read even past the budget, so nothing is lost
        assert routes(sf_admin, "GET", "jobs/ingest/{job_id}/{kind}") == 1
    else:
        assert {r.error_code for r in results} == {"QUOTA_EXHAUSTED"}
        assert [j["state"] for j in sf_admin.state(jobs="ingest")["jobs"]] == ["Open"]  # never processed
    assert budget.remaining() == 0


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("fault", "route", "calls"),
    [
        (
            {"method": "PUT", "path": "/batches$", "lost_response": True},
            ("PUT", "jobs/ingest/{job_id}/batches"),
            2,
        ),
        (
            {"method": "PATCH", "path": "/jobs/ingest/[^/]+$", "lost_response": True},
            ("PATCH", "jobs/ingest/{job_id}"),
            1,
        ),
        (
            {"method": "GET", "path": "/jobs/ingest/[^/]+$", "status": 503, "times": 2},
            ("GET", "jobs/ingest/{job_id}"),
            3,
        ),
    ],
    ids=["upload-lost", "close-lost", "poll-503"],
)
def test_bulk_job_steps_survive_lost_responses(
    sf_admin: Any, fault: dict, route: tuple[str, str], calls: int
) -> None:
    sf_admin.faults([fault])
    hook = SalesforceSyncHook(poll=FAST_POLL, http_policy=FAST_HTTP, bulk_threshold=1)
    results = hook.insert("Contact", contacts(6), key_field="HP_PMI_ID__c")
    assert all(r.success for r in results)
    assert len(sf_admin.state(object="Contact")["records"]) == 6  # one job, no duplicate
    assert len(sf_admin.state(jobs="ingest")["jobs"]) == 1
    assert sf_admin.faults([]) == []  # the fault fired (and was used up)
    assert routes(sf_admin, *route) >= calls
    assert routes(sf_admin, "POST", "jobs/ingest") == 1
