"""WhatsAppHook contract tests against the WhatsApp emulator over real HTTP.

Connections come from AIRFLOW_CONN_* variables rendered by the sandbox (``whatsapp_default``
logs in with user and password, ``whatsapp_turn`` uses a long-lived token); nothing of ours
is patched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_sync.exceptions import AuthError, FatalApiError, RetriableApiError
from crm_sync.hooks.whatsapp import WhatsAppContact, WhatsAppHook
from crm_sync.http import HttpPolicy
from sandbox.testing import Sandbox, start_sandbox
from tests.environ import environ_set

FAST = HttpPolicy(retry_statuses=frozenset({500, 502, 503, 504}), backoff_factor=0.05, max_retries=3)
LOGIN, CONTACTS = "POST /v1/users/login", "POST /v1/contacts"

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The WhatsApp emulator; its connections plus two with bad credentials in os.environ."""
    with start_sandbox(["whatsapp"], tmp_dir=Path(tmp_path_factory.mktemp("whatsapp"))) as started:
        env = started.conn_env()
        default = json.loads(env["AIRFLOW_CONN_WHATSAPP_DEFAULT"])
        turn = json.loads(env["AIRFLOW_CONN_WHATSAPP_TURN"])
        env["AIRFLOW_CONN_WHATSAPP_BAD_PASSWORD"] = json.dumps({**default, "password": "wrong"})
        env["AIRFLOW_CONN_WHATSAPP_BAD_TOKEN"] = json.dumps({**turn, "password": "not-a-turn-token"})
        with environ_set(env):
            yield started


@pytest.fixture
def admin(sandbox: Sandbox) -> Any:
    admin = sandbox.admin("whatsapp")
    admin.reset()
    return admin


def calls(admin: Any, route: str) -> int:
    return admin.calls()["by_route"].get(route, 0)


def test_check_contacts_statuses_keyed_by_input(admin: Any) -> None:
    admin.seed({"numbers": {"+27821230003": "failed"}})
    hook = WhatsAppHook(http_policy=FAST)
    phones = ["+27 82 123 4568", "+27821234567", "+27821230003", "+27 82 123 4568", "nonsense"]
    results = hook.check_contacts(phones)
    assert results == {
        "+27 82 123 4568": WhatsAppContact("+27 82 123 4568", "valid", "27821234568"),
        "+27821234567": WhatsAppContact("+27821234567", "invalid"),
        "+27821230003": WhatsAppContact("+27821230003", "failed"),
        "nonsense": WhatsAppContact("nonsense", "invalid"),
    }
    valid = results["+27 82 123 4568"]
    assert valid.on_whatsapp
    assert valid.urn == "whatsapp:27821234568"
    assert results["+27821230003"].urn is None
    assert hook.logins == 1
    assert (calls(admin, LOGIN), calls(admin, CONTACTS)) == (1, 1)


def test_batches_share_one_login(admin: Any) -> None:
    hook = WhatsAppHook(batch_size=2, http_policy=FAST)
    phones = [f"+2782123456{i}" for i in range(5)]
    results = hook.check_contacts(phones)
    assert [results[p].status for p in phones] == ["valid", "invalid", "valid", "invalid", "valid"]
    assert (calls(admin, LOGIN), calls(admin, CONTACTS)) == (1, 3)
    assert hook.api_calls == {"total": 4, "POST": 4, "retries": 0}
    with pytest.raises(ValueError, match="batch_size"):
        WhatsAppHook(batch_size=1001)


def test_turn_token_needs_no_login(admin: Any) -> None:
    hook = WhatsAppHook("whatsapp_turn", http_policy=FAST)
    assert hook.check_contacts(["+27821234568"])["+27821234568"].on_whatsapp
    assert hook.logins == 0
    assert calls(admin, LOGIN) == 0


