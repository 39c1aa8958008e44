"""The WhatsApp (On-Premises / Turn) emulator over real HTTP: login, contacts check, limits."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.testing import Sandbox, start_sandbox

USER, PASSWORD = "admin", "whatsapp-sandbox-password"
TURN_TOKEN = "whatsapp-sandbox-turn-token-0001"

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["whatsapp"], tmp_dir=Path(tmp_path_factory.mktemp("whatsapp"))) as started:
        yield started


@pytest.fixture
def admin(sandbox: Sandbox) -> Any:
    admin = sandbox.admin("whatsapp")
    admin.reset()
    return admin


@pytest.fixture
def http(sandbox: Sandbox, admin: Any) -> requests.Session:
    return sandbox.session("whatsapp")


def url(sandbox: Sandbox, path: str) -> str:
    return sandbox.url("whatsapp") + path


def login(sandbox: Sandbox, http: requests.Session) -> str:
    response = http.post(url(sandbox, "/v1/users/login"), auth=(USER, PASSWORD), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["users"][0]["token"]


def check(sandbox: Sandbox, http: requests.Session, token: str, body: Any) -> requests.Response:
    return http.post(
        url(sandbox, "/v1/contacts"), json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_login_issues_an_expiring_token_and_refuses_bad_credentials(
    sandbox: Sandbox, http: requests.Session
) -> None:
    response = http.post(url(sandbox, "/v1/users/login"), auth=(USER, PASSWORD), timeout=10)
    user = response.json()["users"][0]
    assert re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00:00$", user["expires_after"])
    assert len(user["token"]) >= 32
    bad = http.post(url(sandbox, "/v1/users/login"), auth=(USER, "wrong"), timeout=10)
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["code"] == 1005
    assert http.post(url(sandbox, "/v1/users/login"), timeout=10).status_code == 401


def test_check_statuses_wa_ids_and_input_normalisation(
    sandbox: Sandbox, http: requests.Session, admin: Any
) -> None:
    admin.seed({"numbers": {"+27821230001": "valid", "+27821230003": "failed", "+27821230005": "processing"}})
    token = login(sandbox, http)
    inputs = [
        "+27 (82) 123-4568",  # even last digit: valid by the default rule
        "+27821234567",  # odd: invalid
        "082 123 4560",  # local number: the business's country code (27) is added
        "+27821230001",  # seeded valid although odd
        "+27821230003",
        "+27821230005",
        "not a number",
    ]
    response = check(sandbox, http, token, {"blocking": "wait", "contacts": inputs})
    assert response.status_code == 200
    assert response.json()["contacts"] == [
        {"input": "+27 (82) 123-4568", "status": "valid", "wa_id": "27821234568"},
        {"input": "+27821234567", "status": "invalid"},
        {"input": "082 123 4560", "status": "valid", "wa_id": "27821234560"},
        {"input": "+27821230001", "status": "valid", "wa_id": "27821230001"},
        {"input": "+27821230003", "status": "failed"},
        {"input": "+27821230005", "status": "processing"},
        {"input": "not a number", "status": "invalid"},
    ]


def test_no_wait_answers_processing_until_checked_and_force_check(
    sandbox: Sandbox, http: requests.Session
) -> None:
    token = login(sandbox, http)
    first = check(sandbox, http, token, {"contacts": ["+27821234568"]}).json()["contacts"]
    assert first == [{"input": "+27821234568", "status": "processing"}]
    cached = check(sandbox, http, token, {"blocking": "no_wait", "contacts": ["+27821234568"]}).json()
    assert cached["contacts"][0]["status"] == "valid"
    forced = check(sandbox, http, token, {"contacts": ["+27821234568"], "force_check": True}).json()
    assert forced["contacts"][0]["status"] == "processing"


def test_bad_bodies_and_batch_limit(sandbox: Sandbox, http: requests.Session, admin: Any) -> None:
    admin.config(max_contacts=3)
    token = login(sandbox, http)
    cases = [
        ({"blocking": "wait"}, 1008),
        ({"contacts": []}, 1009),
        ({"contacts": "+27821234568"}, 1009),
        ({"contacts": ["+27821234568"], "blocking": "later"}, 1009),
        ({"contacts": ["+1", "+2", "+3", "+4"]}, 1009),
    ]
    for body, code in cases:
        response = check(sandbox, http, token, body)
        assert response.status_code == 400, body
        error = response.json()["errors"][0]
        assert error["code"] == code, body
        assert error["title"]
        assert error["details"]
    assert check(sandbox, http, token, {"contacts": ["+1", "+2", "+3"]}).status_code == 200


def test_turn_token_expired_and_unknown_tokens(sandbox: Sandbox, http: requests.Session, admin: Any) -> None:
    assert check(sandbox, http, TURN_TOKEN, {"contacts": ["+27821234568"]}).status_code == 200
    token = login(sandbox, http)
    assert check(sandbox, http, token, {"contacts": ["+27821234568"]}).status_code == 200
    assert admin.action("expire_tokens") == {"expired": 1}
    expired = check(sandbox, http, token, {"contacts": ["+27821234568"]})
    assert expired.status_code == 401
    assert expired.json()["errors"][0]["title"] == "Access denied"
    # Turn's long-lived tokens are not login sessions
    assert check(sandbox, http, TURN_TOKEN, {"contacts": ["+27821234568"]}).status_code == 200
    assert check(sandbox, http, "made-up", {"contacts": ["+27821234568"]}).status_code == 401


def test_rate_limit_headers_and_429(sandbox: Sandbox, http: requests.Session, admin: Any) -> None:
    admin.config(rate_limit=2, rate_window_s=60)
    first = check(sandbox, http, TURN_TOKEN, {"contacts": ["+27821234568"]})
    assert first.headers["X-Ratelimit-Bucket"] == "general"
    assert first.headers["X-Ratelimit-Limit"] == "2"
    assert first.headers["X-Ratelimit-Remaining"] == "1"
    reset = int(first.headers["X-Ratelimit-Reset"])
    assert time.time() < reset <= time.time() + 61
    assert (
        check(sandbox, http, TURN_TOKEN, {"contacts": ["+27821234568"]}).headers["X-Ratelimit-Remaining"]
        == "0"
    )
    limited = check(sandbox, http, TURN_TOKEN, {"contacts": ["+27821234568"]})
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["code"] == 1015
    assert limited.headers["X-Ratelimit-Remaining"] == "0"
    assert int(limited.headers["X-Ratelimit-Reset"]) == reset


def test_connections_cover_login_and_turn_token(sandbox: Sandbox) -> None:
    default = sandbox.connection("whatsapp_default")
    assert (default["login"], default["password"]) == (USER, PASSWORD)
    assert default["port"] == sandbox.endpoint("whatsapp").port
    turn = sandbox.connection("whatsapp_turn")
    assert turn["extra"] == {"auth": "token"}
    assert "login" not in turn
