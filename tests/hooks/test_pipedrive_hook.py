"""PipedriveHook against the Pipedrive emulator over real HTTP: fields, paging, CRUD, limits, webhooks."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from crm_sync.exceptions import (
    AuthError,
    ConfigurationError,
    FatalApiError,
    QuotaExhausted,
    RecordRejected,
    RetriableApiError,
)
from crm_sync.hooks.pipedrive import PipedriveHook, PipedriveRecord
from crm_sync.hooks.pipedrive_webhooks import (
    WebhookCredentials,
    WebhookRejected,
    parse_event,
    verify_delivery,
)
from crm_sync.http import READ_ERROR, HttpPolicy
from crm_sync.sync.quota import QuotaBudget
from crm_sync.sync.staging import make_engine
from sandbox.pipedrive.backend import DEFAULT_TOKEN
from sandbox.testing import Sandbox, start_sandbox

pytest_plugins = ("tests.hooks.maxio_fixtures",)


@pytest.fixture(scope="module")
def pd_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["pipedrive"], tmp_dir=tmp_path_factory.mktemp("pipedrive")) as running:
        yield running


@pytest.fixture
def admin(pd_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh emulator, with ``pipedrive_default`` pointing at it."""
    client = pd_sandbox.admin("pipedrive")
    client.reset()
    for name, value in pd_sandbox.conn_env().items():
        monkeypatch.setenv(name, value)
    return client


class Sleeps:
    """Records the waits the HTTP policy and the hook ask for (without waiting)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def policy(fast_policy: HttpPolicy) -> Callable[[Any], HttpPolicy]:
    """The shared fast retry rules, with this test's sleep function."""
    return lambda sleep: dataclasses.replace(fast_policy, sleep=sleep)


@pytest.fixture
def hook(admin: Any, sleeps: Sleeps, policy: Callable[[Any], HttpPolicy]) -> PipedriveHook:
    return PipedriveHook(http_policy=policy(sleeps))


def routes(admin: Any) -> dict[str, int]:
    return admin.calls()["by_route"]


# ---- connection ---------------------------------------------------------------------------------


def test_sandbox_connection_and_test_button(hook: PipedriveHook, pd_sandbox: Sandbox) -> None:
    assert hook.settings.base_url == pd_sandbox.url("pipedrive")
    assert DEFAULT_TOKEN not in repr(hook.settings)
    assert hook.test_connection() == (True, "connected to Pipedrive company 'sandbox'")
    assert hook.get_conn() is hook.get_conn()


def test_the_token_travels_in_the_header_never_the_url(hook: PipedriveHook, admin: Any) -> None:
    # v2 refuses ?api_token= (the emulator answers 401), so a v2 success proves the header.
    list(hook.iter_records("persons"))
    assert hook.get_conn().headers["x-api-token"] == DEFAULT_TOKEN
    assert routes(admin) == {"GET /api/v2/persons": 1}


def test_production_host_and_missing_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_PD_PROD",
        json.dumps({"conn_type": "pipedrive", "host": "acme.pipedrive.com", "password": "t"}),
    )
    assert PipedriveHook("pd_prod").settings.base_url == "https://acme.pipedrive.com"
    monkeypatch.setenv(
        "AIRFLOW_CONN_PD_NOTOKEN", json.dumps({"conn_type": "pipedrive", "host": "x.pipedrive.com"})
    )
    with pytest.raises(ConfigurationError, match="API token in password"):
        PipedriveHook("pd_notoken").settings  # noqa: B018
    monkeypatch.setenv("AIRFLOW_CONN_PD_NOHOST", json.dumps({"conn_type": "pipedrive", "password": "t"}))
    with pytest.raises(ConfigurationError, match="set host"):
        PipedriveHook("pd_nohost").settings  # noqa: B018


def test_a_wrong_token_is_an_auth_error(hook: PipedriveHook, admin: Any) -> None:
    admin.config(api_token="rotated-token")
    with pytest.raises(AuthError, match="HTTP 401: unauthorized access"):
        hook.get("persons", 1)
    ok, message = hook.test_connection()
    assert not ok
    assert "401" in message


# ---- fields -------------------------------------------------------------------------------------


