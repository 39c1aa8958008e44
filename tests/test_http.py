"""The HTTP policy against a real server on 127.0.0.1: retries, timeouts, errors, counting."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests

from crm_sync.exceptions import AuthError, ConfigurationError, FatalApiError, RetriableApiError
from crm_sync.http import (
    CONNECT_ERROR,
    READ_ERROR,
    HttpPolicy,
    PolicySession,
    RateLimitInfo,
    build_session,
    parse_rate_limit_headers,
    parse_retry_after,
    raise_for_api_status,
)
from tests.http_scripted_server import DROP, Reply, ScriptedServer, make_tls_files, unused_port

SECRET = "s3cr3t-Tok3n-value-42"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture
def sleeps() -> list[float]:
    return []


def session_for(
    server: ScriptedServer | None, sleeps: list[float], *, patterns: tuple = (), **policy: object
) -> PolicySession:
    """A session whose sleeps are recorded, with no jitter so backoffs are exact."""
    settings = {"backoff_jitter": 0.0, "sleep": sleeps.append, **policy}
    return build_session(
        HttpPolicy(**settings),  # type: ignore[arg-type]
        system="testapi",
        base_url=server.url if server else None,
        idempotent_patterns=patterns,
    )


# --- retries of idempotent requests -------------------------------------------------------


def test_get_retried_on_503_then_succeeds(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("GET", "/persons", Reply(503), Reply.json({"data": [1]}))
    session = session_for(server, sleeps)

    response = session.get("/persons")

    assert response.json() == {"data": [1]}
    assert server.count("GET", "/persons") == 2
    assert sleeps == [0.5]
    assert (session.calls, session.retries) == (1, 1)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_seconds_is_honoured(server: ScriptedServer, sleeps: list[float], status: int) -> None:
    server.script("GET", "/contacts.json", Reply(status, headers={"Retry-After": "1"}), Reply.json({}))

    response = session_for(server, sleeps).get("/contacts.json")

    assert response.status_code == 200
    assert sleeps == [1.0]


def test_retry_after_http_date_is_honoured(server: ScriptedServer, sleeps: list[float]) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    server.script("GET", "/x", Reply(429, headers={"Retry-After": when}), Reply.json({}))

    session_for(server, sleeps).get("/x")

    assert len(sleeps) == 1
    assert 100 < sleeps[0] <= 120


def test_retry_after_over_the_cap_parks_instead_of_sleeping(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.script("GET", "/x", Reply(429, headers={"Retry-After": "600"}), Reply.json({}))

    response = session_for(server, sleeps, max_retry_after=300).get("/x")

    assert sleeps == []
    assert server.count() == 1
    with pytest.raises(RetriableApiError) as caught:
        raise_for_api_status(response, system="testapi")
    assert (caught.value.status, caught.value.retry_after) == (429, 600.0)


def test_get_read_timeout_retried(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("GET", "/slow", Reply(delay=3), Reply.json({"ok": True}))

    response = session_for(server, sleeps, read_timeout=0.3).get("/slow")

    assert response.json() == {"ok": True}
    assert server.count("GET", "/slow") == 2


def test_get_dropped_connection_retried(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("GET", "/flaky", DROP, Reply.json({"ok": True}))

    response = session_for(server, sleeps).get("/flaky")

    assert response.json() == {"ok": True}
    assert server.count("GET", "/flaky") == 2


def test_exhausted_retries_raise_retriable_error_with_status(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.always("GET", "/down", Reply(503, body="upstream unavailable"))

    response = session_for(server, sleeps, max_retries=2).get("/down")

    assert server.count() == 3
    assert sleeps == [0.5, 1.0]
    with pytest.raises(RetriableApiError) as caught:
        raise_for_api_status(response, system="testapi")
    assert caught.value.status == 503
    assert "after 3 attempts" in str(caught.value)
    assert "upstream unavailable" in str(caught.value)


def test_backoff_doubles_and_is_capped(server: ScriptedServer, sleeps: list[float]) -> None:
    server.always("GET", "/down", Reply(502))

    session_for(server, sleeps, max_retries=5, backoff_factor=1.0, backoff_max=5.0).get("/down")

    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


# --- non-idempotent requests ----------------------------------------------------------------


def test_post_not_retried_on_500_by_default(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("POST", "/customers.json", Reply(500), Reply.json({"customer": {"id": 1}}, status=201))

    response = session_for(server, sleeps).post("/customers.json", json={"reference": "r1"})

    assert response.status_code == 500
    assert server.count() == 1
    assert sleeps == []
    with pytest.raises(RetriableApiError) as caught:
        raise_for_api_status(response, system="maxio")
    assert caught.value.status == 500


def test_post_retried_on_500_when_marked_idempotent(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("POST", "/contacts.json", Reply(500), Reply.json({"uuid": "u1"}, status=201))

    response = session_for(server, sleeps).post(
        "/contacts.json", params={"urn": "tel:+15550100"}, json={"name": "A"}, idempotent=True
    )

    assert response.status_code == 201
    bodies = [r.json() for r in server.received("POST", "/contacts.json")]
    assert bodies == [{"name": "A"}, {"name": "A"}]


def test_post_with_idempotency_key_header_retried(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("POST", "/charges", Reply(502), Reply.json({}, status=201))

    response = session_for(server, sleeps).post("/charges", json={}, headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 201
    assert server.count() == 2


def test_post_not_retried_after_dropped_connection(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("POST", "/subscriptions.json", DROP, Reply.json({}, status=201))

    with pytest.raises(RetriableApiError) as caught:
        session_for(server, sleeps).post("/subscriptions.json", json={"plan": "p"})

    assert caught.value.code == READ_ERROR
    assert server.count() == 1


def test_post_to_refused_port_retried_on_connect_errors_only(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    session = session_for(None, sleeps, max_retries=2)
    url = f"http://127.0.0.1:{unused_port()}/v1/persons?api_token={SECRET}"

    with pytest.raises(RetriableApiError) as caught:
        session.post(url, json={"name": "A"})

    assert caught.value.code == CONNECT_ERROR
    assert len(sleeps) == 2  # connect errors are retried even for POST
    assert session.retries == 2
    assert server.count() == 0
    assert SECRET not in str(caught.value)
    assert "api_token=***" in str(caught.value)
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("path", "expected_requests"),
    [
        ("/services/data/v59.0/composite/sobjects/Contact/Ext_Id__c", 2),
        ("/services/data/v59.0/composite/sobjects", 1),
    ],
)
def test_patch_retried_only_when_it_matches_an_idempotent_pattern(
    server: ScriptedServer, sleeps: list[float], path: str, expected_requests: int
) -> None:
    server.script("PATCH", path, Reply(503), Reply.json([{"success": True}]))
    session = session_for(server, sleeps, patterns=(("PATCH", r"/composite/sobjects/\w+/\w+"),))

    session.patch(path, json={"records": []})

    assert server.count("PATCH", path) == expected_requests


def test_non_idempotent_retry_statuses_allow_post_retry_on_429(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.script(
        "POST", "/flow_starts.json", Reply(429, headers={"Retry-After": "2"}), Reply.json({}, status=201)
    )
    session = session_for(server, sleeps, non_idempotent_retry_statuses=frozenset({429}))

    assert session.post("/flow_starts.json", json={}).status_code == 201
    assert sleeps == [2.0]


# --- error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_raise_auth_error(
    server: ScriptedServer, sleeps: list[float], status: int
) -> None:
    server.script("GET", "/me", Reply.json({"error": "unauthorized"}, status=status))
    response = session_for(server, sleeps).get("/me")

    with pytest.raises(AuthError) as caught:
        raise_for_api_status(response, system="pipedrive")

    assert caught.value.status == status
    assert server.count() == 1


def test_404_raises_fatal_error_with_redacted_url_and_body(
    server: ScriptedServer, sleeps: list[float]
) -> None:
    server.script(
        "GET",
        "/v1/persons/9",
        Reply.json({"error": "not found", "api_token": SECRET, "email": "ann@example.org"}, status=404),
    )
    response = session_for(server, sleeps).get("/v1/persons/9", params={"api_token": SECRET})

    with pytest.raises(FatalApiError) as caught:
        raise_for_api_status(response, system="pipedrive")

    message = str(caught.value)
    assert type(caught.value) is FatalApiError
    assert caught.value.status == 404
    assert f"pipedrive GET {server.url}/v1/persons/9?api_token=*** -> HTTP 404" in message
    assert "not found" in message
    assert SECRET not in message
    assert "ann@example.org" not in message


def test_success_passes_through(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("GET", "/ok", Reply.json({"a": 1}))
    response = session_for(server, sleeps).get("/ok")

    assert raise_for_api_status(response, system="x") is response


def test_long_error_body_is_cut_to_an_excerpt(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("GET", "/bad", Reply(400, body="<html>" + "x" * 5000 + "</html>"))
    response = session_for(server, sleeps).get("/bad")

    with pytest.raises(FatalApiError) as caught:
        raise_for_api_status(response, system="x")

    excerpt = str(caught.value).split(": ", 1)[1]
    assert excerpt.startswith("<html>xxx")
    assert len(excerpt) <= 300


# --- timeouts, TLS, URLs --------------------------------------------------------------------


def test_default_timeouts_apply_when_caller_gives_none(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("GET", "/slow", Reply(delay=3))
    session = session_for(server, sleeps, read_timeout=0.3, max_retries=0)

    with pytest.raises(RetriableApiError) as caught:
        session.get("/slow")

    assert caught.value.code == READ_ERROR


def test_caller_timeout_overrides_the_default(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("GET", "/slowish", Reply(delay=0.4, body={"ok": 1}))
    session = session_for(server, sleeps, read_timeout=0.1, max_retries=0)

    assert session.get("/slowish", timeout=30).json() == {"ok": 1}


def test_ca_bundle_path_disables_trust_env_so_it_wins_over_requests_ca_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    tls = make_tls_files(tmp_path)
    with ScriptedServer(tls=(tls.cert, tls.key)) as https:
        https.always("GET", "/ok", Reply.json({"ok": True}))

        pinned = build_session(system="emulator", base_url=https.url, verify=str(tls.ca))
        assert pinned.trust_env is False
        assert pinned.get("/ok").json() == {"ok": True}

        system_cas = build_session(system="emulator", base_url=https.url)
        assert system_cas.trust_env is True
        with pytest.raises(ConfigurationError, match="TLS failed"):
            system_cas.get("/ok")


def test_missing_ca_bundle_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        build_session(system="x", verify=str(tmp_path / "missing.pem"))


def test_base_url_joins_relative_urls_and_leaves_absolute_ones(server: ScriptedServer) -> None:
    server.always("GET", "/api/v1/persons", Reply.json({}))
    server.always("GET", "/other", Reply.json({}))
    session = build_session(system="x", base_url=f"{server.url}/api/v1/")

    session.get("persons")
    session.get("/persons", params={"start": 0})
    session.get(f"{server.url}/other")

    assert [r.target for r in server.received()] == ["/api/v1/persons", "/api/v1/persons?start=0", "/other"]


def test_pool_maxsize_sizes_the_connection_pool_of_each_host(server: ScriptedServer) -> None:
    server.always("GET", "/x", Reply.json({}))
    default, wide = build_session(system="x"), build_session(system="x", pool_maxsize=40)
    for session in (default, wide):
        session.get(f"{server.url}/x")
    pools = [s.get_adapter(server.url).poolmanager.connection_from_url(server.url) for s in (default, wide)]
    assert [pool.pool.maxsize for pool in pools] == [requests.adapters.DEFAULT_POOLSIZE, 40]


def test_session_headers_auth_and_user_agent_are_sent(server: ScriptedServer) -> None:
    server.always("GET", "/x", Reply.json({}))
    session = build_session(system="x", base_url=server.url, auth=("user", "pw"), headers={"Accept": "a/b"})

    session.get("/x")

    headers = server.received()[0].headers
    assert headers["accept"] == "a/b"
    assert headers["authorization"].startswith("Basic ")
    assert headers["user-agent"].startswith("crm-sync")


# --- observation: on_response, counting, logging ----------------------------------------


def test_on_response_sees_every_final_response(server: ScriptedServer) -> None:
    server.script("GET", "/persons", Reply(503), Reply.json({}, headers={"X-RateLimit-Remaining": "39"}))
    server.script("POST", "/persons", Reply.json({}, status=201, headers={"x-daily-requests-left": "9000"}))
    seen: list[tuple[int, RateLimitInfo]] = []
    session = build_session(
        HttpPolicy(sleep=lambda _: None),
        system="pipedrive",
        base_url=server.url,
        on_response=lambda r: seen.append((r.status_code, parse_rate_limit_headers(r.headers))),
    )

    session.get("/persons")
    session.post("/persons", json={})

    assert [status for status, _ in seen] == [200, 201]
    assert seen[0][1].remaining == 39
    assert seen[1][1].daily_left == 9000


def test_calls_are_counted_by_method(server: ScriptedServer, sleeps: list[float]) -> None:
    server.script("GET", "/a", Reply(500), Reply.json({}))
    server.always("GET", "/b", Reply.json({}))
    server.always("PATCH", "/c", Reply.json({}))
    session = session_for(server, sleeps)

    session.get("/a")
    session.get("/b")
    session.patch("/c", json={})

    assert session.calls == 3
    assert dict(session.calls_by_method) == {"GET": 2, "PATCH": 1}
    assert session.retries == 1


def test_each_retry_is_logged_with_a_redacted_url(
    server: ScriptedServer, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    server.script("GET", "/persons", Reply(503), DROP, Reply.json({}))
    caplog.set_level(logging.WARNING, logger="crm_sync.http")

    session_for(server, sleeps).get("/persons", params={"api_token": SECRET, "start": "0"})

    retries = [r for r in caplog.records if r.name == "crm_sync.http"]
    assert [r.levelno for r in retries] == [logging.WARNING, logging.WARNING]
    first, second = (r.getMessage() for r in retries)
    assert first == f"testapi GET {server.url}/persons?api_token=***&start=0 -> 503; retry 1/5 in 0.50s"
    assert "-> ProtocolError(RemoteDisconnected); retry 2/5 in 1.00s" in second
    # urllib3 logs its own warning for the dropped connection; it is redacted too.
    urllib3_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert urllib3_lines
    assert all("api_token=***" in line for line in urllib3_lines)
    assert SECRET not in caplog.text


# --- simple-salesforce hands its calls to our session ------------------------------------


def test_simple_salesforce_runs_on_a_policy_session(tmp_path: Path, sleeps: list[float]) -> None:
    from simple_salesforce import Salesforce

    tls = make_tls_files(tmp_path)
    with ScriptedServer(tls=(tls.cert, tls.key)) as sf_server:
        base = "/services/data/v59.0"
        sf_server.script(
            "GET", f"{base}/query/", Reply.json({"totalSize": 1, "done": True, "records": [{"Id": "1"}]})
        )
        sf_server.script("PATCH", f"{base}/sobjects/Contact/Ext_Id__c/42", Reply(503), Reply(204))
        session = build_session(
            HttpPolicy(sleep=sleeps.append),
            system="salesforce",
            verify=str(tls.ca),
            idempotent_patterns=[("PATCH", r"/sobjects/\w+/\w+__c/")],
        )
        sf = Salesforce(instance_url=sf_server.url, session_id="00D000000000001!AQ0secret", session=session)

        records = sf.query("SELECT Id FROM Contact")["records"]
        status = sf.Contact.upsert("Ext_Id__c/42", {"LastName": "Doe"})

        assert records == [{"Id": "1"}]
        assert status == 204
        assert sf_server.count("PATCH") == 2
        assert sf_server.received("GET")[0].headers["authorization"] == "Bearer 00D000000000001!AQ0secret"
        assert session.calls_by_method == {"GET": 1, "PATCH": 1}


# --- pure helpers ---------------------------------------------------------------------------


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("-5") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_parse_rate_limit_headers_reads_every_api_signal() -> None:
    headers = requests.structures.CaseInsensitiveDict(
        {
            "X-RateLimit-Limit": "40",
            "X-RateLimit-Remaining": "12",
            "X-RateLimit-Reset": "2",
            "X-Daily-Requests-Left": "9500",
            "Retry-After": "7",
            "Sforce-Limit-Info": "api-usage=18/5000; per-app-api-usage=17/250(appName=x)",
        }
    )

    info = parse_rate_limit_headers(headers)

    assert info == RateLimitInfo(
        limit=40,
        remaining=12,
        reset=2.0,
        daily_left=9500,
        retry_after=7.0,
        api_usage_used=18,
        api_usage_max=5000,
    )
    assert info.api_usage_left == 4982
    assert parse_rate_limit_headers({"x-ratelimit-limit": "n/a"}) == RateLimitInfo()


def test_policy_rejects_nonsense_values() -> None:
    with pytest.raises(ConfigurationError, match="read_timeout"):
        HttpPolicy(read_timeout=0)
    with pytest.raises(ConfigurationError, match="max_retries"):
        HttpPolicy(max_retries=-1)


def test_backoff_jitter_adds_at_most_its_share() -> None:
    policy = HttpPolicy(backoff_factor=1.0, backoff_jitter=0.25, backoff_max=100)

    delays = [policy.backoff(3) for _ in range(200)]

    assert all(4.0 <= d <= 5.0 for d in delays)
    assert len(set(delays)) > 1
