"""Salesforce emulator: Bulk API 2.0 ingest and query jobs, raw and through simple-salesforce."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest
from simple_salesforce import Salesforce

from .conftest import SfApi

pytestmark = pytest.mark.sandbox
INGEST = "jobs/ingest"


def _wait(
    sf: SfApi, path: str, until: set[str] = frozenset({"JobComplete", "Failed", "Aborted"})
) -> dict[str, Any]:
    seen = []
    for _ in range(200):
        info = sf.call("GET", path).json()
        seen.append(info["state"])
        if info["state"] in until:
            info["_seen"] = seen
            return info
        time.sleep(0.05)
    raise AssertionError(f"job never finished: {seen}")


def _run_ingest(sf: SfApi, job: dict[str, Any], data: str) -> tuple[str, dict[str, Any]]:
    created = sf.call("POST", INGEST, json={"contentType": "CSV", "lineEnding": "LF", **job})
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    assert job_id.startswith("750")
    assert created.json()["state"] == "Open"
    upload = sf.call(
        "PUT", f"{INGEST}/{job_id}/batches", data=data.encode(), headers={"Content-Type": "text/csv"}
    )
    assert upload.status_code == 201, upload.text
    closed = sf.call("PATCH", f"{INGEST}/{job_id}", json={"state": "UploadComplete"})
    assert closed.json()["state"] == "UploadComplete"
    return job_id, _wait(sf, f"{INGEST}/{job_id}")


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_upsert_job_with_failures(sf: SfApi) -> None:
    sf.admin.seed({"objects": {"Contact": [{"LastName": "Old", "FirstName": "Keep", "HP_PMI_ID__c": "P1"}]}})
    data = (
        "HP_PMI_ID__c,LastName,FirstName,Birthdate\n"
        "P1,Updated,,#N/A\n"  # empty = leave FirstName; #N/A = set Birthdate null
        "P2,New,Ann,1980-02-03\n"
        "P3,,NoLast,\n"  # insert without LastName
        "P4,Bad,Date,1980-13-45\n"
    )
    job_id, info = _run_ingest(
        sf, {"object": "Contact", "operation": "upsert", "externalIdFieldName": "HP_PMI_ID__c"}, data
    )
    assert info["state"] == "JobComplete"
    assert info["jobType"] == "V2Ingest"
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (4, 2)
    ok = _csv(sf.call("GET", f"{INGEST}/{job_id}/successfulResults/").text)
    assert list(ok[0]) == ["sf__Id", "sf__Created", "HP_PMI_ID__c", "LastName", "FirstName", "Birthdate"]
    assert sorted((r["HP_PMI_ID__c"], r["sf__Created"]) for r in ok) == [("P1", "false"), ("P2", "true")]
    failed = {r["HP_PMI_ID__c"]: r for r in _csv(sf.call("GET", f"{INGEST}/{job_id}/failedResults/").text)}
    assert (
        failed["P3"]["sf__Error"]
        == "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --"
    )
    assert failed["P3"]["sf__Id"] == ""
    assert failed["P4"]["sf__Error"].startswith("INVALID_TYPE_ON_FIELD_IN_RECORD:")
    rows = {r["HP_PMI_ID__c"]: r for r in sf.rows("Contact")}
    assert (rows["P1"]["LastName"], rows["P1"]["FirstName"], rows["P1"]["Birthdate"]) == (
        "Updated",
        "Keep",
        None,
    )
    assert rows["P2"]["Birthdate"] == "1980-02-03"
    assert sf.call("GET", "limits").json()["DailyBulkApiBatches"]["Remaining"] == 14999
    assert sf.call("DELETE", f"{INGEST}/{job_id}").status_code == 204
    assert sf.call("GET", f"{INGEST}/{job_id}").status_code == 404


def test_results_are_not_in_input_order(sf: SfApi) -> None:
    data = "LastName\n" + "".join(f"Row{i:03d}\n" for i in range(200))
    job_id, info = _run_ingest(sf, {"object": "Contact", "operation": "insert"}, data)
    assert info["numberRecordsProcessed"] == 200
    names = [r["LastName"] for r in _csv(sf.call("GET", f"{INGEST}/{job_id}/successfulResults").text)]
    assert sorted(names) == [f"Row{i:03d}" for i in range(200)]
    assert names != sorted(names)


def test_unprocessed_records_end_failed(sf: SfApi) -> None:
    sf.admin.config(bulk_unprocessed_records=2)
    data = "LastName,HP_PMI_ID__c\nA,P1\nB,P2\nC,P3\nD,P4\nE,P5\n"
    job_id, info = _run_ingest(sf, {"object": "Contact", "operation": "insert"}, data)
    assert info["state"] == "Failed"
    assert info["numberRecordsProcessed"] == 3
    assert "not processed" in info["errorMessage"]
    unprocessed = sf.call("GET", f"{INGEST}/{job_id}/unprocessedrecords/").text
    assert _csv(unprocessed) == [
        {"LastName": "D", "HP_PMI_ID__c": "P4"},
        {"LastName": "E", "HP_PMI_ID__c": "P5"},
    ]
    assert len(sf.rows("Contact")) == 3
    assert sf.admin.config()["bulk_unprocessed_records"] == 0  # only the next job


def test_update_and_delete_jobs(sf: SfApi) -> None:
    ids = sf.admin.seed({"objects": {"Contact": [{"LastName": "A"}, {"LastName": "B"}]}})["ids"]["Contact"]
    _, info = _run_ingest(
        sf, {"object": "Contact", "operation": "update"}, f"Id,LastName\n{ids[0]},A2\n003000000000000AAA,X\n"
    )
    assert (info["numberRecordsProcessed"], info["numberRecordsFailed"]) == (2, 1)
    _, info = _run_ingest(sf, {"object": "Contact", "operation": "delete"}, f"Id\n{ids[1]}\n")
    assert info["numberRecordsFailed"] == 0
    assert [r["LastName"] for r in sf.rows("Contact")] == ["A2"]


@pytest.mark.parametrize(
    ("job", "code"),
    [
        ({"object": "Contact", "operation": "merge"}, "INVALIDJOB"),
        ({"object": "Nope", "operation": "insert"}, "INVALIDJOB"),
        ({"object": "Contact", "operation": "upsert", "externalIdFieldName": "LastName"}, "INVALIDJOB"),
        ({"object": "Contact", "operation": "insert", "columnDelimiter": "TAB"}, "NOT_SUPPORTED_BY_SANDBOX"),
        ({"object": "Contact", "operation": "insert", "lineEnding": "CR"}, "INVALIDJOB"),
    ],
)
def test_bad_job_definitions(sf: SfApi, job: dict[str, str], code: str) -> None:
    response = sf.call("POST", INGEST, json=job)
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == code


def test_upload_rules(sf: SfApi) -> None:
    job_id = sf.call("POST", INGEST, json={"object": "Contact", "operation": "insert"}).json()["id"]
    wrong_type = sf.call(
        "PUT",
        f"{INGEST}/{job_id}/batches",
        data=b"LastName\nA\n",
        headers={"Content-Type": "application/json"},
    )
    assert wrong_type.status_code == 415
    too_big = sf.call(
        "PUT",
        f"{INGEST}/{job_id}/batches",
        data=b"LastName\n" + b"A" * (100 * 1024 * 1024),
        headers={"Content-Type": "text/csv"},
    )
    assert too_big.status_code == 413
    sf.call("PATCH", f"{INGEST}/{job_id}", json={"state": "Aborted"})
    closed = sf.call(
        "PUT", f"{INGEST}/{job_id}/batches", data=b"LastName\nA\n", headers={"Content-Type": "text/csv"}
    )
    assert closed.status_code == 409
    assert closed.json()[0]["errorCode"] == "INVALIDJOBSTATE"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("LastName,Shoe__c\nA,9\n", "InvalidBatch : Field name not found : Shoe__c"),
        ("LastName\r\nA\r\n", "LineEnding is invalid"),
    ],
)
def test_bad_data_fails_the_job(sf: SfApi, data: str, message: str) -> None:
    _, info = _run_ingest(sf, {"object": "Contact", "operation": "insert"}, data)
    assert info["state"] == "Failed"
    assert message in info["errorMessage"]
    assert sf.rows("Contact") == []


def test_job_passes_through_states(sf: SfApi) -> None:
    sf.admin.config(bulk_processing_delay_s=0.4)
    _, info = _run_ingest(sf, {"object": "Account", "operation": "insert"}, "Name\nAcme\n")
    order = ["UploadComplete", "InProgress", "JobComplete"]
    seen = info["_seen"]
    assert seen[-1] == "JobComplete"
    assert [order.index(state) for state in seen] == sorted(order.index(state) for state in seen)


def test_query_job_with_locator_paging(sf: SfApi) -> None:
    sf.admin.seed(
        {
            "objects": {
                "Account": [{"Name": f"Org {i:03d}", "Phone": "1" if i % 2 else None} for i in range(25)]
            }
        }
    )
    created = sf.call(
        "POST",
        "jobs/query",
        json={"operation": "query", "query": "SELECT Name, Phone, Owner.Username FROM Account ORDER BY Name"},
    )
    assert created.status_code == 200
    job_id = created.json()["id"]
    assert _wait(sf, f"jobs/query/{job_id}")["numberRecordsProcessed"] == 25
    rows, locator, pages = [], None, 0
    while True:
        params = {"maxRecords": 10, **({"locator": locator} if locator else {})}
        page = sf.call("GET", f"jobs/query/{job_id}/results", params=params, headers={"Accept": "text/csv"})
        assert page.status_code == 200
        batch = _csv(page.text)
        assert int(page.headers["Sforce-NumberOfRecords"]) == len(batch)
        rows += batch
        pages += 1
        locator = page.headers["Sforce-Locator"]
        if locator == "null":
            break
    assert pages == 3
    assert list(rows[0]) == ["Name", "Phone", "Owner.Username"]
    assert [r["Name"] for r in rows] == [f"Org {i:03d}" for i in range(25)]
    assert rows[0]["Phone"] == ""
    assert rows[1]["Owner.Username"] == "sandbox@crm-sync.test"
    other_version = sf.call("GET", f"jobs/query/{job_id}/results", version="61.0")
    assert other_version.status_code == 409
    bad = sf.call("POST", "jobs/query", json={"operation": "query", "query": "SELECT Nope FROM Account"})
    assert bad.status_code == 400
    assert bad.json()[0]["errorCode"] == "INVALID_FIELD"


def test_simple_salesforce_bulk2(sf: SfApi) -> None:
    client = Salesforce(
        session_id=sf.token,
        instance_url=sf.conn["extra"]["instance_url"],
        version="62.0",
        session=sf.sandbox.session("salesforce"),
    )
    records = [{"HP_PMI_ID__c": f"P{i}", "LastName": f"Last {i}"} for i in range(30)]
    result = client.bulk2.Contact.upsert(records=records, external_id_field="HP_PMI_ID__c", wait=0.1)
    assert result[0]["numberRecordsProcessed"] == 30
    assert result[0]["numberRecordsFailed"] == 0
    pages = list(
        client.bulk2.Contact.query("SELECT HP_PMI_ID__c, LastName FROM Contact", max_records=12, wait=0.1)
    )
    assert len(pages) == 3
    assert sum(len(_csv(page)) for page in pages) == 30
    assert len(sf.rows("Opportunity")) == 30  # journeys created by automation
