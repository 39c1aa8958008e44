"""Salesforce emulator: the SOQL subset, as a table of queries and their results or errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.testing import start_sandbox

from .conftest import SfApi

pytestmark = pytest.mark.sandbox

ACME = "0010a00001Qa6gPAAR"
TODAY = dt.datetime.now(dt.UTC).date()


def _seed(sf: SfApi) -> SfApi:
    sf.admin.seed(
        {
            "objects": {
                "Account": [{"Id": ACME, "Name": "CUMC"}, {"Name": "Other Org"}],
                "Contact": [
                    {
                        "LastName": "Holmes",
                        "FirstName": "Sherlock",
                        "AccountId": ACME,
                        "HP_PMI_ID__c": "P100",
                        "Email": "sh@example.org",
                        "Birthdate": "1954-01-06",
                        "DV_Enrollment__c": True,
                    },
                    {
                        "LastName": "Watson",
                        "FirstName": "John",
                        "AccountId": ACME,
                        "HP_PMI_ID__c": "P200",
                        "Birthdate": "1952-08-07",
                        "MailingCity": "London",
                    },
                    {
                        "LastName": "O'Brien",
                        "FirstName": "Kate",
                        "Email": "kate@example.org",
                        "Birthdate": TODAY.isoformat(),
                    },
                    {"LastName": "100% Pure_Name", "MailingCity": "back\\slash"},
                ],
            }
        }
    )
    return sf


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SfApi]:
    """A sandbox of its own, seeded once, for the read-only query tables."""
    with start_sandbox(["salesforce"], tmp_dir=Path(tmp_path_factory.mktemp("soql"))) as sandbox:
        yield _seed(SfApi(sandbox))


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["LastName"] for r in response.json()["records"]]


QUERIES = [
    ("SELECT LastName FROM Contact ORDER BY LastName", ["100% Pure_Name", "Holmes", "O'Brien", "Watson"]),
    ("select lastname from contact where lastname = 'HOLMES'", ["Holmes"]),
    ("SELECT LastName FROM Contact WHERE LastName = 'O\\'Brien'", ["O'Brien"]),
    ("SELECT LastName FROM Contact WHERE LastName = 'x\\' OR LastName != \\'y'", []),
    (
        "SELECT LastName FROM Contact WHERE Email != 'sh@example.org' ORDER BY LastName",
        ["100% Pure_Name", "O'Brien", "Watson"],
    ),
    ("SELECT LastName FROM Contact WHERE Email = null ORDER BY LastName", ["100% Pure_Name", "Watson"]),
    ("SELECT LastName FROM Contact WHERE Email <> NULL ORDER BY LastName", ["Holmes", "O'Brien"]),
    (
        "SELECT LastName FROM Contact WHERE LastName IN ('Holmes', 'Watson') ORDER BY LastName DESC",
        ["Watson", "Holmes"],
    ),
    (
        "SELECT LastName FROM Contact WHERE MailingCity NOT IN ('London') ORDER BY LastName",
        ["100% Pure_Name", "Holmes", "O'Brien"],
    ),
    ("SELECT LastName FROM Contact WHERE LastName LIKE 'wat%'", ["Watson"]),
    ("SELECT LastName FROM Contact WHERE LastName LIKE '100\\% Pure\\_%'", ["100% Pure_Name"]),
    ("SELECT LastName FROM Contact WHERE LastName LIKE '_olmes'", ["Holmes"]),
    ("SELECT LastName FROM Contact WHERE MailingCity = 'back\\\\slash'", ["100% Pure_Name"]),
    ("SELECT LastName FROM Contact WHERE Birthdate < 1953-01-01", ["Watson"]),
    (
        "SELECT LastName FROM Contact WHERE Birthdate >= 1952-08-07 AND Birthdate <= 1954-01-06 "
        "ORDER BY Birthdate",
        ["Watson", "Holmes"],
    ),
    ("SELECT LastName FROM Contact WHERE Birthdate = TODAY", ["O'Brien"]),
    ("SELECT LastName FROM Contact WHERE Birthdate = LAST_N_DAYS:3", ["O'Brien"]),
    ("SELECT LastName FROM Contact WHERE CreatedDate = TODAY AND DV_Enrollment__c = true", ["Holmes"]),
    (
        "SELECT LastName FROM Contact WHERE CreatedDate > 2000-01-01T00:00:00Z AND DV_Enrollment__c = false "
        "ORDER BY LastName LIMIT 2",
        ["100% Pure_Name", "O'Brien"],
    ),
    (
        "SELECT LastName FROM Contact WHERE (LastName = 'Holmes' OR LastName = 'Watson') "
        "AND MailingCity = 'London'",
        ["Watson"],
    ),
    ("SELECT LastName FROM Contact WHERE NOT LastName = 'Holmes' AND Email != null", ["O'Brien"]),
    ("SELECT LastName FROM Contact WHERE Account.Name = 'CUMC' ORDER BY LastName", ["Holmes", "Watson"]),
    (
        "SELECT LastName FROM Contact ORDER BY MailingCity NULLS LAST, LastName LIMIT 2",
        ["100% Pure_Name", "Watson"],
    ),
    ("SELECT LastName FROM Contact ORDER BY MailingCity DESC NULLS FIRST, LastName LIMIT 1", ["Holmes"]),
    ("SELECT LastName FROM Contact ORDER BY LastName LIMIT 2 OFFSET 1", ["Holmes", "O'Brien"]),
    (f"SELECT LastName FROM Contact WHERE AccountId = '{ACME[:15]}' ORDER BY LastName", ["Holmes", "Watson"]),
]


@pytest.mark.parametrize(("soql", "expected"), QUERIES)
def test_query_results(people: SfApi, soql: str, expected: list[str]) -> None:
    assert _names(people.query(soql)) == expected


ERRORS = [
    ("SELECT FROM Contact", "MALFORMED_QUERY"),
    ("SELECT LastName Contact", "MALFORMED_QUERY"),
    ("SELECT LastName FROM Contact WHERE LastName = 'unterminated", "MALFORMED_QUERY"),
    ("SELECT LastName FROM Contact WHERE LastName = 'bad \\q escape'", "MALFORMED_QUERY"),
    ("SELECT LastName FROM Contact WHERE LastName = 'no\\%like'", "MALFORMED_QUERY"),
    ("SELECT LastName FROM Contact WHERE LastName = 'a' AND Email = 'b' OR Phone = 'c'", "MALFORMED_QUERY"),
    ("SELECT Id, (SELECT Id FROM Opportunities) FROM Account", "MALFORMED_QUERY"),
    ("SELECT LastName FROM Contact LIMIT -1", "MALFORMED_QUERY"),
    ("SELECT Nope__c FROM Contact", "INVALID_FIELD"),
    ("SELECT Account.Nope FROM Contact", "INVALID_FIELD"),
    ("SELECT Nope.Name FROM Contact", "INVALID_FIELD"),
    ("SELECT LastName FROM Contact WHERE Birthdate = '2020-01-01'", "INVALID_FIELD"),
    ("SELECT LastName FROM Contact WHERE LastName = 5", "INVALID_FIELD"),
    ("SELECT LastName FROM Contact WHERE DV_Enrollment__c = 'true'", "INVALID_FIELD"),
    ("SELECT LastName FROM Contact WHERE CreatedDate > 2020-01-01", "INVALID_FIELD"),
    ("SELECT Id FROM Contactz", "INVALID_TYPE"),
    ("SELECT Id FROM Contact WHERE Id = 'not-an-id'", "INVALID_QUERY_FILTER_OPERATOR"),
    ("SELECT FIELDS(ALL) FROM Contact", "MALFORMED_QUERY"),
    ("SELECT Id FROM Contact OFFSET 2001", "NUMBER_OUTSIDE_VALID_RANGE"),
]


@pytest.mark.parametrize(("soql", "code"), ERRORS)
def test_query_errors(people: SfApi, soql: str, code: str) -> None:
    response = people.query(soql)
    assert response.status_code == 400, response.text
    assert response.json()[0]["errorCode"] == code


def test_parent_paths_and_record_shape(people: SfApi) -> None:
    response = people.query(
        "SELECT Name, HP_PMI_ID__c, Contact__r.LastName, Contact__r.Account.Name, Owner.Username "
        "FROM Opportunity ORDER BY HP_PMI_ID__c"
    )
    body = response.json()
    assert body["totalSize"] == 2
    assert body["done"] is True
    first = body["records"][0]
    assert first["attributes"]["type"] == "Opportunity"
    assert first["attributes"]["url"].startswith("/services/data/v62.0/sobjects/Opportunity/006")
    assert first["Name"] == "P100 Journey"
    assert first["Contact__r"]["LastName"] == "Holmes"
    assert first["Contact__r"]["attributes"]["type"] == "Contact"
    assert first["Contact__r"]["Account"]["Name"] == "CUMC"
    assert first["Owner"]["Username"] == "sandbox@crm-sync.test"
    no_account = people.query("SELECT LastName, Account.Name FROM Contact WHERE LastName = 'O\\'Brien'")
    assert no_account.json()["records"][0]["Account"] is None


def test_count_fields_and_query_all(sf: SfApi) -> None:
    people = _seed(sf)
    count = people.query("SELECT COUNT() FROM Contact WHERE AccountId != null").json()
    assert count == {"totalSize": 2, "done": True, "records": []}
    record = people.query("SELECT FIELDS(ALL) FROM Contact ORDER BY LastName LIMIT 1").json()["records"][0]
    assert {"Id", "LastName", "HP_PMI_ID__c", "CreatedDate", "IsDeleted"} <= set(record)
    assert record["IsDeleted"] is False
    contact_id = people.query("SELECT Id FROM Contact WHERE LastName = 'Watson'").json()["records"][0]["Id"]
    assert people.call("DELETE", f"sobjects/Contact/{contact_id}").status_code == 204
    assert people.query("SELECT COUNT() FROM Contact").json()["totalSize"] == 3
    deleted = people.call(
        "GET", "queryAll", params={"q": "SELECT LastName, IsDeleted FROM Contact WHERE IsDeleted = true"}
    ).json()
    assert [(r["LastName"], r["IsDeleted"]) for r in deleted["records"]] == [("Watson", True)]


def test_query_more_paging_with_batch_size(sf: SfApi) -> None:
    sf.admin.seed({"objects": {"Account": [{"Name": f"Org {i:04d}"} for i in range(450)]}})
    first = sf.query(
        "SELECT Name FROM Account ORDER BY Name", headers={"Sforce-Query-Options": "batchSize=200"}
    )
    body = first.json()
    assert body["totalSize"] == 450
    assert body["done"] is False
    assert len(body["records"]) == 200
    assert body["nextRecordsUrl"].startswith("/services/data/v62.0/query/01g")
    names = [r["Name"] for r in body["records"]]
    pages = 1
    while not body["done"]:
        body = sf.call("GET", body["nextRecordsUrl"]).json()
        names += [r["Name"] for r in body["records"]]
        pages += 1
    assert pages == 3
    assert names == [f"Org {i:04d}" for i in range(450)]
    assert "nextRecordsUrl" not in body
    default = sf.query("SELECT Name FROM Account").json()
    assert default["done"] is True
    assert len(default["records"]) == 450  # default batch is 2000
    stale = sf.call("GET", "query/01g000000000000AAA-200")
    assert stale.status_code == 400
    assert stale.json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"


def test_order_is_an_object_name_as_well_as_a_keyword(sf: SfApi) -> None:
    ids = sf.admin.seed(
        {
            "objects": {
                "Account": [{"Id": ACME, "Name": "CUMC"}],
                "Order": [
                    {"AccountId": ACME, "Status": "Draft", "EffectiveDate": "2026-01-02"},
                    {"AccountId": ACME, "Status": "Activated", "EffectiveDate": "2026-01-01"},
                ],
            }
        }
    )["ids"]["Order"]
    rows = sf.query(f"SELECT Id, Status FROM Order WHERE AccountId = '{ACME}' ORDER BY EffectiveDate").json()
    assert [r["Id"] for r in rows["records"]] == [ids[1], ids[0]]
    assert sf.query("SELECT Id FROM Order ORDER BY Status").status_code == 200
    bad = sf.query("SELECT Id FROM ORDER BY Status")
    assert bad.status_code == 400