def test_expired_token_is_renewed_by_logging_in_again(admin: Any) -> None:
    hook = WhatsAppHook(http_policy=FAST)
    assert hook.check_contacts(["+27821234568"])["+27821234568"].status == "valid"
    admin.action("expire_tokens")
    assert hook.check_contacts(["+27821234560"])["+27821234560"].status == "valid"
    assert hook.logins == 2
    # the second check was refused once (401), then sent again with the new token
    assert (calls(admin, LOGIN), calls(admin, CONTACTS)) == (2, 3)


def test_refused_credentials_raise_auth_error(admin: Any) -> None:
    with pytest.raises(AuthError, match="login -> HTTP 401"):
        WhatsAppHook("whatsapp_bad_password", http_policy=FAST).check_contacts(["+27821234568"])
    with pytest.raises(AuthError, match="contacts check -> HTTP 401"):
        WhatsAppHook("whatsapp_bad_token", http_policy=FAST).check_contacts(["+27821234568"])
    # a static token is never "renewed": one refused call, no login
    assert (calls(admin, LOGIN), calls(admin, CONTACTS)) == (1, 1)
    ok, message = WhatsAppHook("whatsapp_bad_password").test_connection()
    assert not ok
    assert "1005 Access denied" in message


def test_waits_for_the_rate_window_instead_of_hitting_429(admin: Any) -> None:
    admin.config(rate_limit=2, rate_window_s=1)
    hook = WhatsAppHook("whatsapp_turn", batch_size=1, http_policy=FAST)
    phones = [f"+2782123456{i}" for i in range(4)]
    assert len(hook.check_contacts(phones)) == 4
    # exactly one call per batch: the hook waited for each reset, the server never said 429
    assert calls(admin, CONTACTS) == 4
    assert hook.rate_limit is not None
    assert hook.rate_limit.limit == 2


def test_429_waits_for_the_reset_and_retries(admin: Any) -> None:
    reset = str(int(time.time()) + 1)
    limited = {
        "X-Ratelimit-Bucket": "general",
        "X-Ratelimit-Limit": "60",
        "X-Ratelimit-Remaining": "0",
        "X-Ratelimit-Reset": reset,
    }
    body = {"errors": [{"code": 1015, "title": "Too many requests", "details": "x"}]}
    admin.faults(
        [{"method": "POST", "path": "/v1/contacts", "status": 429, "body": body, "headers": limited}]
    )
    hook = WhatsAppHook("whatsapp_turn", http_policy=FAST)
    assert hook.check_contacts(["+27821234568"])["+27821234568"].on_whatsapp
    assert calls(admin, CONTACTS) == 2


def test_a_far_reset_is_not_slept_in_process(admin: Any) -> None:
    far = {
        "X-Ratelimit-Limit": "60",
        "X-Ratelimit-Remaining": "0",
        "X-Ratelimit-Reset": str(int(time.time()) + 3600),
    }
    admin.faults([{"method": "POST", "path": "/v1/contacts", "status": 429, "body": {}, "headers": far}])
    hook = WhatsAppHook("whatsapp_turn", http_policy=FAST, max_rate_wait=30)
    with pytest.raises(RetriableApiError) as parked:
        hook.check_contacts(["+27821234568"])
    assert parked.value.status == 429
    assert parked.value.code == "RATE_LIMITED"
    assert parked.value.retry_after is not None
    assert 3000 < parked.value.retry_after <= 3601
    assert calls(admin, CONTACTS) == 1


def test_5xx_is_retried_and_400_is_fatal(admin: Any) -> None:
    admin.faults([{"method": "POST", "path": "/v1/contacts", "times": 2, "status": 503, "body": "busy"}])
    hook = WhatsAppHook("whatsapp_turn", http_policy=FAST)
    assert hook.check_contacts(["+27821234568"])["+27821234568"].status == "valid"
    assert calls(admin, CONTACTS) == 3
    assert hook.api_calls["retries"] == 2

    admin.config(max_contacts=2)
    with pytest.raises(FatalApiError, match="1009 Parameter value is not valid") as refused:
        WhatsAppHook("whatsapp_turn", batch_size=3, http_policy=FAST).check_contacts(
            ["+27821234568", "+27821234560", "+27821234562"]
        )
    assert "27821234568" not in str(refused.value)
