"""Salesforce emulator: sObject CRUD, external-id reads and upserts, validation, describe, automation."""

from __future__ import annotations

import pytest

from .conftest import SfApi

pytestmark = pytest.mark.sandbox


def test_crud_round_trip(sf: SfApi) -> None:
    created = sf.call("POST", "sobjects/Contact/", json={"LastName": "Holmes", "Birthdate": "1954-01-06"})
    assert created.status_code == 201
    contact_id = created.json()["id"]
    assert created.json() == {"id": contact_id, "success": True, "errors": []}
    assert len(contact_id) == 18
    assert contact_id.startswith("003")
    record = sf.call(
        "GET", f"sobjects/Contact/{contact_id}", params={"fields": "LastName,Birthdate,Name"}
    ).json()
    assert record == {
        "attributes": {"type": "Contact", "url": f"/services/data/v62.0/sobjects/Contact/{contact_id}"},
        "LastName": "Holmes",
        "Birthdate": "1954-01-06",
        "Name": "Holmes",
    }
    assert (
        sf.call("PATCH", f"sobjects/Contact/{contact_id}", json={"FirstName": "Sherlock"}).status_code == 204
    )
    full = sf.call("GET", f"sobjects/Contact/{contact_id[:15]}").json()
    assert full["Name"] == "Sherlock Holmes"
    assert full["OwnerId"] == "005000000000001AAA"
    assert full["CreatedDate"].endswith("+0000")
    assert sf.call("DELETE", f"sobjects/Contact/{contact_id}").status_code == 204
    gone = sf.call("GET", f"sobjects/Contact/{contact_id}")
    assert gone.status_code == 404
    assert gone.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    missing = sf.call("PATCH", "sobjects/Contact/003000000000000AAA", json={"FirstName": "x"})
    assert missing.status_code == 404
    assert missing.json()[0]["errorCode"] == "NOT_FOUND"


def test_ids_are_unique_across_objects(sf: SfApi) -> None:
    ids = {sf.call("POST", "sobjects/Account", json={"Name": f"A{i}"}).json()["id"] for i in range(5)}
    ids |= {sf.call("POST", "sobjects/Product2", json={"Name": f"P{i}"}).json()["id"] for i in range(5)}
    assert len(ids) == 10
    assert all(len(i) == 18 for i in ids)
    assert {i[:3] for i in ids} == {"001", "01t"}


@pytest.mark.parametrize(
    ("body", "code", "message", "fields"),
    [
        (
            {"FirstName": "No Last"},
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [LastName]",
            ["LastName"],
        ),
        (
            {"LastName": "x" * 81},
            "STRING_TOO_LONG",
            "Last Name: data value too large (max length=80)",
            ["LastName"],
        ),
        (
            {"LastName": "x", "Birthdate": "13/45/2020"},
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            "Birthdate: value not of required type",
            ["Birthdate"],
        ),
        (
            {"LastName": "x", "AccountId": "12345"},
            "MALFORMED_ID",
            "Account ID: id value of incorrect type: 12345",
            ["AccountId"],
        ),
        (
            {"LastName": "x", "AccountId": "003000000000000AAA"},
            "FIELD_INTEGRITY_EXCEPTION",
            "Account ID: id value of incorrect type: 003000000000000AAA",
            ["AccountId"],
        ),
        (
            {"LastName": "x", "AccountId": "001000000000000AAA"},
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
            ["AccountId"],
        ),
        (
            {"LastName": "x", "Email": "not-an-email"},
            "INVALID_EMAIL_ADDRESS",
            "Email: invalid email address",
            ["Email"],
        ),
        (
            {"LastName": "x", "DV_Enrollment__c": "maybe"},
            "INVALID_TYPE_ON_FIELD_IN_RECORD",
            "DV Enrollment: value not of required type",
            ["DV_Enrollment__c"],
        ),
        ({"LastName": "x", "Name": "Computed"}, "INVALID_FIELD_FOR_INSERT_UPDATE", None, ["Name"]),
    ],
)
def test_validation_errors(sf: SfApi, body: dict, code: str, message: str | None, fields: list[str]) -> None:
    response = sf.call("POST", "sobjects/Contact", json=body)
    assert response.status_code == 400
    error = response.json()[0]
    assert error["errorCode"] == code
    assert error["fields"] == fields
    if message is not None:
        assert error["message"] == message
    assert "xxxxxxxx" not in error["message"]  # values are never echoed for length errors
    assert sf.rows("Contact") == []


