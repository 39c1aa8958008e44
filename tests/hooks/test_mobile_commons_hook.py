"""MobileCommonsHook against the Mobile Commons emulator over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crm_sync.exceptions import AuthError, RecordRejected, RetriableApiError
from crm_sync.hooks.mobile_commons import MobileCommonsHook
from crm_sync.http import HttpPolicy
from sandbox.testing import start_sandbox
from tests.environ import environ_set

ERROR_27 = '<response success="false"><error id="27" message="API rate limit exceeded"/></response>'


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with start_sandbox(["mobile_commons"], tmp_dir=Path(tmp_path_factory.mktemp("mc"))) as sandbox:
        env = sandbox.conn_env()
        with environ_set(env):
            yield sandbox


@pytest.fixture
def admin(running: Any) -> Any:
    admin = running.admin("mobile_commons")
    admin.reset()
    admin.seed({"campaigns": [{"id": 11, "name": "News", "opt_in_paths": [{"id": 101, "name": "Web"}]}]})
    return admin


def hook(sleeps: list[float] | None = None, conn_id: str = "mobile_commons_default") -> MobileCommonsHook:
    policy = HttpPolicy(sleep=(sleeps.append if sleeps is not None else lambda _: None))
    return MobileCommonsHook(conn_id, http_policy=policy)


def test_profile_update_and_lookup(admin: Any) -> None:
    mc = hook()
    created = mc.profile_update(
        "+12125550160", {"first_name": "Ann", "email": "", "constituent_id": "003A"}, opt_in_path_id=101
    )
    assert created.phone == "+12125550160"
    assert created.subscribed
    assert created.custom == {"constituent_id": "003A"}
    found = mc.profiles_by_phone(["+12125550160", "+12125550161"])
    assert list(found) == ["+12125550160"]
    assert found["+12125550160"].fields["first_name"] == "Ann"
    assert "email" not in found["+12125550160"].fields  # an empty value is never sent


def test_iter_profiles_pages_through_the_window(admin: Any) -> None:
    admin.seed(
        {
            "profiles": [
                {"phone_number": f"1212{n:07d}", "updated_at": "2026-03-01T12:00:00Z"} for n in range(1001)
            ]
        }
    )
    admin.seed({"profiles": [{"phone_number": "12129999999", "updated_at": "2026-02-01T12:00:00Z"}]})
    mc = hook()
    start, end = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, tzinfo=UTC)
    assert sum(1 for _ in mc.iter_profiles(start, end)) == 1001
    assert admin.calls()["by_route"]["GET /api/profiles"] == 3  # 1000 + 1 + the empty page


def test_campaigns_subscribers_groups(admin: Any) -> None:
    admin.seed(
        {
            "groups": [{"id": 7, "name": "Volunteers"}],
            "profiles": [
                {
                    "phone_number": "12125550170",
                    "subscriptions": [{"opt_in_path_id": 101, "activated_at": "2026-03-01T10:00:00Z"}],
                }
            ],
        }
    )
    mc = hook()
    [campaign] = mc.campaigns()
    assert campaign.opt_in_paths == {101: "Web"}
    subs = list(mc.iter_campaign_subscribers(11, None, None))
    assert [(s.phone, s.opted_out_at) for s in subs] == [("+12125550170", None)]
    assert mc.groups() == {7: "Volunteers"}


def test_error_27_is_retried_with_backoff(admin: Any) -> None:
    admin.faults([{"path": "/api/profile_update", "status": 200, "body": ERROR_27, "times": 2}])
    sleeps: list[float] = []
    mc = hook(sleeps)
    assert mc.profile_update("+12125550180", {"last_name": "Lee"}).phone == "+12125550180"
    assert len(sleeps) == 2
    assert sleeps[1] > sleeps[0]
    assert mc.rate_limited == 2


def test_error_27_past_the_retries_is_retriable(admin: Any) -> None:
    admin.faults([{"path": "/api/groups", "status": 200, "body": ERROR_27, "times": None}])
    with pytest.raises(RetriableApiError) as caught:
        hook().groups()
    assert caught.value.code == "MC_27"


def test_record_errors_name_the_record(admin: Any) -> None:
    with pytest.raises(RecordRejected) as caught:
        hook().profile_update("+12125550190", {}, opt_in_path_id=999, key="003B")
    assert (caught.value.key, caught.value.code) == ("003B", "MC_19")


def test_bad_credentials_are_an_auth_error(admin: Any, running: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = running.connection("mobile_commons_default")
    monkeypatch.setenv("AIRFLOW_CONN_MC_BAD", json.dumps({**conn, "password": "wrong"}))
    with pytest.raises(AuthError):
        hook(conn_id="mc_bad").campaigns()


def test_entities_are_never_resolved(admin: Any) -> None:
    body = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
        '<response success="true"><profile id="1"><first_name>&x;</first_name>'
        "<phone_number>12125550199</phone_number></profile></response>"
    )
    admin.faults([{"path": "/api/profile_update", "status": 200, "body": body}])
    profile = hook().profile_update("+12125550199", {})
    assert profile.fields.get("first_name") is None


def test_concurrency_is_bounded_by_the_connection(
    admin: Any, running: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = running.connection("mobile_commons_default")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MC_TWO", json.dumps({**conn, "extra": {**conn["extra"], "max_concurrent": 2}})
    )
    admin.config(max_concurrent=2, hold_ms=100)
    mc = hook(conn_id="mc_two")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: mc.groups(), range(8)))
    admin.config(hold_ms=0)
    assert results == [{}] * 8  # no call was refused with error 27
    assert admin.state()["peak_in_flight"] == 2
