"""Salesforce emulator: sObject Collections create, update, upsert and delete."""

from __future__ import annotations

import pytest

from .conftest import SfApi

pytestmark = pytest.mark.sandbox


def _contact(**fields: object) -> dict:
    return {"attributes": {"type": "Contact"}, **fields}


def test_create_mixed_results_in_order(sf: SfApi) -> None:
    response = sf.call(
        "POST",
        "composite/sobjects",
        json={
            "allOrNone": False,
            "records": [_contact(LastName="A"), _contact(FirstName="no last"), _contact(LastName="C")],
        },
    )
    assert response.status_code == 200
    results = response.json()
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1] == {
        "id": None,
        "success": False,
        "errors": [
            {
                "statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [LastName]",
                "fields": ["LastName"],
            }
        ],
    }
    assert sorted(r["LastName"] for r in sf.rows("Contact")) == ["A", "C"]


def test_all_or_none_rolls_back_everything(sf: SfApi) -> None:
    response = sf.call(
        "POST",
        "composite/sobjects",
        json={
            "allOrNone": True,
            "records": [_contact(LastName="A", HP_PMI_ID__c="P1"), _contact(LastName="x" * 100)],
        },
    )
    results = response.json()
    assert response.status_code == 200
    assert results[0]["success"] is False
    assert results[0]["id"] is None
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert sf.rows("Contact") == []
    assert sf.rows("Opportunity") == []  # the automation's journey was rolled back too


def test_update_and_delete(sf: SfApi) -> None:
    ids = sf.admin.seed({"objects": {"Contact": [{"LastName": "A"}, {"LastName": "B"}]}})["ids"]["Contact"]
    response = sf.call(
        "PATCH",
        "composite/sobjects",
        json={
            "records": [
                _contact(id=ids[0], FirstName="Ann"),
                _contact(FirstName="no id"),
                _contact(id="003000000000000AAA", FirstName="ghost"),
            ]
        },
    )
    results = response.json()
    assert results[0] == {"id": ids[0], "success": True, "errors": []}
    assert results[1]["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    assert results[2]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    deleted = sf.call("DELETE", "composite/sobjects", params={"ids": f"{ids[1]},001000000000000AAA"}).json()
    assert deleted[0] == {"id": ids[1], "success": True, "errors": []}
    assert deleted[1]["success"] is False
    assert [r["LastName"] for r in sf.rows("Contact")] == ["A"]


def test_upsert_by_external_id(sf: SfApi) -> None:
    sf.admin.seed({"objects": {"Contact": [{"LastName": "Old", "HP_PMI_ID__c": "P1"}]}})
    response = sf.call(
        "PATCH",
        "composite/sobjects/Contact/HP_PMI_ID__c",
        json={
            "allOrNone": False,
            "records": [
                _contact(HP_PMI_ID__c="P1", LastName="Updated"),
                _contact(HP_PMI_ID__c="P2", LastName="New"),
                _contact(HP_PMI_ID__c="P3", LastName="Dup a"),
                _contact(HP_PMI_ID__c="p3", LastName="Dup b"),
                _contact(HP_PMI_ID__c="P4"),
            ],
        },
    )
    assert response.status_code == 200
    results = response.json()
    assert [(r["success"], r["created"]) for r in results] == [
        (True, False),
        (True, True),
        (False, False),
        (False, False),
        (False, False),
    ]
    assert {r["errors"][0]["statusCode"] for r in results[2:4]} == {"DUPLICATE_EXTERNAL_ID"}
    assert results[4]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert sorted((r["HP_PMI_ID__c"], r["LastName"]) for r in sf.rows("Contact")) == [
        ("P1", "Updated"),
        ("P2", "New"),
    ]
    calls = sf.admin.calls()["by_route"]
    assert calls["PATCH /services/data/v{version}/composite/sobjects/{sobject}/{field}"] == 1


def test_whole_call_errors(sf: SfApi) -> None:
    too_many = sf.call(
        "POST", "composite/sobjects", json={"records": [_contact(LastName=str(i)) for i in range(201)]}
    )
    assert too_many.status_code == 400
    assert too_many.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    no_type = sf.call("POST", "composite/sobjects", json={"records": [{"LastName": "x"}]})
    assert no_type.status_code == 400
    unknown_field = sf.call(
        "POST", "composite/sobjects", json={"records": [_contact(LastName="x", Nope__c=1)]}
    )
    assert unknown_field.status_code == 400
    assert unknown_field.json()[0]["errorCode"] == "INVALID_FIELD"
    not_external = sf.call(
        "PATCH", "composite/sobjects/Contact/LastName", json={"records": [_contact(LastName="x")]}
    )
    assert not_external.status_code == 400
    assert (
        sf.call(
            "PATCH",
            "composite/sobjects/Contact/HP_PMI_ID__c",
            version="45.0",
            json={"records": [_contact(HP_PMI_ID__c="P1", LastName="x")]},
        ).status_code
        == 404
    )
    assert sf.rows("Contact") == []