def test_field_names_resolve_to_the_hash_keys_of_this_company(hook: PipedriveHook, admin: Any) -> None:
    admin.seed({"fields": {"persons": [{"name": "Lead score", "field_type": "double"}]}})
    keys = {f["name"]: f["key"] for f in admin.state(fields="persons")}
    resolved = hook.resolve_fields("persons", ["marketoid", "lead_score", "Lead Score", "name", "Email"])
    assert resolved == {
        "marketoid": keys["marketoid"],
        "lead_score": keys["Lead score"],
        "Lead Score": keys["Lead score"],
        "name": "name",
        "Email": "email",
    }
    hook.resolve_fields("persons", ["marketoid"])
    assert routes(admin) == {"GET /v1/personFields": 1}  # read once per hook (run)


def test_unknown_field_names_are_all_named_in_one_error(hook: PipedriveHook) -> None:
    with pytest.raises(ConfigurationError, match=r"'Shoe size', 'Pet'.*personFields"):
        hook.resolve_fields("persons", ["marketoid", "Shoe size", "Pet"])


def test_a_name_matching_two_fields_only_loosely_is_refused(hook: PipedriveHook, admin: Any) -> None:
    keys = admin.seed({"fields": {"organizations": [{"name": "Score"}, {"name": "score"}]}})["fields"]
    fields = hook.fields("organizations")
    assert fields.key("Score") == keys["organizations"]["Score"]  # an exact name still wins
    with pytest.raises(ConfigurationError, match="'SCORE' is ambiguous"):
        fields.key("SCORE")


def test_field_map_writes_custom_fields_by_hash_and_translates_options(
    hook: PipedriveHook, admin: Any
) -> None:
    admin.seed({"fields": {"deals": [{"name": "Tier", "field_type": "enum", "options": ["Gold", "Silver"]}]}})
    fields = hook.fields("deals")
    tier = fields.key("Tier")
    body = fields.write({"Title": "Upsell", "Tier": "silver"})
    assert body == {"title": "Upsell", "custom_fields": {tier: 2}}
    deal = hook.create("deals", body, key="pd-deal-new")
    assert deal.custom_fields[tier] == 2
    assert fields.read(deal.values, deal.custom_fields, ["Tier", "Title"]) == {
        "Tier": "Silver",
        "Title": "Upsell",
    }
    with pytest.raises(ConfigurationError, match="no option 'Bronze'"):
        fields.write({"Tier": "Bronze"})


def test_fields_are_paged_with_start_and_limit(
    admin: Any, sleeps: Sleeps, policy: Callable[[Any], HttpPolicy]
) -> None:
    small = PipedriveHook(http_policy=policy(sleeps), page_limit=5)
    assert small.fields("deals").key("Title") == "title"
    assert routes(admin)["GET /v1/dealFields"] == 4  # 17 standard fields, 5 a page


# ---- lists --------------------------------------------------------------------------------------


def test_iter_records_follows_cursors_through_every_page(
    admin: Any, sleeps: Sleeps, policy: Callable[[Any], HttpPolicy]
) -> None:
    admin.seed({"persons": [{"name": f"P{i}"} for i in range(11)]})
    small = PipedriveHook(http_policy=policy(sleeps), page_limit=4)
    records = list(small.iter_records("persons"))
    assert [r.values["name"] for r in records] == [f"P{i}" for i in range(11)]
    assert all(isinstance(r, PipedriveRecord) for r in records)
    assert routes(admin) == {"GET /api/v2/persons": 3}
    assert small.api_calls["by_entity"] == {"persons": 3}


def test_iter_records_reads_only_the_updated_window_oldest_first(hook: PipedriveHook, admin: Any) -> None:
    admin.seed(
        {
            "deals": [
                {"title": "Before", "update_time": "2026-05-01T09:59:59Z"},
                {"title": "Second", "update_time": "2026-05-01T10:05:00Z"},
                {"title": "First", "update_time": "2026-05-01T10:00:00Z"},
                {"title": "After", "update_time": "2026-05-01T10:10:00Z"},
            ]
        }
    )
    window = list(
        hook.iter_records(
            "deals",
            updated_since=datetime(2026, 5, 1, 10, 0, tzinfo=UTC),
            updated_until=datetime(2026, 5, 1, 10, 10, tzinfo=UTC),
        )
    )
    assert [d.values["title"] for d in window] == ["First", "Second"]
    assert window[0].update_time == datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        list(hook.iter_records("deals", updated_since=datetime(2026, 5, 1)))
    with pytest.raises(ValueError, match="not one of"):
        list(hook.iter_records("leads"))


# ---- single records -----------------------------------------------------------------------------


