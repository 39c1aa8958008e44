"""The Mobile Commons emulator over real HTTP: envelopes, auth, upsert, opt-in paths, paging, limits."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree

from sandbox.mobile_commons.store import DEFAULT_LOGIN, DEFAULT_PASSWORD
from sandbox.testing import start_sandbox

AUTH = (DEFAULT_LOGIN, DEFAULT_PASSWORD)
SAFE = etree.XMLParser(resolve_entities=False, no_network=True)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with start_sandbox(["mobile_commons"], tmp_dir=Path(tmp_path_factory.mktemp("mc"))) as sandbox:
        yield sandbox


@pytest.fixture
def mc(running: Any) -> tuple[str, Any]:
    admin = running.admin("mobile_commons")
    admin.reset()
    admin.seed({"campaigns": [{"id": 11, "name": "News", "opt_in_paths": [{"id": 101, "name": "Web"}]}]})
    return running.url("mobile_commons") + "/api", admin


def xml(response: requests.Response) -> Any:
    assert response.status_code == 200
    return etree.fromstring(response.content, SAFE)


def test_profile_update_upserts_by_phone_and_subscribes_once(mc: tuple[str, Any]) -> None:
    base, admin = mc
    form = {
        "phone_number": "+1 (212) 555-0142",
        "first_name": "Ann",
        "opt_in_path_id": "101",
        "Constituent": "003x",
    }
    first = xml(requests.post(f"{base}/profile_update", data=form, auth=AUTH))
    assert first.get("success") == "true"
    profile_id = first.find("profile").get("id")
    second = xml(requests.post(f"{base}/profile_update", data={**form, "first_name": "Anne"}, auth=AUTH))
    assert second.find("profile").get("id") == profile_id
    [state] = admin.state(kind="profiles")
    assert state["first_name"] == "Anne"
    assert state["custom_columns"] == {"Constituent": "003x"}
    assert len(state["subscriptions"]) == 1  # an opt-in path subscribes once per campaign
    assert state["status"] == "Active Subscriber"


def test_opted_out_number_is_never_resubscribed(mc: tuple[str, Any]) -> None:
    base, admin = mc
    requests.post(
        f"{base}/profile_update", data={"phone_number": "12125550143", "opt_in_path_id": "101"}, auth=AUTH
    )
    admin.action("opt_out", {"phone_number": "12125550143"})
    requests.post(
        f"{base}/profile_update", data={"phone_number": "12125550143", "opt_in_path_id": "101"}, auth=AUTH
    )
    [state] = admin.state(kind="profiles")
    assert state["status"] == "Opted Out"
    assert [s["opted_out_at"] is not None for s in state["subscriptions"]] == [True]


@pytest.mark.parametrize(
    ("form", "error_id"),
    [
        ({"first_name": "No phone"}, "28"),
        ({"phone_number": "12"}, "5"),
        ({"phone_number": "12125550144", "opt_in_path_id": "999"}, "19"),
        ({"phone_number": "12125550144", "email": "not-an-address"}, "30"),
    ],
)
def test_errors_are_xml_envelopes_with_http_200(
    mc: tuple[str, Any], form: dict[str, str], error_id: str
) -> None:
    base, admin = mc
    root = xml(requests.post(f"{base}/profile_update", data=form, auth=AUTH))
    assert root.get("success") == "false"
    assert root.find("error").get("id") == error_id
    assert admin.state()["counts"]["profiles"] == 0


def test_basic_auth_is_required(mc: tuple[str, Any]) -> None:
    base, _ = mc
    assert requests.get(f"{base}/campaigns", auth=(DEFAULT_LOGIN, "wrong")).status_code == 401
    assert requests.get(f"{base}/campaigns").status_code == 401


def test_profiles_window_and_paging(mc: tuple[str, Any]) -> None:
    base, admin = mc
    admin.seed(
        {
            "profiles": [
                {"phone_number": f"1212555{n:04d}", "updated_at": f"2026-03-0{1 + n % 2}T12:00:00Z"}
                for n in range(5)
            ]
        }
    )
    window = {"from": "2026-03-02T00:00:00+00:00", "to": "2026-03-03T00:00:00+00:00", "limit": 1}
    seen = []
    for page in (1, 2, 3):
        root = xml(requests.get(f"{base}/profiles", params={**window, "page": page}, auth=AUTH))
        profiles = root.find("profiles")
        assert profiles.get("page") == str(page)
        seen += [p.findtext("phone_number") for p in profiles.iterfind("profile")]
    assert seen == ["12125550001", "12125550003"]  # the third page has num="0"
    bad = xml(requests.get(f"{base}/profiles", params={"limit": 1001}, auth=AUTH))
    assert bad.find("error").get("id") == "16"


def test_campaigns_subscribers_and_groups(mc: tuple[str, Any]) -> None:
    base, admin = mc
    admin.seed(
        {
            "groups": [{"id": 7, "name": "Volunteers", "members": ["12125550150"]}],
            "profiles": [
                {
                    "phone_number": "12125550150",
                    "subscriptions": [
                        {
                            "opt_in_path_id": 101,
                            "activated_at": "2026-03-01T10:00:00Z",
                            "opted_out_at": "2026-03-02T10:00:00Z",
                        }
                    ],
                }
            ],
        }
    )
    campaigns = xml(requests.get(f"{base}/campaigns", params={"include_opt_in_paths": 1}, auth=AUTH))
    assert campaigns.find("campaigns/campaign/opt_in_paths/opt_in_path").get("id") == "101"
    subs = xml(
        requests.get(
            f"{base}/campaign_subscribers",
            params={"campaign_id": 11, "from": "2026-03-02T00:00:00Z", "to": "2026-03-03T00:00:00Z"},
            auth=AUTH,
        )
    )
    assert subs.find("subscriptions/sub/opted_out_at").text == "2026-03-02 10:00:00 UTC"
    missing = xml(requests.get(f"{base}/campaign_subscribers", auth=AUTH))
    assert missing.find("error").get("id") == "1"
    groups = xml(requests.get(f"{base}/groups", auth=AUTH))
    assert groups.find("groups/group/name").text == "Volunteers"


def test_rate_limit_answers_error_27(mc: tuple[str, Any]) -> None:
    base, admin = mc
    admin.config(rate_limit=2)
    answers = [xml(requests.get(f"{base}/groups", auth=AUTH)).get("success") for _ in range(3)]
    assert answers == ["true", "true", "false"]
    limited = xml(requests.get(f"{base}/groups", auth=AUTH))
    assert limited.find("error").get("id") == "27"


def test_concurrency_over_the_limit_answers_error_27(mc: tuple[str, Any]) -> None:
    base, admin = mc
    admin.config(max_concurrent=1, hold_ms=500)
    results: list[str] = []
    slow = threading.Thread(
        target=lambda: results.append(xml(requests.get(f"{base}/groups", auth=AUTH)).get("success"))
    )
    slow.start()
    # Wait until the slow call is admitted, then a second call finds no free slot.
    for _ in range(200):
        if admin.state()["peak_in_flight"] >= 1:
            break
        threading.Event().wait(0.01)
    second = xml(requests.get(f"{base}/campaigns", auth=AUTH))
    slow.join()
    admin.config(hold_ms=0)
    assert second.find("error").get("id") == "27"
    assert results == ["true"]
