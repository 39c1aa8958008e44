"""MarketoHook against the Marketo emulator over real HTTP: tokens, envelopes, limits, batches, reads."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from airflow.models import Connection

from crm_sync.exceptions import AuthError, ConfigurationError, QuotaExhausted, RetriableApiError
from crm_sync.hooks.marketo import CustomActivity, MarketoHook, MarketoResult, next_quota_reset
from crm_sync.hooks.marketo_types import MarketoSettings
from crm_sync.http import HttpPolicy
from crm_sync.sync.quota import QuotaBudget
from crm_sync.sync.records import Action, Change, Status
from crm_sync.sync.staging import make_engine
from sandbox.marketo.backend import CLIENT_SECRET
from sandbox.testing import Sandbox, start_sandbox


@pytest.fixture(scope="module")
def marketo_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["marketo"], tmp_dir=tmp_path_factory.mktemp("marketo")) as sandbox:
        yield sandbox


@pytest.fixture
def admin(marketo_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator's admin client after a reset, with ``marketo_default`` pointing at it."""
    for name, value in marketo_sandbox.conn_env().items():
        monkeypatch.setenv(name, value)
    client = marketo_sandbox.admin("marketo")
    client.reset()
    return client


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def hook(admin: Any, sleeps: list[float]) -> MarketoHook:
    policy = HttpPolicy(
        max_retries=2, backoff_factor=0.5, backoff_jitter=0, read_timeout=10, sleep=sleeps.append
    )
    return MarketoHook(http_policy=policy)


def routes(admin: Any) -> dict[str, int]:
    return admin.calls()["by_route"]


def people(n: int, start: int = 0, **extra: Any) -> list[dict[str, Any]]:
    return [{"email": f"p{i}@example.com", "firstName": f"P{i}", **extra} for i in range(start, start + n)]


def change(key: str) -> Change:
    return Change(key=key, action=Action.UPDATE, payload={}, row_hash="h", target_id=None)


# ---- connection ----------------------------------------------------------------------------------


def test_sandbox_connection_and_test_button(hook: MarketoHook, marketo_sandbox: Sandbox) -> None:
    assert hook.settings.base_url == marketo_sandbox.url("marketo")
    assert CLIENT_SECRET not in repr(hook.settings)
    ok, message = hook.test_connection()
    assert ok, message
    assert "lead fields" in message


@pytest.mark.parametrize(
    ("host", "extra", "base_url"),
    [
        ("https://123-ABC-456.mktorest.com/rest", {}, "https://123-ABC-456.mktorest.com"),
        ("", {"munchkin_id": "987-XYZ-654"}, "https://987-XYZ-654.mktorest.com"),
    ],
)
def test_settings_point_at_production(host: str, extra: dict[str, Any], base_url: str) -> None:
    conn = Connection(
        conn_id="m", conn_type="marketo", host=host, login="id", password="s", extra=json.dumps(extra)
    )
    assert MarketoSettings.from_connection(conn).base_url == base_url


def test_settings_refuse_a_connection_without_credentials_or_host() -> None:
    with pytest.raises(ConfigurationError, match="client id"):
        MarketoSettings.from_connection(Connection(conn_id="m", conn_type="marketo", host="https://x"))
    with pytest.raises(ConfigurationError, match="host"):
        MarketoSettings.from_connection(Connection(conn_id="m", conn_type="marketo", login="a", password="b"))


def test_bad_client_secret_is_an_auth_error(hook: MarketoHook, admin: Any) -> None:
    admin.config(client_secret="rotated")
    with pytest.raises(AuthError, match="client secret"):
        hook.describe_leads()


# ---- tokens --------------------------------------------------------------------------------------


def test_token_is_fetched_once_and_sent_as_bearer(hook: MarketoHook, admin: Any) -> None:
    hook.describe_leads()
    list(hook.get_leads("email", ["nobody@example.com"]))
    hook.usage_today()
    assert hook.api_calls["identity"] == 1
    assert routes(admin)["POST /identity/oauth/token"] == 1
    # The emulator refuses the retired query parameter, so these calls prove the header was used.
    assert hook.usage_today() == 3