def test_create_get_update_delete_and_410_is_success(hook: PipedriveHook, admin: Any) -> None:
    org = hook.create("organizations", {"name": "Acme Health"}, key="org-1")
    person = hook.create(
        "persons", {"name": "Ann Lee", "org_id": org.id, "emails": [{"value": "ann@acme.test"}]}, key="lead-1"
    )
    assert hook.get("persons", person.id) == person
    updated = hook.update("persons", person.id, {"job_title": "CTO"}, key="lead-1")
    assert updated.values["job_title"] == "CTO"
    assert updated.values["org_id"] == org.id
    assert hook.delete("persons", person.id) is True
    assert hook.delete("persons", person.id) is False  # 410: already gone is fine
    assert hook.delete("persons", 424242) is False  # 404
    assert hook.get("persons", person.id) is None
    with pytest.raises(RecordRejected) as rejected:
        hook.update("persons", person.id, {"job_title": "CEO"}, key="lead-1")
    assert rejected.value.code == "DELETED"
    assert rejected.value.key == "lead-1"


def test_activity_create(hook: PipedriveHook) -> None:
    person = hook.create("persons", {"name": "Ann Lee"})
    activity = hook.create(
        "activities",
        {
            "subject": "Follow up with Ann Lee",
            "type": "call",
            "person_id": person.id,
            "due_date": "2026-11-25",
        },
        key="lead-1:activity",
    )
    assert activity.values["type"] == "call"
    assert activity.values["done"] is False


def test_a_refused_body_is_a_record_rejection_with_the_api_message(hook: PipedriveHook) -> None:
    with pytest.raises(RecordRejected) as rejected:
        hook.create("deals", {"title": "D", "value": "12"}, key="pd-deal-9")
    assert rejected.value.code == "ERR_SCHEMA_VALIDATION_FAILED"
    assert "'value' must be a number" in rejected.value.reason
    with pytest.raises(FatalApiError, match="HTTP 400"):
        hook.create("deals", {"title": "D", "value": "12"})  # no record key: the caller's bug


# ---- search and matching ------------------------------------------------------------------------


def test_find_by_field_runs_the_matching_cascade_steps(hook: PipedriveHook, admin: Any) -> None:
    ids = admin.seed(
        {
            "organizations": [
                {"name": "Acme Health", "custom": {"marketoid": "900", "email_domain": "acme.test"}},
                {"name": "Acme health"},
                {"name": "Other", "custom": {"email_domain": "900"}},  # the same text in another field
            ],
            "persons": [
                {"name": "Ann Lee", "emails": [{"value": "ann@acme.test"}], "custom": {"marketoid": "42"}}
            ],
        }
    )
    orgs = ids["organizations"]
    assert [o.id for o in hook.find_by_field("organizations", "marketoid", "900")] == [orgs[0]]
    assert [o.id for o in hook.find_by_field("organizations", "email_domain", "acme.test")] == [orgs[0]]
    # Name search is case-insensitive; the exact check keeps the unique exact name.
    assert [o.id for o in hook.find_by_field("organizations", "name", "Acme Health")] == [orgs[0]]
    assert [p.id for p in hook.find_by_field("persons", "marketoid", 42)] == ids["persons"]
    assert [p.id for p in hook.find_by_field("persons", "email", "ann@acme.test")] == ids["persons"]
    assert hook.find_by_field("persons", "marketoid", "7") == []
    hits = hook.search("organizations", "Acme", fields=["name"], exact_match=False)
    assert sorted(h.id for h in hits) == sorted(orgs[:2])


# ---- users and pipelines ------------------------------------------------------------------------


def test_owner_names_resolve_to_user_ids(hook: PipedriveHook, admin: Any) -> None:
    admin.seed({"users": [{"name": "Jane Owner"}, {"name": "Twin"}, {"name": "twin"}]})
    jane = next(u["id"] for u in admin.state(users=1)["users"] if u["name"] == "Jane Owner")
    assert hook.user_id("jane owner") == jane
    assert hook.user_id("Sync Bot") == 208823
    assert hook.user_id("Twin") is None  # ambiguous: use the configured fallback user
    assert hook.user_id("Nobody") is None
    assert routes(admin) == {"GET /v1/users": 1}


def test_pipeline_ids_by_name(hook: PipedriveHook) -> None:
    ids = hook.pipeline_ids(["NX Subscription (New and Upsell)"])
    assert list(ids) == ["NX Subscription (New and Upsell)"]
    with pytest.raises(ConfigurationError, match="no pipeline named 'Nope'"):
        hook.pipeline_ids(["Nope"])


