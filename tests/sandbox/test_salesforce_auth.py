"""Salesforce emulator: OAuth2 grants, token expiry, API versions, limits."""

from __future__ import annotations

import base64

import pytest
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession

from .conftest import SfApi

pytestmark = pytest.mark.sandbox


def _token_url(sf: SfApi) -> str:
    return sf.conn["extra"]["login_url"] + "/services/oauth2/token"


def test_password_grant_returns_contract_fields(sf: SfApi) -> None:
    extra = sf.conn["extra"]
    response = sf.session.post(
        _token_url(sf),
        data={
            "grant_type": "password",
            "client_id": extra["client_id"],
            "client_secret": extra["consumer_secret"],
            "username": sf.conn["login"],
            "password": sf.conn["password"] + extra["security_token"],
        },
    )
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}
    assert body["instance_url"] == extra["instance_url"]
    assert body["token_type"] == "Bearer"
    assert body["issued_at"].isdigit()


def test_client_credentials_in_body_and_basic(sf: SfApi) -> None:
    extra = sf.conn["extra"]
    in_body = sf.session.post(
        _token_url(sf),
        data={
            "grant_type": "client_credentials",
            "client_id": extra["client_id"],
            "client_secret": extra["consumer_secret"],
        },
    )
    assert in_body.status_code == 200
    assert in_body.json()["scope"]
    basic = base64.b64encode(f"{extra['client_id']}:{extra['consumer_secret']}".encode()).decode()
    via_basic = sf.session.post(
        _token_url(sf), data={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert via_basic.status_code == 200
    token = via_basic.json()["access_token"]
    limits = sf.session.get(
        f"{sf.base}/services/data/v62.0/limits", headers={"Authorization": f"Bearer {token}"}
    )
    assert limits.status_code == 200


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"password": "sandbox-password"}, "invalid_grant"),  # token not appended
        ({"username": "someone@else.test"}, "invalid_grant"),
        ({"client_id": "nope"}, "invalid_client_id"),
        ({"client_secret": "nope"}, "invalid_client"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
    ],
)
def test_bad_credentials(sf: SfApi, overrides: dict[str, str], error: str) -> None:
    extra = sf.conn["extra"]
    form = {
        "grant_type": "password",
        "client_id": extra["client_id"],
        "client_secret": extra["consumer_secret"],
        "username": sf.conn["login"],
        "password": sf.conn["password"] + extra["security_token"],
        **overrides,
    }
    response = sf.session.post(_token_url(sf), data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error
    if error == "invalid_grant":
        assert response.json() == {"error": "invalid_grant", "error_description": "authentication failure"}


def test_missing_and_expired_tokens(sf: SfApi) -> None:
    unauthenticated = sf.session.get(f"{sf.base}/services/data/v62.0/limits")
    assert unauthenticated.status_code == 401
    assert unauthenticated.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}
    ]
    assert sf.call("GET", "limits").status_code == 200
    assert sf.admin.action("expire_tokens") == {"expired": 1}
    expired = sf.call("GET", "limits")
    assert expired.status_code == 401
    assert expired.json()[0]["errorCode"] == "INVALID_SESSION_ID"
    sf.token = sf.login()
    assert sf.call("GET", "limits").status_code == 200


def test_token_lifetime_is_configurable(sf: SfApi) -> None:
    sf.admin.config(token_lifetime_s=0)
    sf.token = sf.login()
    assert sf.call("GET", "limits").status_code == 401


def test_simple_salesforce_direct_mode_and_expiry(sf: SfApi) -> None:
    session = sf.sandbox.session("salesforce")  # verify=CA, trust_env=False
    client = Salesforce(
        session_id=sf.token, instance_url=sf.conn["extra"]["instance_url"], version="62.0", session=session
    )
    created = client.Contact.create({"LastName": "Holmes"})
    assert created["success"] is True
    assert client.query("SELECT LastName FROM Contact")["records"][0]["LastName"] == "Holmes"
    sf.admin.action("expire_tokens")
    with pytest.raises(SalesforceExpiredSession):
        client.query("SELECT Id FROM Contact")


@pytest.mark.parametrize(
    ("version", "status"), [("41.0", 404), ("42.0", 200), ("59.0", 200), ("62.0", 200), ("63.0", 404)]
)
def test_api_versions(sf: SfApi, version: str, status: int) -> None:
    response = sf.call("GET", "limits", version=version)
    assert response.status_code == status
    if status == 404:
        assert response.json()[0]["errorCode"] == "NOT_FOUND"


def test_limit_header_limits_endpoint_and_exhaustion(sf: SfApi) -> None:
    sf.admin.config(daily_api_limit=3)
    first = sf.call("GET", "limits")
    assert first.headers["Sforce-Limit-Info"] == "api-usage=1/3"
    assert first.json()["DailyApiRequests"] == {"Max": 3, "Remaining": 2}
    assert {"DailyBulkApiBatches", "DailyBulkV2QueryJobs"} <= set(first.json())
    bad = sf.query("SELECT Nope FROM Contact")
    assert bad.status_code == 400
    assert bad.headers["Sforce-Limit-Info"] == "api-usage=2/3"
    assert sf.call("GET", "sobjects").headers["Sforce-Limit-Info"] == "api-usage=3/3"
    for _ in range(2):
        exhausted = sf.call("GET", "limits")
        assert exhausted.status_code == 403
        assert exhausted.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
        assert exhausted.json()[0]["message"] == "TotalRequests Limit exceeded."
        assert exhausted.headers["Sforce-Limit-Info"] == "api-usage=3/3"
    sf.admin.config(daily_api_limit=10)
    assert sf.call("GET", "limits").status_code == 200