def test_expired_token_mid_run_refreshes_and_replays_the_same_write(
    hook: MarketoHook, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    first = hook.sync_leads(people(2))
    assert [r.status for r in first] == ["created", "created"]
    admin.action("expire_tokens")
    caplog.set_level(logging.DEBUG)
    second = hook.sync_leads(people(2, start=2, title="CTO"))
    assert [r.status for r in second] == ["created", "created"]
    assert hook.api_calls["replayed"] == 1
    assert hook.api_calls["identity"] == 2
    assert routes(admin)["POST /rest/v1/leads.json"] == 3, "one refused with 602, one replay"
    stored = {lead["email"]: lead for lead in admin.state(leads=1)["leads"]}
    assert stored["p3@example.com"]["title"] == "CTO", "the replay carried the original payload"
    assert hook._token not in caplog.text
    assert CLIENT_SECRET not in caplog.text


def test_expired_token_replays_a_read_with_its_parameters(hook: MarketoHook, admin: Any) -> None:
    hook.sync_leads(people(3))
    admin.action("expire_tokens")
    found = list(hook.get_leads("email", ["p1@example.com"], fields=["email", "firstName"]))
    assert found == [{"id": 1002, "email": "p1@example.com", "firstName": "P1"}]


def test_a_token_refused_again_after_refresh_is_an_auth_error(hook: MarketoHook, admin: Any) -> None:
    admin.action("inject", {"code": "601", "times": 2})
    with pytest.raises(AuthError, match="601"):
        hook.describe_leads()
    assert hook.api_calls["replayed"] == 1


# ---- 606, 615, 607 -------------------------------------------------------------------------------


def test_606_backs_off_then_succeeds(hook: MarketoHook, admin: Any, sleeps: list[float]) -> None:
    admin.action("inject", {"code": "606", "times": 2})
    assert hook.describe_leads().fields
    assert sleeps == [5.0, 10.0]
    assert hook.api_calls["throttled"] == 2


def test_606_that_persists_raises_retriable_with_a_hint(
    hook: MarketoHook, admin: Any, sleeps: list[float]
) -> None:
    admin.action("inject", {"code": "606", "times": 10})
    with pytest.raises(RetriableApiError) as caught:
        hook.usage_today()
    assert caught.value.code == "606"
    assert caught.value.retry_after == 20.0
    assert len(sleeps) == 3


def test_615_backs_off_with_the_policy(hook: MarketoHook, admin: Any, sleeps: list[float]) -> None:
    admin.action("inject", {"code": "615", "times": 1})
    assert hook.usage_today() == 0, "the refused call was not counted"
    assert sleeps == [0.5]


def test_a_real_rate_limit_is_waited_out(admin: Any) -> None:
    admin.config(rate_limit=2, rate_window_s=1.0)
    hook = MarketoHook(http_policy=HttpPolicy(backoff_jitter=0), rate_window_s=1.0, throttle_retries=5)
    for _ in range(5):
        hook.describe_leads(refresh=True)
    assert hook.api_calls["throttled"] >= 1, "the emulator refused at least one call with 606"
    assert admin.state()["usage"]["calls"] == 5


def test_writes_that_stay_throttled_come_back_failed_per_record(hook: MarketoHook, admin: Any) -> None:
    admin.action("inject", {"code": "606", "times": 10, "path": "leads.json"})
    results = hook.sync_leads(people(3))
    assert [(r.status, r.error_code) for r in results] == [("failed", "606")] * 3
    assert results[0].to_outcome(change("p0@example.com")).status == Status.FAILED
    assert admin.state()["counts"]["leads"] == 0


def test_607_parks_the_rest_until_the_daily_reset(hook: MarketoHook, admin: Any) -> None:
    admin.config(daily_quota=1)
    results = hook.sync_leads(people(450))
    assert [r.status for r in results[:300]] == ["created"] * 300
    assert {(r.status, r.error_code) for r in results[300:]} == {("parked", "607")}
    assert results[300].to_outcome(change("p300@example.com")).status == Status.PARKED
    calls_before = admin.calls()["total"]
    with pytest.raises(QuotaExhausted) as caught:
        hook.describe_leads()
    assert admin.calls()["total"] == calls_before, "nothing is sent once the quota is spent"
    assert caught.value.resets_at == hook.exhausted.resets_at
    assert caught.value.resets_at.astimezone(ZoneInfo("America/Chicago")).hour == 0


def test_next_quota_reset_is_midnight_us_central() -> None:
    noon_utc = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # 07:00 CDT
    assert next_quota_reset(noon_utc) == datetime(2026, 7, 2, 5, 0, tzinfo=UTC)


def test_the_shared_budget_is_charged_per_call(hook: MarketoHook, admin: Any, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    budget = hook.quota_budget(engine)
    assert (budget.daily_limit, budget.burst_limit) == (50_000, 100)
    small = MarketoHook(budget=QuotaBudget(engine, "marketo-test", daily_limit=2))
    small.usage_today()
    small.usage_today()
    with pytest.raises(QuotaExhausted):
        small.usage_today()
    assert admin.state()["usage"]["calls"] == 2


def test_http_5xx_reads_are_retried_but_non_idempotent_writes_are_not(hook: MarketoHook, admin: Any) -> None:
    admin.faults([{"method": "GET", "path": "describe2", "times": 1, "status": 503}])
    assert hook.describe_leads().fields
    admin.faults([{"method": "POST", "path": "external", "times": 1, "status": 503}])
    hook.sync_leads(people(1))
    activity = CustomActivity(
        key="outbox-1",
        lead_id=1001,
        activity_type_id=100001,
        primary_value="Follow up",
        activity_date=datetime(2026, 11, 25, tzinfo=UTC),
    )
    assert [r.status for r in hook.add_custom_activities([activity])] == ["failed"]
    assert routes(admin)["POST /rest/v1/activities/external.json"] == 1


# ---- writes --------------------------------------------------------------------------------------


def test_leads_go_in_batches_of_300_with_one_result_each(hook: MarketoHook, admin: Any) -> None:
    results = hook.sync_leads(people(650))
    assert len(results) == 650
    assert routes(admin)["POST /rest/v1/leads.json"] == 3
    assert results[649].key == "p649@example.com"
    assert results[649].id == "1650"
    updated = hook.sync_leads(
        [{"id": 1001, "title": "CEO"}], action="updateOnly", lookup_field="id", keys=["k"]
    )
    assert (updated[0].key, updated[0].status) == ("k", "updated")


def test_record_level_reasons_reach_the_ledger_without_values(hook: MarketoHook) -> None:
    results = hook.sync_leads(
        [
            {"email": "a@example.com", "leadScore": "secret-ish value"},
            {"email": "b@example.com", "favouriteColour": "red"},
        ]
    )
    assert results[0].reasons[0].code == "1001"
    assert "secret-ish" not in results[0].message
    outcome = results[1].to_outcome(change("b@example.com"))
    assert (outcome.status, outcome.error_code, outcome.field) == (Status.REJECTED, "1006", "favouriteColour")
    mismatch = results[0].to_outcome(change("a@example.com"))
    assert (mismatch.status, mismatch.error_code) == (Status.REJECTED, "1001")
    assert "secret-ish" not in (mismatch.message or "")


def test_delete_leads(hook: MarketoHook) -> None:
    hook.sync_leads(people(1))
    results = hook.delete_leads([1001, 4242])
    assert [(r.status, r.error_code) for r in results] == [("deleted", None), ("skipped", "1004")]


def test_companies_opportunities_and_roles_upsert_by_dedupe_fields(hook: MarketoHook, admin: Any) -> None:
    hook.sync_leads(people(1))
    company = {"externalCompanyId": "pd-organization-9", "company": "Acme"}
    assert [r.status for r in hook.sync_companies([company])] == ["created"]
    assert hook.sync_companies([{**company, "website": "acme.example"}])[0].status == "updated"
    found = list(
        hook.query_objects("companies", "externalCompanyId", ["pd-organization-9"], ["company", "website"])
    )
    assert found == [{"seq": 0, "company": "Acme", "website": "acme.example"}]
    deal = {"externalOpportunityId": "pd-deal-5", "name": "Renewal", "amount": 1200, "isClosed": False}
    opportunity = hook.sync_opportunities([deal])[0]
    assert opportunity.status == "created"
    assert len(opportunity.id or "") == 36
    role = {"externalOpportunityId": "pd-deal-5", "leadId": 1001, "role": "Default Role", "isPrimary": True}
    results = hook.sync_opportunity_roles([role, {**role, "leadId": 99}])
    assert [r.key for r in results] == ["pd-deal-5|1001|Default Role", "pd-deal-5|99|Default Role"]
    assert [(r.status, r.error_code) for r in results] == [("created", None), ("skipped", "1004")]
    keys = [{k: role[k] for k in ("externalOpportunityId", "leadId", "role")}]
    assert hook.query_roles_by_key(keys, ["isPrimary"]) == [{"seq": 0, "isPrimary": True}]
    gone = hook.delete_objects("companies", [{"externalCompanyId": "pd-organization-9"}])
    assert gone[0].status == "deleted"


def test_custom_activities_are_added_or_skipped_with_errors(hook: MarketoHook) -> None:
    hook.sync_leads(people(1))
    when = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    activities = [
        CustomActivity("ob-1", 1001, 100001, "Follow up with P0", when, {"dueDate": "2026-11-26"}),
        CustomActivity("ob-2", 5555, 100001, "Follow up", when),
    ]
    results = hook.add_custom_activities(activities)
    assert [(r.key, r.status) for r in results] == [("ob-1", "added"), ("ob-2", "skipped")]
    assert results[1].reasons[0].code == "1004"


# ---- reads ---------------------------------------------------------------------------------------


def test_describe_validates_field_names(hook: MarketoHook) -> None:
    hook.check_lead_fields(["email", "pipedriveId", "toDelete"], writable=True)
    with pytest.raises(ConfigurationError, match=r"unknown Marketo lead fields \['nope'\].*read-only.*'id'"):
        hook.check_lead_fields(["email", "nope", "id"], writable=True, where="person_to_lead.yaml")


def test_get_leads_splits_300_values_and_long_queries_go_as_post(hook: MarketoHook, admin: Any) -> None:
    hook.sync_leads([{"email": f"lead{i}@example.com", "pipedriveId": i} for i in range(350)])
    admin.reset_calls()
    found = list(hook.get_leads("pipedriveId", list(range(350)), fields=["pipedriveId"]))
    assert sorted(r["pipedriveId"] for r in found) == list(range(350))
    assert routes(admin)["GET /rest/v1/leads.json"] == 2
    long_values = [f"someone-with-a-long-address-{i}@example.com" for i in range(300)]
    assert list(hook.get_leads("email", long_values)) == []
    assert routes(admin)["POST /rest/v1/leads.json"] == 1


def test_lead_changes_from_a_since_datetime(hook: MarketoHook, admin: Any) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    hook.sync_leads(people(2))
    hook.sync_leads([{"email": "p0@example.com", "firstName": "Zed", "title": "CTO"}])
    admin.action("edit_lead", {"id": 1002, "fields": {"lastName": "Lee"}})
    changes = list(hook.lead_changes(since, ["firstName", "lastName"]))
    assert [(c.type_id, c.lead_id) for c in changes] == [(12, 1001), (12, 1002), (13, 1001), (13, 1002)]
    assert changes[2].changes[0].name == "firstName"
    assert (changes[2].changes[0].new, changes[2].changes[0].old) == ("Zed", "P0")
    assert changes[3].attributes["Source"] == "Person Details Page"
    assert hook.last_page_token
    assert list(hook.lead_changes(since, ["firstName"], until=since)) == []
    hook.delete_leads([1002])
    assert [a.lead_id for a in hook.deleted_leads(since)] == [1002]
    typed = list(hook.activities(since, [12, 37]))
    assert [a.type_id for a in typed] == [12, 12, 37]


def test_result_parsing_handles_both_reasons_and_errors() -> None:
    skipped = MarketoResult.from_json(
        "k", {"status": "skipped", "errors": [{"code": "1004", "message": "Lead not found"}]}
    )
    assert (skipped.error_code, skipped.message, skipped.success) == ("1004", "1004: Lead not found", False)
    assert MarketoResult.from_json("k", {"marketoGUID": "g", "status": "updated"}).id == "g"


def test_a_batch_over_1_mb_is_split_and_a_record_over_1_mb_is_skipped(hook: MarketoHook, admin: Any) -> None:
    bulky = people(300, address="x" * 5000)
    results = hook.sync_leads(bulky)
    assert [r.status for r in results] == ["created"] * 300
    assert routes(admin)["POST /rest/v1/leads.json"] == 3, "one 413, then two halves"
    huge = hook.sync_leads([{"email": "huge@example.com", "address": "y" * (1024 * 1024)}])
    assert (huge[0].status, huge[0].error_code) == ("skipped", "413")
    assert huge[0].to_outcome(change("huge@example.com")).status == Status.REJECTED