def test_stage_names_of_one_pipeline_or_all(hook: PipedriveHook) -> None:
    nx = hook.pipeline_ids(["NX Subscription (New and Upsell)"])["NX Subscription (New and Upsell)"]
    # The emulator's fixed pipelines (sandbox/pipedrive/store.py): three stages each.
    assert sorted(hook.stage_names(nx).values()) == ["Contract sent", "Lead in", "Negotiation"]
    everything = hook.stage_names()
    assert len(everything) == 6
    assert everything.items() >= hook.stage_names(nx).items()


# ---- errors, limits, retries --------------------------------------------------------------------


def test_a_429_is_retried_after_retry_after_even_for_a_post(
    hook: PipedriveHook, admin: Any, sleeps: Sleeps
) -> None:
    admin.action("throttle", {"calls": 1, "retry_after": 2})
    created = hook.create("organizations", {"name": "Acme"}, key="org-1")
    assert sleeps.waits == [2.0]
    assert [o["id"] for o in admin.state(entity="organizations")] == [created.id]  # exactly one
    assert hook.api_calls["retries"] == 1


def test_a_429_that_persists_is_retriable_with_the_wait(hook: PipedriveHook, admin: Any) -> None:
    admin.action("throttle", {"calls": 5, "retry_after": 1})
    with pytest.raises(RetriableApiError) as raised:
        hook.get("persons", 1)
    assert raised.value.status == 429
    assert raised.value.retry_after == 1


def test_a_spent_burst_window_is_waited_out_before_the_next_call(
    admin: Any, policy: Callable[[Any], HttpPolicy]
) -> None:
    admin.config(burst_limit=2)
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)  # the emulator's window is real time

    hook = PipedriveHook(http_policy=policy(sleep))
    for _ in range(3):
        assert hook.get("persons", 1) is None
    assert waits
    assert hook.api_calls["retries"] == 0  # waited on x-ratelimit-reset, never provoked a 429


def test_the_daily_token_budget_parks_the_rest_until_midnight(hook: PipedriveHook, admin: Any) -> None:
    admin.config(daily_token_budget=25)
    list(hook.iter_records("persons"))
    with pytest.raises(QuotaExhausted) as raised:
        list(hook.iter_records("persons"))
    assert raised.value.api == "pipedrive"
    assert raised.value.resets_at is not None
    before = admin.calls()["total"]
    with pytest.raises(QuotaExhausted):
        hook.get("persons", 1)
    assert admin.calls()["total"] == before  # parked: no further call is sent


def test_our_daily_budget_is_charged_before_each_call(
    admin: Any, sleeps: Sleeps, sqlite_url: str, policy: Callable[[Any], HttpPolicy]
) -> None:
    budget = QuotaBudget(make_engine(sqlite_url), "pipedrive", daily_limit=4)
    hook = PipedriveHook(http_policy=policy(sleeps), budget=budget)
    hook.create("organizations", {"name": "A"})
    assert hook.rate_limit.daily_left == 9999
    assert budget.used() == 1
    hook.get("organizations", 1)
    hook.get("organizations", 1)
    hook.get("organizations", 1)
    before = admin.calls()["total"]
    with pytest.raises(QuotaExhausted):
        hook.get("organizations", 1)
    assert admin.calls()["total"] == before  # our own daily cap stops before sending


def test_the_api_reported_write_budget_stops_the_hook(
    admin: Any, sleeps: Sleeps, sqlite_url: str, policy: Callable[[Any], HttpPolicy]
) -> None:
    budget = QuotaBudget(make_engine(sqlite_url), "pipedrive", daily_limit=None)
    hook = PipedriveHook(http_policy=policy(sleeps), budget=budget)
    admin.config(daily_write_limit=1)  # the company has one write left today
    hook.create("organizations", {"name": "B"})  # x-daily-requests-left: 0
    assert budget.remaining() == 0
    with pytest.raises(QuotaExhausted):
        hook.create("organizations", {"name": "C"})


def test_a_lost_create_answer_is_not_resent_and_the_record_is_found(hook: PipedriveHook, admin: Any) -> None:
    admin.faults([{"method": "POST", "path": "/api/v2/persons$", "lost_response": True}])
    with pytest.raises(RetriableApiError) as raised:
        hook.create("persons", {"name": "Ann Lee", "emails": [{"value": "ann@acme.test"}]}, key="lead-1")
    assert raised.value.code == READ_ERROR
    assert routes(admin)["POST /api/v2/persons"] == 1  # never resent blindly
    [found] = hook.find_by_field("persons", "email", "ann@acme.test")
    assert len(admin.state(entity="persons")) == 1
    assert found.values["name"] == "Ann Lee"


