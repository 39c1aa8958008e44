"""The Pipedrive emulator over real HTTP: auth, CRUD, validation, paging, search, fields, limits, webhooks."""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.pipedrive.backend import DEFAULT_TOKEN
from sandbox.testing import Sandbox, start_sandbox

HASH = re.compile(r"^[0-9a-f]{40}$")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["pipedrive"], tmp_dir=tmp_path_factory.mktemp("pipedrive")) as running:
        yield running


@pytest.fixture
def admin(sandbox: Sandbox) -> Any:
    client = sandbox.admin("pipedrive")
    client.reset()
    return client


class Api:
    """A raw client: the token in the ``x-api-token`` header unless told otherwise."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.trust_env = False

    def call(
        self, method: str, path: str, *, token: str | None = DEFAULT_TOKEN, **kwargs: Any
    ) -> requests.Response:
        headers = {"x-api-token": token} if token is not None else {}
        return self.session.request(method, self.base + path, headers=headers, timeout=10, **kwargs)

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response.json()


@pytest.fixture
def api(sandbox: Sandbox, admin: Any) -> Iterator[Api]:
    client = Api(sandbox.url("pipedrive"))
    yield client
    client.session.close()


def field_key(admin: Any, entity: str, name: str) -> str:
    return next(f["key"] for f in admin.state(fields=entity) if f["name"] == name)


# ---- connection and auth -----------------------------------------------------------------------


def test_connection_points_at_the_emulator_with_the_token_as_password(sandbox: Sandbox) -> None:
    conn = sandbox.connection("pipedrive_default")
    assert conn == {"conn_type": "pipedrive", "host": sandbox.url("pipedrive"), "password": DEFAULT_TOKEN}


def test_v2_needs_the_header_and_refuses_the_query_token(api: Api) -> None:
    for response in (
        api.call("GET", "/api/v2/persons", token=None),
        api.call("GET", "/api/v2/persons", token="wrong"),
        api.call("GET", "/api/v2/persons", token=None, params={"api_token": DEFAULT_TOKEN}),
    ):
        assert response.status_code == 401
        assert response.json() == {
            "success": False,
            "error": "unauthorized access",
            "errorCode": 401,
            "error_info": "Please check developers.pipedrive.com",
        }


def test_v1_accepts_the_legacy_query_token_and_both_prefixes(api: Api) -> None:
    legacy = api.call("GET", "/v1/personFields", token=None, params={"api_token": DEFAULT_TOKEN})
    assert legacy.status_code == 200
    assert api.ok("GET", "/api/v1/personFields")["data"] == legacy.json()["data"]


def test_admin_api_needs_no_token_and_is_not_counted(api: Api, admin: Any) -> None:
    api.ok("GET", "/api/v2/persons")
    admin.state()
    assert admin.calls() == {"total": 1, "by_route": {"GET /api/v2/persons": 1}}


# ---- v2 CRUD ------------------------------------------------------------------------------------


def test_person_lifecycle_create_get_patch_delete_then_410(api: Api, admin: Any) -> None:
    marketoid = field_key(admin, "persons", "marketoid")
    created = api.ok(
        "POST",
        "/api/v2/persons",
        json={"name": "Ann Lee", "emails": [{"value": "ann@acme.test"}], "custom_fields": {marketoid: "42"}},
    )["data"]
    assert created["first_name"] == "Ann"
    assert created["last_name"] == "Lee"
    assert created["emails"] == [{"value": "ann@acme.test", "primary": True, "label": "work"}]
    assert created["custom_fields"] == {marketoid: "42"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created["update_time"])
    path = f"/api/v2/persons/{created['id']}"
    assert api.ok("GET", path)["data"] == created
    patched = api.ok("PATCH", path, json={"job_title": "CTO"})["data"]
    assert patched["job_title"] == "CTO"
    assert patched["emails"] == created["emails"]
    assert api.ok("DELETE", path) == {"success": True, "data": {"id": created["id"]}}
    for method in ("GET", "DELETE", "PATCH"):
        gone = api.call(method, path, json={"name": "x"} if method == "PATCH" else None)
        assert gone.status_code == 410
        assert gone.json()["error"] == "Person is deleted"
    assert api.call("GET", "/api/v2/persons/999").status_code == 404
    assert api.call("GET", "/api/v2/persons/abc").status_code == 404
    assert [p["is_deleted"] for p in admin.state(entity="persons")] == [True]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/api/v2/persons", {}, "'name' is required"),
        ("/api/v2/persons", {"name": "A", "nickname": "x"}, "unknown or read-only properties"),
        ("/api/v2/persons", {"name": "A", "owner_id": "1001"}, "'owner_id' must be an integer"),
        ("/api/v2/persons", {"name": "A", "org_id": 77}, "'org_id' 77 does not exist"),
        ("/api/v2/persons", {"name": "A", "custom_fields": {"f" * 40: "x"}}, "does not exist"),
        ("/api/v2/deals", {"title": "D", "value": "10"}, "'value' must be a number"),
        ("/api/v2/deals", {"title": "D", "status": "closed"}, "'status' must be one of"),
        ("/api/v2/deals", {"title": "D", "expected_close_date": "2026-13-01"}, "YYYY-MM-DD"),
        ("/api/v2/activities", {"subject": "S", "done": 1}, "'done' must be a boolean"),
        ("/api/v2/activities", {"subject": "S", "type": "fax"}, "activity types"),
        ("/api/v2/activities", {"subject": "S", "due_time": "9am"}, "HH:MM"),
        ("/api/v2/organizations", {"name": " "}, "'name' is required"),
    ],
)
def test_v2_validation_is_strict(api: Api, path: str, body: dict[str, Any], message: str) -> None:
    response = api.call("POST", path, json=body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["success"] is False
    assert message in payload["error"]
    assert payload["error_info"].startswith("Please check developers.pipedrive.com")


def test_custom_field_values_are_checked_by_type(api: Api, admin: Any) -> None:
    keys = admin.seed(
        {
            "fields": {
                "deals": [
                    {"name": "Seats", "field_type": "double"},
                    {"name": "Tier", "field_type": "enum", "options": ["Gold", "Silver"]},
                ]
            }
        }
    )["fields"]["deals"]
    assert all(HASH.match(key) for key in keys.values())
    bad = api.call("POST", "/api/v2/deals", json={"title": "D", "custom_fields": {keys["Seats"]: "3"}})
    assert bad.status_code == 400
    assert "must be a number" in bad.json()["error"]
    bad = api.call("POST", "/api/v2/deals", json={"title": "D", "custom_fields": {keys["Tier"]: "Gold"}})
    assert bad.status_code == 400
    assert "option ids" in bad.json()["error"]
    good = api.ok(
        "POST", "/api/v2/deals", json={"title": "D", "custom_fields": {keys["Seats"]: 3, keys["Tier"]: 1}}
    )
    assert good["data"]["custom_fields"] == {keys["Seats"]: 3, keys["Tier"]: 1}


def test_deal_rules_stage_pipeline_and_close_times(api: Api) -> None:
    pipelines = api.ok("GET", "/api/v2/pipelines")["data"]
    nx = next(p["id"] for p in pipelines if p["name"] == "NX Subscription (New and Upsell)")
    stages = api.ok("GET", "/api/v2/stages", params={"pipeline_id": nx})["data"]
    deal = api.ok("POST", "/api/v2/deals", json={"title": "Upsell", "stage_id": stages[1]["id"]})["data"]
    assert deal["pipeline_id"] == nx
    assert deal["status"] == "open"
    assert deal["close_time"] is None
    won = api.ok("PATCH", f"/api/v2/deals/{deal['id']}", json={"status": "won"})["data"]
    assert won["won_time"]
    assert won["close_time"] == won["won_time"]
    other = next(p["id"] for p in pipelines if p["id"] != nx)
    mismatch = api.call(
        "PATCH", f"/api/v2/deals/{deal['id']}", json={"pipeline_id": other, "stage_id": stages[0]["id"]}
    )
    assert mismatch.status_code == 400


# ---- lists and paging ---------------------------------------------------------------------------


def test_cursor_pagination_walks_every_record_once(api: Api, admin: Any) -> None:
    admin.seed({"persons": [{"name": f"P{i}"} for i in range(7)]})
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = api.ok("GET", "/api/v2/persons", params=params)
        seen += [p["name"] for p in body["data"]]
        pages += 1
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == [f"P{i}" for i in range(7)]
    assert api.call("GET", "/api/v2/persons", params={"limit": 501}).status_code == 400
    assert api.call("GET", "/api/v2/persons", params={"cursor": "garbage"}).status_code == 400
    first = api.ok("GET", "/api/v2/persons", params={"limit": 3})["additional_data"]["next_cursor"]
    other_query = api.call("GET", "/api/v2/persons", params={"limit": 3, "cursor": first, "owner_id": 1001})
    assert other_query.status_code == 400


def test_a_record_changed_while_paging_by_update_time_skips_nobody(api: Api, admin: Any) -> None:
    stamps = [f"2026-04-0{day}T08:00:00Z" for day in range(1, 6)]
    ids = admin.seed({"organizations": [{"name": f"O{i}", "update_time": t} for i, t in enumerate(stamps)]})
    params = {"limit": 2, "sort_by": "update_time", "updated_since": "2026-01-01T00:00:00Z"}
    first = api.ok("GET", "/api/v2/organizations", params=params)
    api.ok("PATCH", f"/api/v2/organizations/{ids['organizations'][0]}", json={"name": "O0 changed"})
    seen = [o["name"] for o in first["data"]]
    cursor = first["additional_data"]["next_cursor"]
    while cursor:
        body = api.ok("GET", "/api/v2/organizations", params=params | {"cursor": cursor})
        seen += [o["name"] for o in body["data"]]
        cursor = body["additional_data"]["next_cursor"]
    assert seen == ["O0", "O1", "O2", "O3", "O4", "O0 changed"]


def test_updated_since_and_ids_filter_the_window(api: Api, admin: Any) -> None:
    ids = admin.seed(
        {
            "organizations": [
                {"name": "Old", "update_time": "2026-01-01T00:00:00Z"},
                {"name": "Edge", "update_time": "2026-02-01T00:00:00Z"},
                {"name": "New", "update_time": "2026-03-01T10:00:00+02:00"},
            ]
        }
    )["organizations"]
    window = {"updated_since": "2026-02-01T00:00:00Z", "updated_until": "2026-03-01T12:00:00Z"}
    names = [o["name"] for o in api.ok("GET", "/api/v2/organizations", params=window)["data"]]
    assert names == ["Edge", "New"]
    newest_first = {"sort_by": "update_time", "sort_direction": "desc"}
    assert [o["name"] for o in api.ok("GET", "/api/v2/organizations", params=newest_first)["data"]] == [
        "New",
        "Edge",
        "Old",
    ]
    picked = api.ok("GET", "/api/v2/organizations", params={"ids": f"{ids[0]},{ids[2]}"})["data"]
    assert [o["name"] for o in picked] == ["Old", "New"]
    bad = api.call("GET", "/api/v2/organizations", params={"updated_since": "2026-02-01 00:00:00"})
    assert bad.status_code == 400
    assert "RFC 3339" in bad.json()["error"]


def test_deleted_deals_are_listed_only_with_status_deleted(api: Api, admin: Any) -> None:
    ids = admin.seed({"deals": [{"title": "Keep"}, {"title": "Drop"}]})["deals"]
    api.ok("DELETE", f"/api/v2/deals/{ids[1]}")
    assert [d["title"] for d in api.ok("GET", "/api/v2/deals")["data"]] == ["Keep"]
    assert [d["title"] for d in api.ok("GET", "/api/v2/deals", params={"status": "deleted"})["data"]] == [
        "Drop"
    ]


# ---- search -------------------------------------------------------------------------------------


def test_search_by_email_name_and_custom_field(api: Api, admin: Any) -> None:
    seeded = admin.seed(
        {
            "organizations": [
                {"name": "Acme Health", "custom": {"marketoid": "900", "email_domain": "acme.test"}},
                {"name": "Acme Labs"},
            ],
            "persons": [
                {"name": "Ann Lee", "emails": [{"value": "Ann@Acme.test"}], "custom": {"marketoid": "42"}}
            ],
        }
    )
    org_id, person_id = seeded["organizations"][0], seeded["persons"][0]

    def search(entity: str, **params: Any) -> list[dict[str, Any]]:
        return api.ok("GET", f"/api/v2/{entity}/search", params=params)["data"]["items"]

    exact = search("persons", term="ann@acme.test", fields="email", exact_match="true")
    assert [hit["item"]["id"] for hit in exact] == [person_id]
    assert exact[0]["item"]["emails"] == ["Ann@Acme.test"]
    assert exact[0]["item"]["type"] == "person"
    assert [
        h["item"]["id"] for h in search("persons", term="42", fields="custom_fields", exact_match="true")
    ] == [person_id]
    assert search("persons", term="4", fields="custom_fields", exact_match="true") == []
    by_name = search("organizations", term="acme health", fields="name", exact_match="true")
    assert [h["item"]["id"] for h in by_name] == [org_id]
    assert len(search("organizations", term="Acme", fields="name")) == 2
    domain = search("organizations", term="acme.test", fields="custom_fields", exact_match="true")
    assert [h["item"]["id"] for h in domain] == [org_id]
    assert domain[0]["item"]["custom_fields"] == ["acme.test"]
    short = api.call("GET", "/api/v2/persons/search", params={"term": "a"})
    assert short.status_code == 400
    wrong_field = api.call("GET", "/api/v2/organizations/search", params={"term": "ab", "fields": "email"})
    assert wrong_field.status_code == 400


# ---- fields, users, pipelines -------------------------------------------------------------------


def test_fields_endpoints_list_standard_and_hashed_custom_fields(api: Api, admin: Any) -> None:
    admin.seed({"fields": {"persons": [{"name": "Lead score", "field_type": "double"}]}})
    fields = api.ok("GET", "/v1/personFields")["data"]
    custom = {f["name"]: f for f in fields if f["edit_flag"]}
    assert set(custom) == {"marketoid", "Lead score"}
    assert all(HASH.match(f["key"]) for f in custom.values())
    assert {"name", "email", "owner_id", "org_id"} <= {f["key"] for f in fields if not f["edit_flag"]}
    page = api.ok("GET", "/v1/personFields", params={"start": 2, "limit": 3})
    assert page["data"] == fields[2:5]
    assert page["additional_data"]["pagination"] == {
        "start": 2,
        "limit": 3,
        "more_items_in_collection": True,
        "next_start": 5,
    }
    for endpoint in ("organizationFields", "dealFields", "activityFields"):
        assert api.ok("GET", f"/v1/{endpoint}")["data"]
    other_reset_key = field_key(admin, "persons", "marketoid")
    admin.reset()
    assert field_key(admin, "persons", "marketoid") != other_reset_key  # random per company, never fixed


def test_users_and_user_search(api: Api, admin: Any) -> None:
    admin.seed({"users": [{"name": "Jane Owner", "email": "jane@acme.test"}]})
    names = [u["name"] for u in api.ok("GET", "/v1/users")["data"]]
    assert names == ["Sandbox Admin", "Sync Bot", "Jane Owner"]
    found = api.ok("GET", "/v1/users/find", params={"term": "jane"})["data"]
    assert [u["email"] for u in found] == ["jane@acme.test"]
    assert api.ok("GET", "/v1/users/me")["data"]["company_domain"] == "sandbox"


def test_seed_is_all_or_nothing(api: Api, admin: Any) -> None:
    with pytest.raises(Exception, match="persons\\[1\\]"):
        admin.seed({"persons": [{"name": "Fine"}, {"name": "Bad", "custom": {"nope": 1}}]})
    assert admin.state()["counts"]["persons"] == 0


# ---- limits -------------------------------------------------------------------------------------


def test_every_answer_carries_rate_limit_headers_and_writes_the_daily_count(api: Api) -> None:
    read = api.call("GET", "/api/v2/persons")
    assert read.headers["x-ratelimit-limit"] == "80"
    assert read.headers["x-ratelimit-remaining"] == "79"
    assert int(read.headers["x-ratelimit-reset"]) >= 1
    assert "x-daily-requests-left" not in read.headers
    write = api.call("POST", "/api/v2/organizations", json={"name": "Acme"})
    assert write.headers["x-daily-requests-left"] == "9999"
    missing = api.call("GET", "/api/v2/organizations/999")
    assert missing.status_code == 404
    assert missing.headers["x-ratelimit-remaining"] == "77"


def test_burst_limit_answers_429_with_retry_after(api: Api, admin: Any) -> None:
    admin.config(burst_limit=2)
    assert api.call("GET", "/api/v2/persons").status_code == 200
    assert api.call("GET", "/api/v2/persons").headers["x-ratelimit-remaining"] == "0"
    refused = api.call("GET", "/api/v2/persons")
    assert refused.status_code == 429
    assert refused.json()["error"] == "Request over limit"
    assert int(refused.headers["Retry-After"]) in (1, 2)
    assert refused.headers["x-ratelimit-remaining"] == "0"


def test_injected_429s_then_normal_service(api: Api, admin: Any) -> None:
    admin.action("throttle", {"calls": 2, "retry_after": 1})
    assert [api.call("GET", "/api/v2/deals").status_code for _ in range(3)] == [429, 429, 200]


def test_daily_token_budget_runs_out_until_midnight(api: Api, admin: Any) -> None:
    admin.config(daily_token_budget=25)
    assert api.call("GET", "/api/v2/persons").status_code == 200  # a list costs 20
    assert api.call("GET", "/api/v2/persons/1").status_code == 404  # a single GET costs 2
    spent = api.call("GET", "/api/v2/persons")
    assert spent.status_code == 429
    assert spent.json()["error"] == "Daily token budget exceeded"
    assert int(spent.headers["Retry-After"]) > 2
    assert admin.state()["tokens_left"] == 3
    admin.config(daily_token_budget=1000)
    admin.action("spend_tokens", {"tokens": 990})
    assert api.call("POST", "/api/v2/persons", json={"name": "X"}).status_code == 429


def test_daily_limit_fault_answers_the_budget_429(api: Api, admin: Any) -> None:
    admin.faults([{"path": "/api/v2/deals", "daily_limit_exhausted": True}])
    response = api.call("GET", "/api/v2/deals")
    assert response.status_code == 429
    assert response.json()["error"] == "Daily token budget exceeded"


# ---- webhooks -----------------------------------------------------------------------------------


class Receiver:
    """A real HTTP endpoint recording each POST's Authorization header and JSON body."""

    def __init__(self) -> None:
        self.received: list[tuple[str | None, dict[str, Any]]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append((self.headers.get("Authorization"), json.loads(self.rfile.read(length))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def test_webhook_subscriptions_create_list_delete(api: Api) -> None:
    body = {"subscription_url": "https://example.test/h", "event_action": "*", "event_object": "person"}
    created = api.call("POST", "/v1/webhooks", json=body | {"http_auth_user": "u", "http_auth_password": "p"})
    assert created.status_code == 201
    hook = created.json()["data"]
    assert hook["version"] == "2.0"
    assert hook["http_auth_password"] == "*****"
    assert [w["id"] for w in api.ok("GET", "/v1/webhooks")["data"]] == [hook["id"]]
    assert api.ok("DELETE", f"/v1/webhooks/{hook['id']}") == {"success": True, "status": "ok"}
    assert api.call("DELETE", f"/v1/webhooks/{hook['id']}").status_code == 404
    bad = api.call("POST", "/v1/webhooks", json=body | {"event_object": "lead_magnet"})
    assert bad.status_code == 400


def test_webhooks_v2_deliver_create_change_delete_with_basic_auth(
    api: Api, admin: Any, receiver: Receiver
) -> None:
    api.ok(
        "POST",
        "/v1/webhooks",
        json={
            "subscription_url": receiver.url,
            "event_action": "*",
            "event_object": "person",
            "http_auth_user": "sync",
            "http_auth_password": "s3cret",
        },
    )
    marketoid = field_key(admin, "persons", "marketoid")
    person = api.ok("POST", "/api/v2/persons", json={"name": "Ann Lee", "custom_fields": {marketoid: "42"}})[
        "data"
    ]
    api.ok("PATCH", f"/api/v2/persons/{person['id']}", json={"job_title": "CTO"})
    api.ok("PATCH", f"/api/v2/persons/{person['id']}", json={"job_title": "CTO"})  # no change: no event
    admin.action(
        "ui_change",
        {"entity": "persons", "id": person["id"], "changes": {"custom_fields": {marketoid: "43"}}},
    )
    api.ok("DELETE", f"/api/v2/persons/{person['id']}")
    api.ok("POST", "/api/v2/organizations", json={"name": "Not subscribed"})
    assert admin.action("webhooks/flush")["deliveries"] == 4

    expected_auth = "Basic " + base64.b64encode(b"sync:s3cret").decode()
    assert [auth for auth, _ in receiver.received] == [expected_auth] * 4
    bodies = [body for _, body in receiver.received]
    assert [(b["meta"]["action"], b["meta"]["change_source"]) for b in bodies] == [
        ("create", "api"),
        ("change", "api"),
        ("change", "app"),
        ("delete", "api"),
    ]
    create, change, ui, delete = bodies
    assert create["meta"]["entity"] == "person"
    assert create["meta"]["entity_id"] == str(person["id"])
    assert create["meta"]["version"] == "2.0"
    assert create["previous"] is None
    assert create["data"]["custom_fields"] == {marketoid: "42"}
    assert change["previous"] == {"job_title": None}
    assert change["data"]["job_title"] == "CTO"
    assert ui["previous"] == {"custom_fields": {marketoid: "42"}}
    assert delete["data"] is None
    assert delete["previous"]["custom_fields"] == {marketoid: "43"}
    assert len({b["meta"]["id"] for b in bodies}) == 4
    deliveries = admin.state(deliveries=1)["deliveries"]
    assert [d["status"] for d in deliveries] == [200] * 4


def test_a_failed_delivery_is_recorded(api: Api, admin: Any) -> None:
    api.ok(
        "POST",
        "/v1/webhooks",
        json={
            "subscription_url": "http://127.0.0.1:9/nowhere",
            "event_action": "create",
            "event_object": "deal",
        },
    )
    api.ok("POST", "/api/v2/deals", json={"title": "D"})
    admin.action("webhooks/flush")
    [delivery] = admin.state(deliveries=1)["deliveries"]
    assert delivery["status"] is None
    assert delivery["error"] == "ConnectionError"


def test_stop_ends_the_webhook_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    with start_sandbox(["pipedrive"], tmp_dir=tmp_path) as running:
        assert running.admin("pipedrive").health() == {"status": "ok", "service": "pipedrive"}
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leftover == []
