"""Every dashboard endpoint through Airflow's own API app: auth, numbers, filters, privacy."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import quote

import pytest

from tests.dashboard.conftest import AOU, MC, RUN_1, RUN_2, Api, use_staging

RUN_Q = quote(RUN_2)
GETS = [
    "/crm-sync/api/overview",
    f"/crm-sync/api/runs?integration={AOU}",
    f"/crm-sync/api/run?integration={AOU}&run_id={RUN_Q}",
    "/crm-sync/api/rejected",
    "/crm-sync/api/history?key=P010",
    "/crm-sync/api/imports",
    "/crm-sync/api/mobile-commons",
    "/crm-sync/api/audit",
    "/crm-sync/metrics",
    "/crm-sync/dashboard",
    f"/crm-sync/dashboard/runs?integration={AOU}",
    f"/crm-sync/dashboard/run?integration={AOU}&run_id={RUN_Q}",
    "/crm-sync/dashboard/rejected",
    "/crm-sync/dashboard/history?key=P010",
    "/crm-sync/dashboard/imports",
    "/crm-sync/dashboard/audit",
]


@pytest.mark.parametrize("path", GETS)
def test_every_get_endpoint_needs_a_login_and_answers_with_one(api: Api, sqlite_ledger, path: str):
    if api.mode == "login":
        assert api.client.get(path).status_code == 401
        assert api.client.get(path, headers={"Authorization": "Bearer not-a-jwt"}).status_code == 403
    else:
        # Airflow's login switched off (simple_auth_manager_all_admins): Airflow itself lets
        # every request in as admin, and the dashboard follows Airflow.
        assert api.client.get("/api/v2/dags").status_code == 200
        assert api.client.get(path).status_code == 200
    response = api.client.get(path, headers=api.headers())
    assert response.status_code == 200, response.text
    # The UI's login cookie works too (the page is an iframe of the Airflow UI).
    api.client.cookies.set("_token", api.token())
    try:
        assert api.client.get(path).status_code == 200
    finally:
        api.client.cookies.clear()


def test_overview_numbers_match_the_ledger(api: Api, ledger):
    from crm_sync.dashboard.queries import outcome_counts
    from crm_sync.sync.ledger import run_summary

    engine, seeded = ledger
    body = api.client.get("/crm-sync/api/overview", headers=api.headers()).json()
    rows = {row["integration"]: row for row in body["integrations"]}
    assert set(rows) == {AOU, MC}
    aou = rows[AOU]
    assert aou["dag_id"] == AOU
    assert aou["last_run"]["run_id"] == RUN_2
    assert aou["last_run"]["counts"] == outcome_counts(run_summary(engine, integration=AOU, run_id=RUN_2))
    assert aou["last_run"]["counts"] == {
        "created": 0, "updated": 3, "deleted": 0, "unchanged": 0,
        "rejected": 4, "skipped": 1, "failed": 0, "parked": 1,
    }  # fmt: skip
    assert aou["last_run"]["duration_s"] == pytest.approx(120, abs=1)
    assert aou["last_run"]["api_calls"] == {"salesforce": 7}
    assert aou["last_run"]["budget_left"] == {"salesforce": 4993}
    assert aou["waiting"] == {"outbox_pending": 1, "parked": 1}
    trend = {point["day"]: point for point in aou["trend"]}
    assert len(aou["trend"]) == 31
    assert trend[seeded["day1"].date().isoformat()]["synced"] == 10
    assert trend[seeded["day2"].date().isoformat()]["synced"] == 3
    assert trend[seeded["day2"].date().isoformat()]["rejected"] == 4
    assert sum(p["runs"] for p in aou["trend"]) == 2
    assert rows[MC]["last_run"]["state"] == "failed"
    assert rows[MC]["last_success_at"] is None
    budgets = {b["api"]: b for b in body["budgets"]}
    assert budgets["salesforce"]["daily"] == {"used": 7, "limit": 5000}
    assert budgets["salesforce"]["left"] == 4993


def test_overview_page_shows_counts_and_trends_without_personal_data(api: Api, ledger):
    response = api.client.get("/crm-sync/dashboard", headers=api.headers())
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert f'data-integration="{AOU}"' in html
    assert '<td class="num" data-count="rejected"><a' in html
    assert html.count("<svg") == 2  # one trend chart per integration
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "example.org" not in html


def test_run_detail_has_counts_top_errors_and_steps(api: Api, ledger):
    path = f"/crm-sync/api/run?integration={AOU}&run_id={RUN_Q}"
    body = api.client.get(path, headers=api.headers()).json()
    assert body["outcomes"]["create"] == {"rejected": 3, "parked": 1}
    assert body["outcomes"]["update"] == {"success": 3, "skipped": 1}
    errors = {e["code"]: e for e in body["errors"]}
    assert errors["INVALID_EMAIL_ADDRESS"]["count"] == 2
    assert errors["INVALID_EMAIL_ADDRESS"]["sample_keys"] == ["P010", "P011"]
    assert errors["MISSING_FIELD"]["source"] == "quarantine"
    assert body["steps"] == []  # this run never went through Airflow
    html = api.client.get(path.replace("/api/run", "/dashboard/run"), headers=api.headers()).text
    assert 'data-outcome="update:success">3<' in html
    assert "INVALID_EMAIL_ADDRESS" in html
    missing = api.client.get(f"/crm-sync/api/run?integration={AOU}&run_id=nope", headers=api.headers())
    assert missing.status_code == 404
    assert "nope" in missing.json()["detail"]


def test_rejected_list_filters_and_hides_field_values(api: Api, ledger):
    engine, seeded = ledger
    get = lambda q="": api.client.get(f"/crm-sync/api/rejected{q}", headers=api.headers()).json()  # noqa: E731
    everything = get()
    assert {(r["integration"], r["key"]) for r in everything["records"]} == {
        (AOU, "P010"), (AOU, "P011"), (AOU, "P012"), (AOU, "P015"), (MC, "+27820000003"),
    }  # fmt: skip
    assert "INVALID_EMAIL_ADDRESS" in everything["error_codes"]
    messages = " ".join(r["message"] or "" for r in everything["records"])
    assert "@" not in messages
    assert "82 000" not in messages
    assert "email address: ***" in messages
    emails = get(f"?integration={AOU}&error_code=INVALID_EMAIL_ADDRESS")
    assert [r["key"] for r in emails["records"]] == ["P010", "P011"]
    assert {r["field"] for r in emails["records"]} == {"Email"}
    tomorrow = (seeded["day2"] + timedelta(days=3)).date().isoformat()
    assert get(f"?integration={AOU}&error_code=INVALID_EMAIL_ADDRESS&since={tomorrow}")["total"] == 0
    day2 = seeded["day2"].date().isoformat()
    assert get(f"?integration={AOU}&error_code=INVALID_EMAIL_ADDRESS&since={day2}&until={day2}")["total"] == 2
    bad = api.client.get("/crm-sync/api/rejected?since=yesterday", headers=api.headers())
    assert bad.status_code == 422
    assert "since" in bad.json()["detail"]

    # P012 synced by a later run: no longer listed unless asked for.
    from crm_sync.sync.ledger import apply_outcomes, finish_run, start_run
    from crm_sync.sync.records import Action, Outcome, Status

    later = "manual__later"
    start_run(engine, integration=AOU, run_id=later, dag_id=AOU, dry_run=False, full_refresh=False)
    apply_outcomes(
        engine,
        run_id=later,
        integration=AOU,
        entity="contact",
        outcomes=[Outcome("P012", Action.CREATE, Status.SUCCESS, target_id="003X012")],
    )
    finish_run(engine, integration=AOU, run_id=later, state="success", api_calls={}, budget_left={})
    assert "P012" not in {r["key"] for r in get(f"?integration={AOU}")["records"]}
    assert "P012" in {r["key"] for r in get(f"?integration={AOU}&all=true")["records"]}
    html = api.client.get(f"/crm-sync/dashboard/rejected?integration={AOU}", headers=api.headers()).text
    assert 'name="keys" value="P010"' in html
    assert 'id="retry"' in html
    assert "example.org" not in html


def test_record_history_answers_why_a_participant_did_not_sync(api: Api, ledger):
    body = api.client.get("/crm-sync/api/history?key=P010", headers=api.headers()).json()
    assert [(o["run_id"], o["action"], o["status"], o["error_code"]) for o in body["outcomes"]] == [
        (RUN_2, "create", "rejected", "INVALID_EMAIL_ADDRESS")
    ]
    assert body["outcomes"][0]["run_state"] == "success"
    both = api.client.get("/crm-sync/api/history?key=P001", headers=api.headers()).json()
    assert [(o["run_id"], o["action"], o["status"]) for o in both["outcomes"]] == [
        (RUN_2, "update", "success"),
        (RUN_1, "create", "success"),
    ]
    held = api.client.get("/crm-sync/api/history?key=P015", headers=api.headers()).json()
    assert [(q["code"], q["field"]) for q in held["quarantined"]] == [("MISSING_FIELD", "LastName")]
    pending = api.client.get("/crm-sync/api/history?key=P016", headers=api.headers()).json()
    assert [op["state"] for op in pending["outbox"]] == ["pending"]
    html = api.client.get("/crm-sync/dashboard/history?key=P010", headers=api.headers()).text
    assert "INVALID_EMAIL_ADDRESS" in html
    assert "example.org" not in html


def test_imports_and_mobile_commons_report(api: Api, ledger):
    imports = api.client.get("/crm-sync/api/imports", headers=api.headers()).json()["imports"]
    assert [(f["file_key"], f["status"], f["rows_total"], f["rows_rejected"]) for f in imports] == [
        ("gpconnect/2026-11-21/clinic-a.xlsx", "imported", 120, 3)
    ]
    categories = api.client.get("/crm-sync/api/mobile-commons", headers=api.headers()).json()["categories"]
    assert {(c["category"], c["status"], c["records"]) for c in categories} == {
        ("opted_in", "success", 2),
        ("invalid_number", "rejected", 1),
    }
    html = api.client.get("/crm-sync/dashboard/imports", headers=api.headers()).text
    assert "Mobile Commons synchronization report" in html
    assert "clinic-a.xlsx" in html


def test_imports_page_without_mobile_commons_rows_has_no_report_section(
    api: Api, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
):
    use_staging(monkeypatch, sqlite_url)
    html = api.client.get("/crm-sync/dashboard/imports", headers=api.headers()).text
    assert "Mobile Commons" not in html
    assert "No file imported yet" in html
    overview = api.client.get("/crm-sync/dashboard", headers=api.headers()).text
    assert "No integration has run yet" in overview


def test_metrics_in_prometheus_text_format(api: Api, ledger, monkeypatch: pytest.MonkeyPatch):
    from prometheus_client.parser import text_string_to_metric_families

    response = api.client.get("/crm-sync/metrics", headers=api.headers())
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    aou = ("integration", AOU)
    assert samples[("crm_sync_last_run_records", (aou, ("outcome", "rejected")))] == 4
    assert samples[("crm_sync_last_run_records", (aou, ("outcome", "updated")))] == 3
    assert samples[("crm_sync_last_run_api_calls", (aou, ("kind", "salesforce")))] == 7
    assert samples[("crm_sync_last_run_budget_left", (("api", "salesforce"), aou))] == 4993
    assert samples[("crm_sync_last_run_success", (aou,))] == 1
    assert samples[("crm_sync_last_run_success", (("integration", MC),))] == 0
    assert samples[("crm_sync_outbox_pending", (aou,))] == 1
    assert samples[("crm_sync_api_budget_left", (("api", "salesforce"),))] == 4993
    assert samples[("crm_sync_last_success_timestamp_seconds", (aou,))] > 0
    assert ("crm_sync_last_success_timestamp_seconds", (("integration", MC),)) not in samples

    # A Prometheus scrape token from connection crm_sync_metrics, compared in constant time.
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM_SYNC_METRICS", json.dumps({"conn_type": "generic", "password": "s3cr3t"})
    )
    scraped = api.client.get("/crm-sync/metrics", headers={"Authorization": "Bearer s3cr3t"})
    assert scraped.status_code == 200
    assert "crm_sync_last_run_records" in scraped.text
    if api.mode == "login":
        assert (
            api.client.get("/crm-sync/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
        )
        assert api.client.get("/crm-sync/metrics").status_code == 401
        # The scrape token opens the metrics only.
        overview = api.client.get("/crm-sync/api/overview", headers={"Authorization": "Bearer s3cr3t"})
        assert overview.status_code == 403