def test_5xx_on_a_read_and_a_patch_are_retried(hook: PipedriveHook, admin: Any) -> None:
    person = hook.create("persons", {"name": "Ann"})
    admin.faults(
        [
            {
                "method": "GET",
                "path": "/api/v2/persons/",
                "status": 503,
                "body": {"success": False, "error": "busy"},
            },
            {"method": "PATCH", "path": "/api/v2/persons/", "status": 502},
        ]
    )
    assert hook.get("persons", person.id) == person
    assert hook.update("persons", person.id, {"job_title": "CTO"}).values["job_title"] == "CTO"
    assert hook.api_calls["retries"] == 2


def test_calls_are_counted_by_method_and_entity(hook: PipedriveHook) -> None:
    org = hook.create("organizations", {"name": "Acme"})
    hook.get("organizations", org.id)
    hook.search("organizations", "Acme", fields=["name"])
    hook.fields("organizations")
    calls = hook.api_calls
    assert calls["total"] == 4
    assert calls["POST"] == 1
    assert calls["GET"] == 3
    assert calls["by_entity"] == {"organizations": 2, "organizations/search": 1, "fields": 1}


# ---- webhooks -----------------------------------------------------------------------------------


class Receiver:
    """A real HTTP endpoint that verifies each delivery with the webhook helper."""

    def __init__(self, credentials: WebhookCredentials) -> None:
        self.accepted: list[Any] = []
        self.refused: list[tuple[int, str]] = []
        accepted, refused = self.accepted, self.refused

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    accepted.append(
                        verify_delivery(self.headers.get("Authorization"), json.loads(raw), credentials)
                    )
                    status = 200
                except WebhookRejected as exc:
                    refused.append((exc.status, exc.reason))
                    status = exc.status
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/pipedrive"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(WebhookCredentials(user="pd-hooks", password="right-password"))
    yield running
    running.close()


def test_webhook_deliveries_are_verified_and_bad_credentials_refused(
    hook: PipedriveHook, admin: Any, receiver: Receiver
) -> None:
    good = hook.create_webhook(
        receiver.url, event_object="person", http_auth_user="pd-hooks", http_auth_password="right-password"
    )
    hook.create_webhook(
        receiver.url, event_object="person", http_auth_user="pd-hooks", http_auth_password="wrong-password"
    )
    hook.create_webhook(receiver.url, event_object="person")  # no credentials at all
    assert [w.id for w in hook.list_webhooks()] == [good.id, good.id + 1, good.id + 2]
    person = hook.create("persons", {"name": "Ann"})
    hook.update("persons", person.id, {"job_title": "CTO"})
    hook.update("persons", person.id, {"job_title": "CEO"})
    admin.action("webhooks/flush")
    assert [(e.action, e.entity, e.entity_id) for e in receiver.accepted] == [
        ("create", "person", person.id),
        ("change", "person", person.id),
        ("change", "person", person.id),
    ]
    assert sorted(receiver.refused) == [(401, "missing or wrong basic credentials")] * 6
    _, second, third = receiver.accepted
    # A create and changes of one person ask for the same sync: one pending run covers them all.
    assert {e.dedupe_key for e in receiver.accepted} == {f"pipedrive:person:{person.id}:sync"}
    assert second.event_id != third.event_id
    assert second.from_api
    assert hook.delete_webhook(good.id) is True
    assert hook.delete_webhook(good.id) is False


def test_webhook_payload_shape_is_checked() -> None:
    good = {
        "meta": {"action": "delete", "entity": "person", "entity_id": "12", "id": "e-1", "version": "2.0"},
        "data": None,
        "previous": {"id": 12},
    }
    event = parse_event(good)
    assert event.dedupe_key == "pipedrive:person:12:delete"
    for broken, reason in [
        ({"v": 1, "meta": {"v": 1, "action": "updated"}}, "version"),
        ({**good, "meta": {**good["meta"], "entity": "lead"}}, "meta.entity"),
        ({**good, "meta": {**good["meta"], "action": "merged"}}, "meta.action"),
        ({**good, "meta": {**good["meta"], "entity_id": "x"}}, "entity_id"),
        ({**good, "meta": {**good["meta"], "action": "change"}}, "needs data"),
        ([], "not a JSON object"),
    ]:
        with pytest.raises(WebhookRejected, match=reason) as raised:
            parse_event(broken)
        assert raised.value.status == 400
    creds = WebhookCredentials(user="u", password="p")
    with pytest.raises(WebhookRejected) as unauthenticated:
        verify_delivery(None, [], creds)  # credentials are checked before the payload
    assert unauthenticated.value.status == 401
