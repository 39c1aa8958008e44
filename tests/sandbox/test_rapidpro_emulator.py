"""The RapidPro emulator over real HTTP: auth, paging, contact writes, flow starts, runs, throttling."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox.admin_client import AdminError
from sandbox.testing import Sandbox, start_sandbox

TOKEN = "rapidpro-sandbox-token-0001"
FLOW = "0a1b2c3d-0000-4000-8000-000000000001"
QUIET_FLOW = "0a1b2c3d-0000-4000-8000-000000000002"
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["rapidpro"], tmp_dir=Path(tmp_path_factory.mktemp("rapidpro"))) as started:
        yield started


class Api:
    """Calls /api/v2 with the sandbox token."""

    def __init__(self, sandbox: Sandbox, token: str = TOKEN) -> None:
        self.base = sandbox.url("rapidpro") + "/api/v2"
        self.session = sandbox.session("rapidpro")
        self.session.headers["Authorization"] = f"Token {token}"

    def get(self, endpoint: str, **params: Any) -> requests.Response:
        return self.session.get(f"{self.base}/{endpoint}.json", params=params, timeout=10)

    def post(self, endpoint: str, body: Any, **params: Any) -> requests.Response:
        return self.session.post(f"{self.base}/{endpoint}.json", json=body, params=params, timeout=10)

    def delete(self, endpoint: str, **params: Any) -> requests.Response:
        return self.session.delete(f"{self.base}/{endpoint}.json", params=params, timeout=10)


@pytest.fixture
def admin(sandbox: Sandbox) -> Any:
    admin = sandbox.admin("rapidpro")
    admin.reset()
    admin.seed(
        {
            "fields": [
                {"key": "has_whatsapp", "label": "Has WhatsApp", "value_type": "text"},
                {"key": "age", "label": "Age", "value_type": "numeric"},
                {"key": "tested_on", "label": "Tested on", "value_type": "datetime"},
            ],
            "groups": ["Patients"],
            "flows": [
                {"uuid": FLOW, "name": "GP Connect new contact", "sets_fields_from_params": True},
                {"uuid": QUIET_FLOW, "name": "Survey"},
            ],
        }
    )
    return admin


@pytest.fixture
def api(sandbox: Sandbox, admin: Any) -> Api:
    return Api(sandbox)


def create(api: Api, *urns: str, **extra: Any) -> dict[str, Any]:
    response = api.post("contacts", {"urns": list(urns), **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_auth_missing_or_wrong_token_is_403(sandbox: Sandbox, admin: Any) -> None:
    anonymous = sandbox.session("rapidpro")
    url = sandbox.url("rapidpro") + "/api/v2/contacts.json"
    missing = anonymous.get(url, timeout=10)
    assert missing.status_code == 403
    assert missing.json() == {"detail": "Authentication credentials were not provided."}
    wrong = Api(sandbox, token="not-the-token").get("contacts")
    assert wrong.status_code == 403
    assert wrong.json() == {"detail": "Invalid token"}


def test_contacts_are_paged_newest_first_with_full_cursor_urls(api: Api, admin: Any) -> None:
    admin.config(page_size=3)
    uuids = [create(api, f"tel:+2782123450{i}", groups=["Patients"])["uuid"] for i in range(7)]
    first = api.get("contacts", group="Patients").json()
    assert first["previous"] is None
    assert [c["uuid"] for c in first["results"]] == uuids[::-1][:3]
    next_url = first["next"]
    assert next_url.startswith(api.base + "/contacts.json?")
    assert "cursor" in parse_qs(urlsplit(next_url).query)
    assert parse_qs(urlsplit(next_url).query)["group"] == ["Patients"]

    seen, url = [], api.base + "/contacts.json?group=Patients"
    pages = []
    while url:
        body = api.session.get(url, timeout=10).json()
        pages.append(body)
        seen += [c["uuid"] for c in body["results"]]
        url = body["next"]
    assert seen == uuids[::-1]
    assert [len(p["results"]) for p in pages] == [3, 3, 1]
    back = api.session.get(pages[1]["previous"], timeout=10).json()
    assert [c["uuid"] for c in back["results"]] == [c["uuid"] for c in pages[0]["results"]]

    # an update moves a contact to the top (ordering is by modified_on)
    assert api.post("contacts", {"name": "Updated"}, uuid=uuids[0]).status_code == 200
    assert api.get("contacts").json()["results"][0]["uuid"] == uuids[0]


def test_contact_shape_and_urn_lookup_normalised_server_side(api: Api) -> None:
    contact = create(api, "tel:082 123 4567", "whatsapp:+27821234567", fields={"age": "40.0"})
    assert contact["urns"] == ["tel:+27821234567", "whatsapp:27821234567"]
    assert contact["fields"] == {"has_whatsapp": None, "age": "40", "tested_on": None}
    assert contact["status"] == "active"
    assert DATETIME.match(contact["created_on"])
    assert DATETIME.match(contact["modified_on"])
    for urn in ("tel:+27821234567", "tel:082-123-4567", "tel:(082) 1234567", "whatsapp:27821234567"):
        results = api.get("contacts", urn=urn).json()["results"]
        assert [c["uuid"] for c in results] == [contact["uuid"]], urn
    assert api.get("contacts", urn="tel:+27829999999").json()["results"] == []
    bad = api.get("contacts", urn="12345")
    assert bad.status_code == 400
    assert bad.json() == {"detail": "Invalid URN: 12345"}


def test_field_values_follow_the_field_type(api: Api) -> None:
    contact = create(
        api, "tel:+27821234501", fields={"age": "abc", "tested_on": "2019/09/10", "has_whatsapp": True}
    )
    assert contact["fields"]["age"] is None
    assert contact["fields"]["has_whatsapp"] == "true"
    updated = api.post("contacts", {"fields": {"tested_on": "10-09-2019", "age": 7}}, uuid=contact["uuid"])
    assert updated.json()["fields"]["tested_on"] == "2019-09-10T00:00:00.000000+02:00"
    assert updated.json()["fields"]["age"] == "7"
    # a timestamp without an offset is ambiguous: stored as null
    naive = api.post("contacts", {"fields": {"tested_on": "2019-09-10T10:00:00"}}, uuid=contact["uuid"])
    assert naive.json()["fields"]["tested_on"] is None


def test_create_validation_errors_as_rapidpro_reports_them(api: Api, admin: Any) -> None:
    create(api, "tel:+27821234567")
    unknown = api.post("contacts", {"urns": ["tel:+27821111111"], "fields": {"nope": "x"}})
    assert unknown.status_code == 400
    assert unknown.json() == {"fields": ["Invalid contact field key: nope"]}

    taken = api.post("contacts", {"urns": ["tel:+27 82 123 4567"]})
    assert taken.status_code == 400
    assert taken.json() == {"urns": {"0": ["URN is in use by another contact."]}}

    invalid = api.post("contacts", {"urns": ["tel:+27821111112", "1234556789"], "language": "xx"})
    assert invalid.status_code == 400
    assert invalid.json() == {
        "urns": {"1": ["Invalid URN: 1234556789. Ensure phone numbers contain country codes."]},
        "language": ["Not a valid ISO639-3 language code."],
    }
    too_many = api.post("contacts", {"urns": [f"twitter:bob{i}" for i in range(101)]})
    assert too_many.json() == {"urns": ["Ensure this field has no more than 100 elements."]}
    not_object = api.post("contacts", [])
    assert not_object.json() == {"non_field_errors": ["Request body should be a single JSON object"]}

    admin.config(server_version="legacy")
    legacy = api.post("contacts", {"urns": ["tel:+27821234567"]})
    assert legacy.json() == {"urns": ["URN belongs to another contact: tel:+27821234567"]}
    assert admin.state()["counts"]["contacts"] == 1


def test_upsert_by_urn_update_by_uuid_and_delete(api: Api, admin: Any) -> None:
    created = api.post("contacts", {"name": "Ann"}, urn="tel:+27821234567")
    assert created.status_code == 201
    assert created.json()["urns"] == ["tel:+27821234567"]
    uuid = created.json()["uuid"]

    updated = api.post("contacts", {"name": "Ann B"}, urn="tel:082 123 4567")
    assert updated.status_code == 200
    assert (updated.json()["uuid"], updated.json()["name"]) == (uuid, "Ann B")

    with_urns = api.post("contacts", {"urns": ["tel:+27820000000"]}, urn="tel:+27821234567")
    assert with_urns.status_code == 400
    assert with_urns.json() == {"urns": ["Field not allowed when using URN in URL"]}

    by_uuid = api.post("contacts", {"urns": ["tel:+27821234568", "whatsapp:27821234568"]}, uuid=uuid)
    assert by_uuid.status_code == 200
    assert by_uuid.json()["urns"] == ["tel:+27821234568", "whatsapp:27821234568"]
    assert api.get("contacts", urn="tel:+27821234567").json()["results"] == []

    both = api.post("contacts", {}, uuid=uuid, urn="tel:+27821234568")
    assert both.json() == {"detail": "URL can only contain one of the following parameters: urn, uuid"}
    assert api.post("contacts", {}, uuid="ad6acad9-959b-4d70-b144-5de2891e4d00").status_code == 404

    assert api.delete("contacts", uuid=uuid).status_code == 204
    assert api.delete("contacts", uuid=uuid).status_code == 404
    assert api.delete("contacts").json() == {
        "detail": "URL must contain one of the following parameters: urn, uuid"
    }
    deleted = api.get("contacts", deleted="true").json()["results"]
    assert [(c["uuid"], c["urns"], c["status"]) for c in deleted] == [(uuid, [], None)]
    # the deleted contact released its URN
    assert create(api, "tel:+27821234568")["uuid"] != uuid
    gone = api.post("contacts", {"name": "x"}, uuid=uuid)
    assert gone.json() == {"non_field_errors": ["Deleted contacts can't be modified."]}


def test_fields_and_groups_list_and_create(api: Api, admin: Any) -> None:
    listed = {f["key"]: f for f in api.get("fields").json()["results"]}
    assert listed["age"]["type"] == "number"
    assert listed["age"]["value_type"] == "numeric"
    assert listed["age"]["name"] == listed["age"]["label"] == "Age"

    created = api.post("fields", {"name": "District Name", "type": "text"})
    assert created.status_code == 201
    assert created.json()["key"] == "district_name"
    legacy = api.post("fields", {"label": "Score", "value_type": "numeric"})
    assert (legacy.status_code, legacy.json()["type"]) == (201, "number")
    duplicate = api.post("fields", {"name": "district name", "type": "text"})
    assert duplicate.json() == {"name": ["This field must be unique."]}
    bad_type = api.post("fields", {"name": "Other", "type": "money"})
    assert bad_type.json() == {"type": ['"money" is not a valid choice.']}

    group = api.post("groups", {"name": "Staff"})
    assert (group.status_code, group.json()["name"], group.json()["count"]) == (201, "Staff", 0)
    assert api.post("groups", {"name": "patients"}).json() == {"name": ["This field must be unique."]}
    assert [g["name"] for g in api.get("groups", name="Staff").json()["results"]] == ["Staff"]

    admin.config(server_version="legacy")
    old = {f["key"]: f for f in api.get("fields").json()["results"]}
    assert old["age"] == {"key": "age", "label": "Age", "value_type": "numeric"}


def test_flow_start_validation(api: Api) -> None:
    contact = create(api, "tel:+27821234567")["uuid"]
    cases = [
        ({"contacts": [contact]}, {"flow": ["This field is required."]}),
        ({"flow": "nope", "contacts": [contact]}, {"flow": ["No such object: nope"]}),
        ({"flow": FLOW}, {"non_field_errors": ["Must specify at least one group, contact or URN"]}),
        ({"flow": FLOW, "contacts": ["abcde"]}, {"contacts": ["No such object: abcde"]}),
        ({"flow": FLOW, "contacts": [contact], "params": [1]}, {"params": ["Must be a valid JSON object"]}),
        ({"flow": FLOW, "contacts": [contact], "extra": "YES"}, {"extra": ["Must be a valid JSON object"]}),
        (
            {"flow": FLOW, "contacts": [contact], "params": {"foo": "a" * 10_000}},
            {"params": ["Cannot exceed 10,000 characters encoded."]},
        ),
        (
            {"flow": FLOW, "contacts": [contact] * 101},
            {"contacts": ["Ensure this field has no more than 100 elements."]},
        ),
        (
            {"flow": FLOW, "contacts": [contact], "restart_participants": "maybe"},
            {"restart_participants": ["Must be a valid boolean."]},
        ),
    ]
    for body, errors in cases:
        response = api.post("flow_starts", body)
        assert (response.status_code, response.json()) == (400, errors), body


def test_flow_start_executes_runs_and_sets_fields_from_params(api: Api, admin: Any) -> None:
    contact = create(api, "tel:+27821234567")
    response = api.post(
        "flow_starts",
        {
            "flow": FLOW,
            "contacts": [contact["uuid"]],
            "params": {"has_whatsapp": True, "age": 41, "not a field": None},
            "extra": {"age": 1},
            "restart_participants": 1,
        },
    )
    assert response.status_code == 201
    start = response.json()
    assert start["status"] == "pending"
    assert start["flow"] == {"uuid": FLOW, "name": "GP Connect new contact"}
    assert start["contacts"] == [{"uuid": contact["uuid"], "name": None}]
    # `params` wins over `extra`; keys are normalised as RapidPro does, null becomes ""
    assert start["params"] == start["extra"] == {"has_whatsapp": True, "age": 41, "not_a_field": ""}
    assert DATETIME.match(start["created_on"])

    fields = api.get("contacts", uuid=contact["uuid"]).json()["results"][0]["fields"]
    assert fields == {"has_whatsapp": "true", "age": "41", "tested_on": None}
    runs = api.get("runs", flow=FLOW).json()["results"]
    assert [(r["contact"]["uuid"], r["start"]["uuid"], r["status"]) for r in runs] == [
        (contact["uuid"], start["uuid"], "completed")
    ]
    listed = api.get("flow_starts", uuid=start["uuid"]).json()["results"]
    assert listed[0]["status"] == "completed"

    # restart_participants=false skips contacts already in the flow; a quiet flow sets nothing
    again = api.post(
        "flow_starts", {"flow": FLOW, "contacts": [contact["uuid"]], "restart_participants": False}
    )
    assert again.status_code == 201
    quiet = api.post("flow_starts", {"flow": QUIET_FLOW, "urns": ["tel:+27820000002"], "extra": {"age": 9}})
    assert quiet.status_code == 201
    state = admin.state(runs=1, contacts=1)
    assert len([r for r in state["runs"] if r["flow"]["uuid"] == FLOW]) == 1
    # a start by URN creates the contact, as mailroom does
    new = [c for c in state["contacts"] if c["urns"] == ["tel:+27820000002"]]
    assert len(new) == 1
    assert new[0]["fields"]["age"] is None


def test_flow_delay_keeps_starts_pending_until_executed(api: Api, admin: Any) -> None:
    admin.config(flow_delay_s=3600)
    contact = create(api, "tel:+27821234567")["uuid"]
    start = api.post("flow_starts", {"flow": FLOW, "contacts": [contact], "params": {"age": 5}}).json()
    assert api.get("flow_starts").json()["results"][0]["status"] == "pending"
    assert api.get("runs").json()["results"] == []
    assert admin.action("execute_flow_starts") == {"executed": 1}
    assert api.get("flow_starts", uuid=start["uuid"]).json()["results"][0]["status"] == "completed"
    assert api.get("contacts", uuid=contact).json()["results"][0]["fields"]["age"] == "5"


def test_legacy_server_reads_only_extra(api: Api, admin: Any) -> None:
    admin.config(server_version="legacy")
    contact = create(api, "tel:+27821234567")["uuid"]
    body = {"flow": FLOW, "contacts": [contact], "params": {"age": 1}, "extra": {"age": 2}}
    start = api.post("flow_starts", body).json()
    assert "params" not in start
    assert start["extra"] == {"age": 2}
    assert isinstance(start["id"], int)
    assert api.get("contacts", uuid=contact).json()["results"][0]["fields"]["age"] == "2"


def test_throttling_answers_429_with_retry_after(sandbox: Sandbox, api: Api, admin: Any) -> None:
    config = admin.config(rate_per_minute=2)
    assert (config["rate_limit"], config["rate_window_s"]) == (2, 60.0)
    assert api.get("contacts").status_code == 200
    assert api.get("contacts").status_code == 200
    throttled = api.get("contacts")
    assert throttled.status_code == 429
    wait = int(throttled.headers["Retry-After"])
    assert 1 <= wait <= 60
    assert throttled.json() == {"detail": f"Request was throttled. Expected available in {wait} seconds."}
    # scopes are separate (contacts vs. fields), and auth is checked before throttling
    assert api.get("fields").status_code == 200
    assert Api(sandbox, token="wrong-token").get("contacts").status_code == 403

    admin.config(rate_limit=1, rate_window_s=0.5)
    assert api.get("contacts").status_code == 200
    assert api.get("contacts").status_code == 429
    deadline = time.monotonic() + 10
    while api.get("contacts").status_code == 429:
        assert time.monotonic() < deadline, "the throttle window never reopened"
        time.sleep(0.1)


def test_seed_is_atomic_and_orgs_are_separate(sandbox: Sandbox, api: Api, admin: Any) -> None:
    with pytest.raises(AdminError, match="contacts\\[1\\] is invalid"):
        admin.seed({"contacts": [{"urns": ["tel:+27821234567"]}, {"fields": {"nope": 1}}]})
    assert admin.state()["counts"]["contacts"] == 0

    seeded = admin.seed(
        {
            "orgs": [
                {
                    "name": "Other Org",
                    "token": "other-org-token-01",
                    "country": "RW",
                    "timezone": "Africa/Kigali",
                }
            ],
            "org": "Other Org",
            "contacts": [
                {"name": "Joe", "urns": ["tel:0788123123"], "uuid": "5a1b2c3d-0000-4000-8000-00000000000a"}
            ],
        }
    )
    assert seeded["contacts"] == ["5a1b2c3d-0000-4000-8000-00000000000a"]
    other = Api(sandbox, token="other-org-token-01")
    assert [c["urns"] for c in other.get("contacts").json()["results"]] == [["tel:+250788123123"]]
    assert other.get("workspace").json()["name"] == "Other Org"
    assert api.get("contacts").json()["results"] == []
    assert api.get("org").json()["name"] == "GP Connect"


def test_calls_are_counted_and_faults_injected(api: Api, admin: Any) -> None:
    admin.faults(
        [{"method": "GET", "path": "/contacts.json", "times": 1, "status": 503, "body": {"detail": "x"}}]
    )
    assert api.get("contacts").status_code == 503
    assert api.get("contacts").status_code == 200
    assert admin.calls()["by_route"]["GET /api/v2/contacts.json"] == 2
