"""The Marketo emulator over real HTTP: identity, envelopes, leads, objects, activities, limits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from sandbox.marketo.backend import CLIENT_ID, CLIENT_SECRET
from sandbox.testing import Sandbox, start_sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["marketo"], tmp_dir=tmp_path_factory.mktemp("marketo")) as running:
        yield running


class Mkto:
    """A bare client: token in the Bearer header, envelopes returned as dicts."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.base = sandbox.url("marketo")
        self.admin = sandbox.admin("marketo")
        self.session = requests.Session()
        self.token = self.login()

    def login(self, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
        response = self.identity(client_id, secret)
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def identity(self, client_id: str, secret: str, grant: str = "client_credentials") -> requests.Response:
        params = {"grant_type": grant, "client_id": client_id, "client_secret": secret}
        return self.session.get(f"{self.base}/identity/oauth/token", params=params, timeout=10)

    def raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.session.request(
            method, f"{self.base}/rest/v1/{path}", headers=headers, timeout=10, **kwargs
        )

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.raw("GET", path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: Any, **params: Any) -> dict[str, Any]:
        response = self.raw("POST", path, json=body, params=params)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def mk(sandbox: Sandbox) -> Mkto:
    sandbox.admin("marketo").reset()
    return Mkto(sandbox)


def error_code(body: dict[str, Any]) -> str:
    assert body["success"] is False, body
    return body["errors"][0]["code"]


def leads(mk: Mkto, *records: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    body = mk.post("leads.json", {"input": list(records), **options})
    assert body["success"] is True, body
    return body["result"]


# ---- identity and auth ---------------------------------------------------------------------------


def test_identity_issues_a_bearer_token_and_returns_it_again_while_alive(mk: Mkto) -> None:
    first = mk.identity(CLIENT_ID, CLIENT_SECRET).json()
    assert first["token_type"] == "bearer"
    assert 3590 <= first["expires_in"] <= 3600
    again = mk.session.post(
        f"{mk.base}/identity/oauth/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        timeout=10,
    ).json()
    assert again["access_token"] == first["access_token"]


def test_identity_refuses_bad_credentials_and_grants(mk: Mkto) -> None:
    bad = mk.identity(CLIENT_ID, "wrong")
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    assert mk.identity(CLIENT_ID, CLIENT_SECRET, grant="password").status_code == 400


def test_token_only_in_the_bearer_header_never_the_query(mk: Mkto) -> None:
    by_query = mk.session.get(
        f"{mk.base}/rest/v1/leads/describe.json", params={"access_token": mk.token}, timeout=10
    ).json()
    assert error_code(by_query) == "601"
    assert "Authorization: Bearer" in by_query["errors"][0]["message"]
    assert (
        error_code(mk.raw("GET", "leads/describe.json", headers={"Authorization": "Bearer nope"}).json())
        == "601"
    )
    assert mk.get("leads/describe.json")["success"] is True
    assert mk.get("stats/usage.json")["result"][0]["total"] == 1, "refused calls are not counted"


def test_expired_tokens_answer_602_until_a_new_one_is_fetched(mk: Mkto) -> None:
    mk.admin.action("expire_tokens")
    assert error_code(mk.get("leads/describe.json")) == "602"
    mk.token = mk.login()
    assert mk.get("leads/describe.json")["success"] is True


def test_short_token_lifetime_knob(mk: Mkto) -> None:
    mk.admin.action("expire_tokens")
    mk.admin.config(token_lifetime_s=30)
    assert mk.identity(CLIENT_ID, CLIENT_SECRET).json()["expires_in"] == 30


# ---- leads ---------------------------------------------------------------------------------------


def test_sync_leads_creates_updates_and_skips_with_reasons(mk: Mkto) -> None:
    results = leads(
        mk,
        {"email": "ann@example.com", "firstName": "Ann"},
        {"email": "bob@example.com", "leadScore": "lots"},
        {"email": "cy@example.com", "favouriteColour": "red"},
        {"email": "ann@example.com", "lastName": "Lee"},
    )
    assert results[0] == {"id": 1001, "status": "created"}
    assert results[1]["status"] == "skipped"
    assert results[1]["reasons"][0]["code"] == "1001"
    assert results[2]["reasons"] == [{"code": "1006", "message": "Field 'favouriteColour' not found"}]
    assert results[3] == {"id": 1001, "status": "updated"}
    lead = mk.get(
        "leads.json", filterType="email", filterValues="ann@example.com", fields="firstName,lastName"
    )
    assert lead["result"] == [{"id": 1001, "firstName": "Ann", "lastName": "Lee"}]


def test_sync_lead_actions_and_lookup_rules(mk: Mkto) -> None:
    leads(mk, {"email": "ann@example.com"})
    assert leads(mk, {"email": "ann@example.com"}, action="createOnly")[0]["reasons"][0]["code"] == "1005"
    assert leads(mk, {"email": "new@example.com"}, action="updateOnly")[0]["reasons"][0]["code"] == "1004"
    assert (
        leads(mk, {"id": 1001, "title": "CTO"}, action="updateOnly", lookupField="id")[0]["status"]
        == "updated"
    )
    with_id = leads(mk, {"id": 1001, "email": "ann@example.com"})
    assert with_id[0]["reasons"][0]["code"] == "1003"
    assert error_code(mk.post("leads.json", {"lookupField": "id", "input": [{"id": 1001}]})) == "1003"
    assert (
        error_code(mk.post("leads.json", {"lookupField": "firstName", "input": [{"firstName": "x"}]}))
        == "1011"
    )
    leads(mk, {"email": "ann@example.com"}, action="createDuplicate")
    assert leads(mk, {"email": "ann@example.com", "title": "x"})[0]["reasons"][0]["code"] == "1007"


def test_writes_take_at_most_300_records(mk: Mkto) -> None:
    too_many = [{"email": f"p{i}@example.com"} for i in range(301)]
    assert error_code(mk.post("leads.json", {"input": too_many})) == "1003"
    assert error_code(mk.post("leads.json", {"input": []})) == "701"
    assert mk.admin.state()["counts"]["leads"] == 0


def test_get_leads_pages_with_next_page_token_and_accepts_post_method_get(mk: Mkto) -> None:
    leads(mk, *[{"email": f"p{i}@example.com", "pipedriveId": i} for i in range(5)])
    values = ",".join(str(i) for i in range(5))
    first = mk.get(
        "leads.json", filterType="pipedriveId", filterValues=values, batchSize=2, fields="pipedriveId"
    )
    assert [r["pipedriveId"] for r in first["result"]] == [0, 1]
    seen = [r["pipedriveId"] for r in first["result"]]
    token = first["nextPageToken"]
    while token:
        page = mk.get(
            "leads.json",
            filterType="pipedriveId",
            filterValues=values,
            batchSize=2,
            fields="pipedriveId",
            nextPageToken=token,
        )
        seen += [r["pipedriveId"] for r in page["result"]]
        token = page.get("nextPageToken")
    assert seen == [0, 1, 2, 3, 4]
    form = mk.raw(
        "POST",
        "leads.json",
        params={"_method": "GET"},
        data={"filterType": "email", "filterValues": "p3@example.com", "fields": "email"},
    ).json()
    assert form["result"] == [{"id": 1004, "email": "p3@example.com"}]
    assert error_code(mk.get("leads.json", filterType="email", filterValues="x", fields="nope")) == "1006"
    assert error_code(mk.get("leads.json", filterType="lastName", filterValues="x")) == "1011"
    many = ",".join(f"v{i}" for i in range(301))
    assert (
        error_code(
            mk.raw(
                "POST",
                "leads.json",
                params={"_method": "GET"},
                data={"filterType": "email", "filterValues": many},
            ).json()
        )
        == "1003"
    )


def test_describe_and_describe2_list_seeded_custom_fields(mk: Mkto) -> None:
    mk.admin.seed({"fields": [{"name": "nps", "dataType": "integer"}]})
    described = {f["rest"]["name"]: f for f in mk.get("leads/describe.json")["result"]}
    assert described["id"]["rest"]["readOnly"] is True
    assert described["pipedriveId"]["dataType"] == "integer"
    assert "nps" in described
    schema = mk.get("leads/describe2.json")["result"][0]
    assert ["nps"] in schema["searchableFields"]
    assert ["email"] in schema["searchableFields"]
    assert {f["name"]: f["updateable"] for f in schema["fields"]}["createdAt"] is False


def test_delete_leads_and_the_deleted_leads_activity(mk: Mkto) -> None:
    leads(mk, {"email": "ann@example.com", "firstName": "Ann"})
    token = mk.get("activities/pagingtoken.json", sinceDatetime="2000-01-01T00:00:00Z")["nextPageToken"]
    result = mk.post("leads/delete.json", {"input": [{"id": 1001}, {"id": 999}]})["result"]
    assert result == [
        {"id": 1001, "status": "deleted"},
        {"id": 999, "status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]},
    ]
    deleted = mk.get("activities/deletedleads.json", nextPageToken=token)["result"]
    assert [(a["leadId"], a["activityTypeId"]) for a in deleted] == [(1001, 37)]


# ---- companies, opportunities, roles -------------------------------------------------------------


def test_companies_dedupe_by_external_id_and_query_by_searchable_fields(mk: Mkto) -> None:
    body = {"input": [{"externalCompanyId": "pd-organization-1", "company": "Acme"}]}
    assert mk.post("companies.json", body)["result"] == [{"seq": 0, "status": "created", "id": 501}]
    again = {"input": [{"externalCompanyId": "pd-organization-1", "company": "Acme Inc"}]}
    assert mk.post("companies.json", again)["result"] == [{"seq": 0, "status": "updated", "id": 501}]
    by_name = mk.get(
        "companies.json", filterType="company", filterValues="Acme Inc", fields="company,externalCompanyId"
    )
    assert by_name["result"] == [{"seq": 0, "company": "Acme Inc", "externalCompanyId": "pd-organization-1"}]
    twice = mk.post("companies.json", {"input": [{"externalCompanyId": "x", "company": "A"}] * 2})["result"]
    assert twice[1]["reasons"][0]["code"] == "1036"
    missing = mk.post("companies.json", {"input": [{"company": "No key"}]})["result"][0]
    assert missing["reasons"][0]["code"] == "1003"
    assert error_code(mk.post("companies.json", {"dedupeBy": "idField", "input": [{"id": 501}]})) == "1003"
    update_by_id = {
        "action": "updateOnly",
        "dedupeBy": "idField",
        "input": [{"id": 501, "industry": "Health"}],
    }
    assert mk.post("companies.json", update_by_id)["result"][0]["status"] == "updated"
    assert error_code(mk.get("companies.json", filterType="industry", filterValues="Health")) == "1003"
    deleted = mk.post(
        "companies/delete.json",
        {"input": [{"externalCompanyId": "pd-organization-1"}, {"externalCompanyId": "zz"}]},
    )
    assert [r["status"] for r in deleted["result"]] == ["deleted", "skipped"]
    assert deleted["result"][1]["reasons"][0]["code"] == "1013"


def test_opportunities_need_a_name_and_roles_their_opportunity_and_lead(mk: Mkto) -> None:
    leads(mk, {"email": "ann@example.com"})
    nameless = mk.post("opportunities.json", {"input": [{"externalOpportunityId": "pd-deal-1"}]})["result"][0]
    assert nameless["status"] == "skipped"
    created = mk.post(
        "opportunities.json",
        {
            "input": [
                {
                    "externalOpportunityId": "pd-deal-1",
                    "name": "Deal",
                    "isWon": "true",
                    "closeDate": "2026-11-30",
                }
            ]
        },
    )["result"][0]
    assert created["status"] == "created"
    assert len(created["marketoGUID"]) == 36
    role = {"externalOpportunityId": "pd-deal-1", "leadId": 1001, "role": "Default Role", "isPrimary": True}
    roles = mk.post(
        "opportunities/roles.json",
        {"input": [role, {**role, "externalOpportunityId": "pd-deal-2"}, {**role, "leadId": 42}]},
    )["result"]
    assert [r["status"] for r in roles] == ["created", "skipped", "skipped"]
    assert [r["reasons"][0]["code"] for r in roles[1:]] == ["1013", "1004"]
    assert (
        mk.post("opportunities/roles.json", {"input": [{**role, "isPrimary": False}]})["result"][0]["status"]
        == "updated"
    )
    compound = mk.post(
        "opportunities/roles.json",
        {
            "filterType": "dedupeFields",
            "fields": ["isPrimary", "role"],
            "input": [{k: role[k] for k in ("externalOpportunityId", "leadId", "role")}],
        },
        _method="GET",
    )
    assert compound["result"] == [{"seq": 0, "isPrimary": False, "role": "Default Role"}]
    described = mk.get("opportunities/roles/describe.json")["result"][0]
    assert described["dedupeFields"] == ["externalOpportunityId", "leadId", "role"]


# ---- activities ----------------------------------------------------------------------------------


def test_custom_activities_report_errors_not_reasons(mk: Mkto) -> None:
    leads(mk, {"email": "ann@example.com"})
    activity = {
        "leadId": 1001,
        "activityDate": "2026-11-25T10:00:00Z",
        "activityTypeId": 100001,
        "primaryAttributeValue": "Follow up with Ann",
        "attributes": [{"apiName": "dueDate", "value": "2026-11-26"}],
    }
    result = mk.post(
        "activities/external.json",
        {"input": [activity, {**activity, "leadId": 77}, {**activity, "activityTypeId": 5}]},
    )["result"]
    assert result[0]["status"] == "added"
    assert result[0]["marketoGUID"]
    assert result[1] == {"status": "skipped", "errors": [{"code": "1004", "message": "Lead not found"}]}
    assert result[2]["errors"][0]["code"] == "1003"
    types = {t["id"] for t in mk.get("activities/types.json")["result"]}
    assert {12, 13, 37, 100001} <= types


def test_lead_changes_page_through_the_token_in_order(mk: Mkto) -> None:
    leads(mk, {"email": "ann@example.com", "firstName": "Ann"})
    token = mk.get("activities/pagingtoken.json", sinceDatetime="2000-01-01T00:00:00+0000")["nextPageToken"]
    leads(mk, {"email": "ann@example.com", "firstName": "Anna", "title": "CTO"})
    mk.admin.action("edit_lead", {"id": 1001, "fields": {"lastName": "Lee"}})
    changes: list[dict[str, Any]] = []
    while True:
        page = mk.get(
            "activities/leadchanges.json", nextPageToken=token, fields="firstName,lastName", batchSize=1
        )
        changes += page["result"]
        token = page["nextPageToken"]
        if not page["moreResult"]:
            break
    assert [c["activityTypeId"] for c in changes] == [12, 13, 13]
    assert changes[1]["fields"] == [{"id": 3, "name": "firstName", "newValue": "Anna", "oldValue": "Ann"}]
    sources = [{a["name"]: a["value"] for a in c["attributes"]}.get("Source") for c in changes[1:]]
    assert sources == ["Web service API", "Person Details Page"]
    later = mk.get("activities/pagingtoken.json", sinceDatetime="2999-01-01T00:00:00Z")["nextPageToken"]
    assert mk.get("activities.json", nextPageToken=later, activityTypeIds="13") | {"requestId": ""} == {
        "requestId": "",
        "success": True,
        "nextPageToken": later,
        "moreResult": False,
        "result": [],
    }


def test_activity_endpoints_validate_their_parameters(mk: Mkto) -> None:
    token = mk.get("activities/pagingtoken.json", sinceDatetime="2026-01-01T00:00:00Z")["nextPageToken"]
    assert error_code(mk.get("activities.json", nextPageToken=token)) == "701"
    assert error_code(mk.get("activities.json", nextPageToken="garbage", activityTypeIds="13")) == "1003"
    assert error_code(mk.get("activities/leadchanges.json", nextPageToken=token)) == "701"
    assert error_code(mk.get("activities/pagingtoken.json", sinceDatetime="yesterday")) == "704"
    many = ",".join(str(i) for i in range(31))
    assert (
        error_code(mk.get("activities.json", nextPageToken=token, activityTypeIds="13", leadIds=many))
        == "1003"
    )


# ---- limits, envelopes, HTTP-level errors --------------------------------------------------------


def test_rate_limit_606_counts_only_calls_that_ran(mk: Mkto) -> None:
    mk.admin.config(rate_limit=3, rate_window_s=60)
    answers = [mk.get("leads/describe.json") for _ in range(4)]
    assert [a["success"] for a in answers] == [True, True, True, False]
    assert answers[3]["errors"][0] == {
        "code": "606",
        "message": "Max rate limit '3' exceeded with in '60' secs",
    }
    mk.admin.config(rate_limit=100)
    assert mk.get("stats/usage.json")["result"][0]["total"] == 3


def test_daily_quota_607_and_usage(mk: Mkto) -> None:
    mk.admin.config(daily_quota=2)
    mk.get("leads/describe.json")
    assert mk.get("stats/usage.json")["result"][0]["users"][0] == {"userId": CLIENT_ID, "count": 1}
    assert error_code(mk.get("leads/describe.json")) == "607"
    assert mk.admin.state()["usage"]["calls"] == 2


def test_injected_errors_hit_the_next_calls_only(mk: Mkto) -> None:
    mk.admin.action("inject", {"code": "606", "times": 2})
    mk.admin.action("inject", {"code": "607", "times": 1, "path": "companies"})
    assert [error_code(mk.get("leads/describe.json")) for _ in range(2)] == ["606", "606"]
    assert mk.get("leads/describe.json")["success"] is True
    assert error_code(mk.get("companies/describe.json")) == "607"
    assert mk.get("companies/describe.json")["success"] is True
    mk.admin.faults([{"path": "leads", "daily_limit_exhausted": True}])
    assert error_code(mk.get("leads/describe.json")) == "607"


def test_more_than_the_allowed_concurrent_calls_get_615(mk: Mkto, sandbox: Sandbox) -> None:
    mk.admin.config(max_concurrent=1, latency_ms=1500)
    codes: list[str] = []

    def call() -> None:
        body = requests.get(
            f"{mk.base}/rest/v1/leads/describe.json",
            headers={"Authorization": f"Bearer {mk.token}"},
            timeout=10,
        ).json()
        codes.append("ok" if body["success"] else body["errors"][0]["code"])

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(codes) == ["615", "ok"]


def test_http_level_and_envelope_errors(mk: Mkto) -> None:
    long_query = "x" * 9000
    assert (
        mk.raw("GET", "leads.json", params={"filterType": "email", "filterValues": long_query}).status_code
        == 414
    )
    assert (
        mk.raw(
            "POST", "leads.json", data=b"x" * (1024 * 1024 + 1), headers={"Content-Type": "application/json"}
        ).status_code
        == 413
    )
    assert (
        error_code(
            mk.raw("POST", "leads.json", data="{nope", headers={"Content-Type": "application/json"}).json()
        )
        == "609"
    )
    assert (
        error_code(mk.raw("POST", "leads.json", data="a=b", headers={"Content-Type": "text/plain"}).json())
        == "612"
    )
    assert error_code(mk.get("no/such/thing.json")) == "610"
    envelope = mk.get("leads/describe.json")
    assert set(envelope) == {"requestId", "success", "result"}
    assert "#" in envelope["requestId"]


def test_seed_is_all_or_nothing_and_the_connection_points_here(mk: Mkto, sandbox: Sandbox) -> None:
    with pytest.raises(Exception, match="leadScore"):
        mk.admin.seed(
            {"leads": [{"email": "a@example.com"}, {"email": "b@example.com", "leadScore": "high"}]}
        )
    assert mk.admin.state()["counts"]["leads"] == 0
    created = mk.admin.seed(
        {
            "leads": [{"id": 7, "email": "a@example.com", "leadOwnerFirstName": "Ann", "pipedriveId": 12}],
            "companies": [{"externalCompanyId": "pd-organization-3", "company": "Acme"}],
        }
    )
    assert created["leads"] == [7]
    assert created["companies"] == [501]
    assert mk.admin.state()["counts"]["activities"] == 0, "seeded data is not news"
    assert mk.admin.state(leads=1)["leads"][0]["leadOwnerFirstName"] == "Ann"
    conn = sandbox.connection("marketo_default")
    assert conn["conn_type"] == "marketo"
    assert conn["host"] == sandbox.url("marketo")
    assert (conn["login"], conn["password"]) == (CLIENT_ID, CLIENT_SECRET)


def test_paging_token_starts_at_the_first_activity_since_the_moment(mk: Mkto) -> None:
    leads(mk, {"email": "before@example.com"})
    moment = datetime.now(UTC).isoformat()
    leads(mk, {"email": "after@example.com"})
    token = mk.get("activities/pagingtoken.json", sinceDatetime=moment)["nextPageToken"]
    page = mk.get("activities.json", nextPageToken=token, activityTypeIds="12,13")
    assert [a["leadId"] for a in page["result"]] == [1002]


def test_lead_by_id_and_delete_by_http_delete(mk: Mkto) -> None:
    leads(mk, {"email": "ann@example.com", "firstName": "Ann"})
    assert mk.get("lead/1001.json", fields="firstName")["result"] == [{"id": 1001, "firstName": "Ann"}]
    assert mk.get("lead/4242.json")["result"] == []
    gone = mk.raw("DELETE", "leads.json", json={"input": [{"id": 1001}]}).json()
    assert gone["result"] == [{"id": 1001, "status": "deleted"}]
    assert mk.get("lead/1001.json")["result"] == []
