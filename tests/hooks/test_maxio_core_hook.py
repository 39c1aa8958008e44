"""MaxioCoreHook against the Core emulator: exact contract lookup, a checked link, no guessing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from crm_sync.exceptions import AuthError, ConfigurationError, FatalApiError, RecordRejected
from crm_sync.hooks.maxio_core import Contract, MaxioCoreHook, drf_error_messages
from crm_sync.http import HttpPolicy
from sandbox.maxio_core.store import DEFAULT_TOKEN

pytest_plugins = ("tests.hooks.maxio_fixtures",)

ACCOUNT_ID = "0010a00001Qa6gPAAR"
OTHER_ACCOUNT_ID = "0010a00001Qa6gQAAR"
CASHE = "cashe"


def routes(admin: Any) -> dict[str, int]:
    return admin.calls()["by_route"]


@pytest.fixture
def hook(maxio_env: Any, fast_policy: HttpPolicy) -> MaxioCoreHook:
    return MaxioCoreHook(http_policy=fast_policy)


@pytest.fixture
def seeded(core_admin: Any) -> Any:
    """Account ACCOUNT_ID: contract 100 in the CASHe register, 101 in another one."""
    core_admin.seed(
        {
            "registers": [{"id": 1, "name": "CASHe Billing"}, {"id": 2, "name": "Professional Services"}],
            "customers": [
                {"id": 10, "number": ACCOUNT_ID, "name": "Acme"},
                {"id": 11, "number": ACCOUNT_ID + "X", "name": "Acme lookalike"},
            ],
            "contracts": [
                {"id": 100, "customer": 10, "register": 1},
                {"id": 101, "customer": 10, "register": 2},
                {"id": 102, "customer": 11, "register": 1},
            ],
        }
    )
    core_admin.reset_calls()
    return core_admin


def stored_link(admin: Any, contract_id: int) -> str | None:
    return next(c for c in admin.state(kind="contracts")["records"] if c["id"] == contract_id)["text_field2"]


# ---- connection ----------------------------------------------------------------------------------


def test_sandbox_connection_and_token(hook: MaxioCoreHook, maxio_env: Any) -> None:
    assert hook.settings.base_url == maxio_env.url("maxio_core") + "/api/v1.0"
    assert hook.test_connection() == (True, "connected to Maxio Core")
    assert DEFAULT_TOKEN not in repr(hook.settings)


def test_production_url_carries_the_account_path(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "maxio_core",
        "host": "acme.saasoptics.com",
        "password": "t",
        "extra": {"account": "acme"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_CORE_PROD", json.dumps(conn))
    assert MaxioCoreHook("core_prod").settings.base_url == "https://acme.saasoptics.com/acme/api/v1.0"


def test_missing_token_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_CORE_BAD", json.dumps({"conn_type": "maxio_core", "host": "h"}))
    with pytest.raises(ConfigurationError, match="API token"):
        MaxioCoreHook("core_bad").settings  # noqa: B018


def test_a_wrong_token_is_an_auth_error(hook: MaxioCoreHook, seeded: Any) -> None:
    seeded.config(token="rotated")
    with pytest.raises(AuthError, match="Invalid token"):
        hook.find_contract(ACCOUNT_ID)


# ---- find_contract -------------------------------------------------------------------------------


def test_find_contract_joins_customer_number_and_register(hook: MaxioCoreHook, seeded: Any) -> None:
    contract = hook.find_contract(ACCOUNT_ID, register_name_contains=CASHE)
    assert contract == Contract(id=100, customer_id=10, register_id=1, number="C-100", text_field2=None)
    assert routes(seeded) == {
        "GET /api/v1.0/customers/": 1,
        "GET /api/v1.0/contracts/": 1,
        "GET /api/v1.0/registers/": 1,
    }


def test_several_matching_contracts_are_never_guessed_between(hook: MaxioCoreHook, seeded: Any) -> None:
    with pytest.raises(RecordRejected) as caught:
        hook.find_contract(ACCOUNT_ID)
    assert caught.value.key == ACCOUNT_ID
    assert caught.value.code == "AMBIGUOUS_CONTRACT"
    assert ACCOUNT_ID in caught.value.reason
    assert "[100, 101]" in caught.value.reason


def test_several_customers_with_the_number_are_ambiguous(hook: MaxioCoreHook, seeded: Any) -> None:
    seeded.seed({"customers": [{"id": 12, "number": ACCOUNT_ID, "name": "Duplicate"}]})
    with pytest.raises(RecordRejected) as caught:
        hook.find_contract(ACCOUNT_ID, register_name_contains=CASHE)
    assert caught.value.code == "AMBIGUOUS_CUSTOMER"
    assert "[10, 12]" in caught.value.reason


def test_unknown_account_or_no_matching_register_finds_nothing(hook: MaxioCoreHook, seeded: Any) -> None:
    assert hook.find_contract(OTHER_ACCOUNT_ID, register_name_contains=CASHE) is None
    assert hook.find_contract(ACCOUNT_ID, register_name_contains="no such register") is None


def test_lookup_follows_pages_and_checks_every_row(hook: MaxioCoreHook, seeded: Any) -> None:
    seeded.config(max_page_size=2)
    seeded.seed({"contracts": [{"customer": 10, "register": 2} for _ in range(4)]})
    contract = hook.find_contract(ACCOUNT_ID, register_name_contains=CASHE)
    assert contract is not None
    assert contract.id == 100
    assert routes(seeded)["GET /api/v1.0/contracts/"] == 3


# ---- set_subscription_id / link_subscription -----------------------------------------------------


def test_set_subscription_id_stores_and_checks_the_value(hook: MaxioCoreHook, seeded: Any) -> None:
    contract = hook.set_subscription_id(100, 80000001)
    assert contract.text_field2 == "80000001"
    assert stored_link(seeded, 100) == "80000001"


def test_a_patch_core_silently_ignores_is_caught(hook: MaxioCoreHook, seeded: Any) -> None:
    seeded.config(read_only_fields=["text_field2"])
    with pytest.raises(FatalApiError) as caught:
        hook.set_subscription_id(100, 80000001)
    assert caught.value.code == "WRITE_NOT_APPLIED"
    assert "not stored" in str(caught.value)


def test_a_lost_patch_answer_is_resent_safely(hook: MaxioCoreHook, seeded: Any) -> None:
    seeded.faults([{"method": "PATCH", "path": "/contracts/100/", "lost_response": True}])
    assert hook.set_subscription_id(100, "80000001").text_field2 == "80000001"
    assert routes(seeded)["PATCH /api/v1.0/contracts/{contract_id}/"] == 2


def test_unknown_contract_and_refused_value_are_record_rejections(hook: MaxioCoreHook, seeded: Any) -> None:
    with pytest.raises(RecordRejected) as missing:
        hook.set_subscription_id(999, 1)
    assert (missing.value.key, missing.value.code) == ("999", "NOT_FOUND")
    with pytest.raises(RecordRejected) as refused:
        hook.set_subscription_id(100, "9" * 300)
    assert refused.value.code == "INVALID"
    assert refused.value.field == "text_field2"
    assert "no more than 255 characters" in refused.value.reason


def test_link_subscription_writes_once_and_never_overwrites(hook: MaxioCoreHook, seeded: Any) -> None:
    first = hook.link_subscription(ACCOUNT_ID, 80000001, register_name_contains=CASHE)
    again = hook.link_subscription(ACCOUNT_ID, 80000001, register_name_contains=CASHE)
    assert first == again
    assert routes(seeded)["PATCH /api/v1.0/contracts/{contract_id}/"] == 1

    with pytest.raises(RecordRejected) as caught:
        hook.link_subscription(ACCOUNT_ID, 80000002, register_name_contains=CASHE)
    assert caught.value.code == "CONTRACT_ALREADY_LINKED"
    assert stored_link(seeded, 100) == "80000001"


def test_link_without_a_contract_yet_is_a_rejection(hook: MaxioCoreHook, seeded: Any) -> None:
    with pytest.raises(RecordRejected) as caught:
        hook.link_subscription(OTHER_ACCOUNT_ID, 80000001, register_name_contains=CASHE)
    assert (caught.value.key, caught.value.code) == (OTHER_ACCOUNT_ID, "CONTRACT_NOT_FOUND")
    assert "PATCH /api/v1.0/contracts/{contract_id}/" not in routes(seeded)


def test_get_contract(hook: MaxioCoreHook, seeded: Any) -> None:
    assert hook.get_contract(101) == Contract(
        id=101, customer_id=10, register_id=2, number="C-101", text_field2=None
    )
    assert hook.get_contract(999) is None


def test_drf_error_messages() -> None:
    assert drf_error_messages({"detail": "Not found."}) == (["Not found."], None)
    assert drf_error_messages({"text_field2": ["Too long."]}) == (["text_field2: Too long."], "text_field2")
    assert drf_error_messages({"non_field_errors": ["Bad."], "a": "x"}) == (
        ["non_field_errors: Bad.", "a: x"],
        "a",
    )