def test_unknown_field_fails_the_call(sf: SfApi) -> None:
    response = sf.call("POST", "sobjects/Contact", json={"LastName": "x", "Shoe_Size__c": 9})
    assert response.status_code == 400
    assert response.json()[0] == {
        "errorCode": "INVALID_FIELD",
        "message": "No such column 'Shoe_Size__c' on sobject of type Contact",
        "fields": [],
    }


def test_restricted_picklist_and_duplicate_value(sf: SfApi) -> None:
    bad_stage = sf.call(
        "POST", "sobjects/Opportunity", json={"Name": "x", "StageName": "Won-ish", "CloseDate": "2025-01-01"}
    )
    assert bad_stage.json()[0]["errorCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    assert bad_stage.json()[0]["message"] == "Stage: bad value for restricted picklist field: Won-ish"
    first = sf.call("POST", "sobjects/Contact", json={"LastName": "A", "HP_PMI_ID__c": "P1"}).json()["id"]
    duplicate = sf.call("POST", "sobjects/Contact", json={"LastName": "B", "HP_PMI_ID__c": "p1"})
    assert duplicate.status_code == 400
    assert duplicate.json()[0]["errorCode"] == "DUPLICATE_VALUE"
    assert (
        duplicate.json()[0]["message"]
        == f"duplicate value found: HP_PMI_ID__c duplicates value on record with id: {first}"
    )


def test_duplicate_email_rule_and_lock_rows(sf: SfApi) -> None:
    sf.admin.config(duplicate_email_rule=True, lock_rows={"keys": ["P9"], "times": 1})
    assert (
        sf.call("POST", "sobjects/Contact", json={"LastName": "A", "Email": "a@example.org"}).status_code
        == 201
    )
    rule = sf.call("POST", "sobjects/Contact", json={"LastName": "B", "Email": "A@example.org"})
    assert rule.json()[0]["errorCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    locked = sf.call("PATCH", "sobjects/Contact/HP_PMI_ID__c/P9", json={"LastName": "C"})
    assert locked.status_code == 400
    assert locked.json()[0]["errorCode"] == "UNABLE_TO_LOCK_ROW"
    assert sf.call("PATCH", "sobjects/Contact/HP_PMI_ID__c/P9", json={"LastName": "C"}).status_code == 201


def test_external_id_reads_and_upsert_codes(sf: SfApi) -> None:
    created = sf.call("PATCH", "sobjects/Contact/HP_PMI_ID__c/P123", json={"LastName": "Holmes"})
    assert created.status_code == 201
    contact_id = created.json()["id"]
    assert created.json() == {"id": contact_id, "success": True, "errors": [], "created": True}
    updated = sf.call("PATCH", "sobjects/Contact/HP_PMI_ID__c/P123", json={"FirstName": "Sherlock"})
    assert updated.status_code == 200
    assert updated.json() == {"id": contact_id, "success": True, "errors": [], "created": False}
    old_api = sf.call("PATCH", "sobjects/Contact/HP_PMI_ID__c/P123", json={"FirstName": "S."}, version="45.0")
    assert old_api.status_code == 204
    assert old_api.content == b""
    old_create = sf.call(
        "PATCH", "sobjects/Contact/HP_PMI_ID__c/P124", json={"LastName": "W"}, version="42.0"
    )
    assert old_create.status_code == 201
    assert "created" not in old_create.json()
    record = sf.call("GET", "sobjects/Contact/HP_PMI_ID__c/P123").json()
    assert (record["Id"], record["FirstName"]) == (contact_id, "S.")
    assert sf.call("GET", "sobjects/Contact/HP_PMI_ID__c/P999").status_code == 404
    not_external = sf.call("PATCH", "sobjects/Contact/LastName/Holmes", json={"FirstName": "x"})
    assert not_external.status_code == 404
    assert not_external.json()[0]["errorCode"] == "NOT_FOUND"
    # Opportunity.HP_PMI_ID__c is an external id that is not unique: two journeys -> 300.
    for _ in range(2):
        sf.call(
            "POST",
            "sobjects/Opportunity",
            json={"Name": "J", "StageName": "Prospecting", "CloseDate": "2025-01-01", "HP_PMI_ID__c": "P777"},
        )
    multiple = sf.call("PATCH", "sobjects/Opportunity/HP_PMI_ID__c/P777", json={"Name": "K"})
    assert multiple.status_code == 300
    assert len(multiple.json()) == 2
    assert all(url.startswith("/services/data/v62.0/sobjects/Opportunity/006") for url in multiple.json())
    assert sf.call("GET", "sobjects/Opportunity/HP_PMI_ID__c/P777").status_code == 300


def test_journey_automation(sf: SfApi) -> None:
    account = sf.call("POST", "sobjects/Account", json={"Name": "CUMC"}).json()["id"]
    contact = sf.call(
        "POST", "sobjects/Contact", json={"LastName": "H", "HP_PMI_ID__c": "P42", "AccountId": account}
    )
    contact_id = contact.json()["id"]
    journeys = sf.rows("Opportunity")
    assert len(journeys) == 1
    journey = journeys[0]
    assert journey["Contact__c"] == contact_id
    assert journey["HP_PMI_ID__c"] == "P42"
    assert journey["Name"] == "P42 Journey"
    assert journey["AccountId"] == account
    assert journey["StageName"] == "Prospecting"
    assert journey["CloseDate"]
    # A contact without a PMI id gets none; setting the PMI id later creates it once.
    pardot = sf.call("POST", "sobjects/Contact", json={"LastName": "Pardot"}).json()["id"]
    assert len(sf.rows("Opportunity")) == 1
    sf.call("PATCH", f"sobjects/Contact/{pardot}", json={"HP_PMI_ID__c": "P43"})
    sf.call("PATCH", f"sobjects/Contact/{pardot}", json={"FirstName": "Again"})
    assert sorted(j["HP_PMI_ID__c"] for j in sf.rows("Opportunity")) == ["P42", "P43"]
    sf.admin.config(automation=False)
    sf.call("POST", "sobjects/Contact", json={"LastName": "Manual", "HP_PMI_ID__c": "P44"})
    assert len(sf.rows("Opportunity")) == 2


def test_describe(sf: SfApi) -> None:
    body = sf.call("GET", "sobjects/Contact/describe/").json()
    assert body["name"] == "Contact"
    assert body["keyPrefix"] == "003"
    fields = {f["name"]: f for f in body["fields"]}
    assert fields["LastName"]["nillable"] is False
    assert fields["LastName"]["length"] == 80
    assert fields["HP_PMI_ID__c"]["externalId"] is True
    assert fields["HP_PMI_ID__c"]["unique"] is True
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["AccountId"]["relationshipName"] == "Account"
    assert fields["Name"]["createable"] is False
    stage = {f["name"]: f for f in sf.call("GET", "sobjects/Opportunity/describe").json()["fields"]}[
        "StageName"
    ]
    assert stage["restrictedPicklist"] is True
    assert {
        "value": "Closed Won",
        "label": "Closed Won",
        "active": True,
        "defaultValue": False,
        "validFor": None,
    } in stage["picklistValues"]
    assert sf.call("GET", "sobjects/Nope/describe").status_code == 404
    names = {o["name"] for o in sf.call("GET", "sobjects").json()["sobjects"]}
    assert {"Account", "Contact", "Opportunity", "User", "SBQQ__Quote__c", "OrderItem"} <= names


def test_seed_is_atomic_and_validated(sf: SfApi) -> None:
    from sandbox.admin_client import AdminError

    with pytest.raises(AdminError, match="REQUIRED_FIELD_MISSING"):
        sf.admin.seed({"objects": {"Account": [{"Name": "ok"}, {"Phone": "1"}]}})
    assert sf.rows("Account") == []
    ids = sf.admin.seed(
        {"objects": {"Contact": [{"LastName": "A", "HP_PMI_ID__c": "P1"}]}, "automation": False}
    )
    assert len(ids["ids"]["Contact"]) == 1
    assert sf.rows("Opportunity") == []


def test_cpq_chain(sf: SfApi) -> None:
    """The object chain seed 004 walks: Opportunity -> quote -> order -> items -> consumption rates."""
    ids = sf.admin.seed(
        {
            "objects": {
                "Account": [
                    {
                        "Name": "Pavillio County",
                        "ia_crm__Email_ID__c": "ap@county.example",
                        "BillingCity": "X",
                    }
                ],
                "Product2": [{"Name": "Pavillio Subscription - Core Billing", "ProductCode": "CASH-CORE"}],
            }
        }
    )["ids"]
    account, product = ids["Account"][0], ids["Product2"][0]
    contact = sf.call("POST", "sobjects/Contact", json={"LastName": "Payable", "AccountId": account}).json()[
        "id"
    ]
    opp = sf.call(
        "POST",
        "sobjects/Opportunity",
        json={
            "Name": "Deal",
            "StageName": "Closed Won",
            "CloseDate": "2025-01-01",
            "Type": "New Logo",
            "AccountId": account,
            "ContactId": contact,
        },
    ).json()["id"]
    quote = sf.call(
        "POST",
        "sobjects/SBQQ__Quote__c",
        json={"SBQQ__Opportunity2__c": opp, "SBQQ__PrimaryContact__c": contact, "SBQQ__Primary__c": True},
    ).json()["id"]
    sf.call("PATCH", f"sobjects/Opportunity/{opp}", json={"SBQQ__PrimaryQuote__c": quote})
    line = sf.call(
        "POST",
        "sobjects/OpportunityLineItem",
        json={"OpportunityId": opp, "Product2Id": product, "Quantity": 1},
    )
    assert line.status_code == 201
    order = sf.call(
        "POST",
        "sobjects/Order",
        json={
            "AccountId": account,
            "OpportunityId": opp,
            "SBQQ__Quote__c": quote,
            "Status": "Draft",
            "EffectiveDate": "2025-01-01",
        },
    ).json()["id"]
    item = sf.call(
        "POST", "sobjects/OrderItem", json={"OrderId": order, "Product2Id": product, "Quantity": 1}
    ).json()["id"]
    schedule = sf.call(
        "POST", "sobjects/SBQQ__OrderItemConsumptionSchedule__c", json={"SBQQ__OrderItem__c": item}
    ).json()["id"]
    for lower, price in ((1, 2.5), (100, 2.0)):
        assert (
            sf.call(
                "POST",
                "sobjects/SBQQ__OrderItemConsumptionRate__c",
                json={
                    "SBQQ__OrderItemConsumptionSchedule__c": schedule,
                    "SBQQ__LowerBound__c": lower,
                    "SBQQ__Price__c": price,
                },
            ).status_code
            == 201
        )
    products = sf.query(
        f"SELECT ProductCode, Product2.Name FROM OpportunityLineItem WHERE OpportunityId = '{opp}'"
    ).json()
    assert products["records"][0]["ProductCode"] == "CASH-CORE"  # copied from the product, read-only
    assert products["records"][0]["Product2"]["Name"] == "Pavillio Subscription - Core Billing"
    rates = sf.query(
        "SELECT SBQQ__LowerBound__c, SBQQ__Price__c, "
        "SBQQ__OrderItemConsumptionSchedule__r.SBQQ__OrderItem__r.Order.Account.Name "
        f"FROM SBQQ__OrderItemConsumptionRate__c WHERE SBQQ__OrderItemConsumptionSchedule__c = '{schedule}' "
        "ORDER BY SBQQ__LowerBound__c"
    ).json()["records"]
    assert [(r["SBQQ__LowerBound__c"], r["SBQQ__Price__c"]) for r in rates] == [(1.0, 2.5), (100.0, 2.0)]
    assert (
        rates[0]["SBQQ__OrderItemConsumptionSchedule__r"]["SBQQ__OrderItem__r"]["Order"]["Account"]["Name"]
        == "Pavillio County"
    )
    quote_row = sf.query(
        f"SELECT Name, SBQQ__PrimaryContact__r.LastName FROM SBQQ__Quote__c WHERE Id = '{quote}'"
    ).json()
    assert quote_row["records"][0]["Name"].startswith("Q-")
    missing_order = sf.call("POST", "sobjects/Order", json={"AccountId": account, "Status": "Draft"})
    assert missing_order.json()[0]["message"] == "Required fields are missing: [EffectiveDate]"
