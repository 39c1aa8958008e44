"""MaxioHook against the Advanced Billing emulator: exact lookups, no duplicates, Maxio's messages."""

from __future__ import annotations

import itertools
import json
import logging
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_sync.exceptions import AuthError, ConfigurationError, RecordRejected, RetriableApiError
from crm_sync.hooks.maxio import (
    VALIDATION_CODE,
    CustomerInput,
    MaxioHook,
    PricePointInput,
    PriceTier,
    SubscriptionComponent,
    SubscriptionInput,
    make_handle,
    maxio_error_messages,
    volume_tiers,
)
from crm_sync.http import HttpPolicy
from sandbox.maxio.pricing import HANDLE_RE
from sandbox.maxio.store import DEFAULT_API_KEY

pytest_plugins = ("tests.hooks.maxio_fixtures",)

ACCOUNT_ID = "0010a00001Qa6gPAAR"
COMPONENT = 2544422
RATES = [(101, "1.50"), (1, "2.00"), (1001, "0.75")]


def customer_input(reference: str = ACCOUNT_ID, **overrides: Any) -> CustomerInput:
    values = {
        "reference": reference,
        "first_name": "Accounts",
        "last_name": "Payable",
        "email": "ap@acme.example",
        "organization": "Acme Health",
        "country": "US",
    }
    return CustomerInput(**(values | overrides))


def price_point_input(handle: str = "sf-006-2544422", rates: Any = RATES) -> PricePointInput:
    return PricePointInput.volume(name=f"Acme_{handle}", handle=handle, rates=rates)


def routes(admin: Any) -> dict[str, int]:
    return admin.calls()["by_route"]


@pytest.fixture
def hook(maxio_env: Any, fast_policy: HttpPolicy) -> MaxioHook:
    return MaxioHook(http_policy=fast_policy)


# ---- connection ----------------------------------------------------------------------------------


def test_sandbox_connection_points_the_hook_at_the_emulator(hook: MaxioHook, maxio_env: Any) -> None:
    assert hook.settings.base_url == maxio_env.url("maxio")
    assert hook.test_connection() == (True, "connected to Maxio site 'sandbox'")
    assert hook.get_conn() is hook.get_conn()
    assert DEFAULT_API_KEY not in repr(hook.settings)


@pytest.mark.parametrize(
    ("extra", "base_url"),
    [
        ({"subdomain": "acme"}, "https://acme.chargify.com"),
        ({"subdomain": "acme", "region": "eu"}, "https://acme.ebilling.maxio.com"),
    ],
)
def test_production_host_comes_from_the_subdomain(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, str], base_url: str
) -> None:
    conn = {"conn_type": "maxio", "login": "key", "password": "x", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_MAXIO_PROD", json.dumps(conn))
    assert MaxioHook("maxio_prod").settings.base_url == base_url


def test_missing_api_key_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MAXIO_BAD", json.dumps({"conn_type": "maxio", "extra": {"subdomain": "a"}})
    )
    with pytest.raises(ConfigurationError, match="API key"):
        MaxioHook("maxio_bad").settings  # noqa: B018


def test_a_wrong_key_is_an_auth_error(hook: MaxioHook, maxio_admin: Any) -> None:
    maxio_admin.config(api_key="rotated")
    with pytest.raises(AuthError, match="HTTP 401"):
        hook.find_customer_by_reference(ACCOUNT_ID)
    ok, message = hook.test_connection()
    assert not ok
    assert "rotated" not in message


# ---- customers -----------------------------------------------------------------------------------


def test_get_or_create_customer_twice_creates_one(hook: MaxioHook, maxio_admin: Any) -> None:
    first, created = hook.get_or_create_customer(customer_input())
    second, created_again = hook.get_or_create_customer(customer_input())
    assert (created, created_again) == (True, False)
    assert first == second
    assert first.reference == ACCOUNT_ID
    assert maxio_admin.state(kind="customers")["count"] == 1
    assert routes(maxio_admin) == {"GET /customers/lookup.json": 2, "POST /customers.json": 1}
    assert hook.api_calls == {"total": 3, "GET": 2, "POST": 1}


def test_customer_lookup_is_exact_and_never_fuzzy(hook: MaxioHook, maxio_admin: Any) -> None:
    maxio_admin.seed(
        {
            "customers": [
                customer_input(ACCOUNT_ID + "X").payload()["customer"],
                customer_input("X" + ACCOUNT_ID).payload()["customer"],
            ]
        }
    )
    assert hook.find_customer_by_reference(ACCOUNT_ID) is None
    _, created = hook.get_or_create_customer(customer_input())
    assert created
    assert maxio_admin.state(kind="customers")["count"] == 3
    assert "GET /customers.json" not in routes(maxio_admin)


def test_customer_rejection_carries_maxios_messages(hook: MaxioHook, maxio_admin: Any) -> None:
    with pytest.raises(RecordRejected) as caught:
        hook.get_or_create_customer(customer_input(email="not-an-email", first_name=" "))
    error = caught.value
    assert error.key == ACCOUNT_ID
    assert error.code == VALIDATION_CODE
    assert error.reason == "First name: cannot be blank.; Email address: is invalid."
    assert "not-an-email" not in str(error)
    assert maxio_admin.state(kind="customers")["count"] == 0


def test_customer_after_lost_response_is_created_once(
    hook: MaxioHook, maxio_admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    maxio_admin.faults([{"method": "POST", "path": "^/customers.json$", "lost_response": True}])
    with caplog.at_level(logging.DEBUG):
        customer, created = hook.get_or_create_customer(customer_input())
    assert created
    assert "the create's answer was lost" in caplog.text
    assert DEFAULT_API_KEY not in caplog.text
    assert "ap@acme.example" not in caplog.text
    assert maxio_admin.state(kind="customers")["records"][0]["id"] == customer.id
    assert routes(maxio_admin) == {"GET /customers/lookup.json": 2, "POST /customers.json": 1}


def test_customer_input_keeps_personal_data_out_of_repr() -> None:
    text = repr(customer_input(phone="555-555-5555"))
    assert ACCOUNT_ID in text
    assert "ap@acme.example" not in text
    assert "555-555-5555" not in text


# ---- price points --------------------------------------------------------------------------------


def test_price_point_is_created_with_sorted_volume_tiers(hook: MaxioHook, maxio_admin: Any) -> None:
    point, created = hook.get_or_create_price_point(COMPONENT, price_point_input())
    assert created
    assert point.pricing_scheme == "volume"
    assert point.prices == (
        PriceTier(1, 100, Decimal("2.00")),
        PriceTier(101, 1000, Decimal("1.50")),
        PriceTier(1001, None, Decimal("0.75")),
    )
    again, created_again = hook.get_or_create_price_point(COMPONENT, price_point_input())
    assert (again, created_again) == (point, False)
    assert hook.find_price_point(COMPONENT, "no-such-handle") is None


def test_price_point_after_lost_response_is_created_once(hook: MaxioHook, maxio_admin: Any) -> None:
    maxio_admin.faults([{"method": "POST", "path": "/price_points.json$", "lost_response": True}])
    point, created = hook.get_or_create_price_point(COMPONENT, price_point_input())
    assert created
    stored = maxio_admin.state(kind="price_points", handle="sf-006-2544422")
    assert stored["count"] == 1
    assert stored["records"][0]["id"] == point.id
    calls = routes(maxio_admin)
    assert calls["POST /components/{component_id}/price_points.json"] == 1
    assert calls["GET /components/{component_id}/price_points/{price_point_id}.json"] == 2


def test_a_price_point_post_is_never_resent_after_a_dropped_connection(
    hook: MaxioHook, maxio_admin: Any
) -> None:
    maxio_admin.faults([{"method": "POST", "path": "/price_points.json$", "drop": True}])
    with pytest.raises(RetriableApiError, match="may have been processed"):
        hook.get_or_create_price_point(COMPONENT, price_point_input())
    assert maxio_admin.state(kind="price_points", handle="sf-006-2544422")["count"] == 0
    assert routes(maxio_admin)["POST /components/{component_id}/price_points.json"] == 1


def test_a_price_point_post_answered_503_is_not_retried_but_rechecked(
    hook: MaxioHook, maxio_admin: Any
) -> None:
    maxio_admin.faults(
        [{"method": "POST", "path": "/price_points.json$", "status": 503, "body": {"errors": []}}]
    )
    with pytest.raises(RetriableApiError, match="HTTP 503"):
        hook.get_or_create_price_point(COMPONENT, price_point_input())
    calls = routes(maxio_admin)
    assert calls["POST /components/{component_id}/price_points.json"] == 1
    assert calls["GET /components/{component_id}/price_points/{price_point_id}.json"] == 2


def test_a_throttled_post_is_retried_since_it_was_not_processed(hook: MaxioHook, maxio_admin: Any) -> None:
    maxio_admin.faults([{"method": "POST", "path": "/price_points.json$", "daily_limit_exhausted": True}])
    _, created = hook.get_or_create_price_point(COMPONENT, price_point_input())
    assert created
    assert routes(maxio_admin)["POST /components/{component_id}/price_points.json"] == 2
    assert maxio_admin.state(kind="price_points", handle="sf-006-2544422")["count"] == 1


def test_a_price_point_422_surfaces_maxios_message(hook: MaxioHook, maxio_admin: Any) -> None:
    hook.create_price_point(COMPONENT, price_point_input("first"))
    clash = PricePointInput.volume(name="Acme_first", handle="second", rates=RATES)
    with pytest.raises(RecordRejected) as caught:
        hook.get_or_create_price_point(COMPONENT, clash)
    assert caught.value.key == "second"
    assert caught.value.code == VALIDATION_CODE
    assert caught.value.field == "name"
    assert caught.value.reason == "Name must be unique"


def test_a_gap_between_brackets_is_refused_by_maxio(hook: MaxioHook) -> None:
    gap = PricePointInput(
        name="gap",
        handle="gap",
        prices=(PriceTier(1, 10, Decimal(1)), PriceTier(12, None, Decimal(1))),
    )
    with pytest.raises(RecordRejected, match="must start at 11"):
        hook.create_price_point(COMPONENT, gap)


def test_an_existing_handle_with_other_prices_is_a_conflict(hook: MaxioHook) -> None:
    hook.create_price_point(COMPONENT, price_point_input())
    with pytest.raises(RecordRejected) as caught:
        hook.get_or_create_price_point(COMPONENT, price_point_input(rates=[(1, "9.99")]))
    assert caught.value.code == "PRICE_POINT_CONFLICT"


# ---- subscriptions -------------------------------------------------------------------------------


@pytest.fixture
def subscription_input(hook: MaxioHook) -> SubscriptionInput:
    hook.get_or_create_customer(customer_input())
    point, _ = hook.get_or_create_price_point(COMPONENT, price_point_input())
    return SubscriptionInput(
        reference="006000000000001AAA",
        product_handle="monthly-usage",
        customer_reference=ACCOUNT_ID,
        components=(SubscriptionComponent(COMPONENT, point.id),),
    )


def test_subscription_after_lost_response_is_created_once(
    hook: MaxioHook, maxio_admin: Any, subscription_input: SubscriptionInput
) -> None:
    maxio_admin.reset_calls()
    maxio_admin.faults([{"method": "POST", "path": "^/subscriptions.json$", "lost_response": True}])
    subscription, created = hook.get_or_create_subscription(subscription_input)
    assert created
    assert subscription.reference == "006000000000001AAA"
    assert subscription.customer_reference == ACCOUNT_ID
    assert subscription.product_handle == "monthly-usage"
    stored = maxio_admin.state(kind="subscriptions")
    assert stored["count"] == 1
    assert (
        stored["records"][0]["components"][0]["price_point_id"]
        == subscription_input.components[0].price_point_id
    )

    again, created_again = hook.get_or_create_subscription(subscription_input)
    assert (again.id, created_again) == (subscription.id, False)
    assert routes(maxio_admin) == {"GET /subscriptions/lookup.json": 3, "POST /subscriptions.json": 1}
    assert [s.id for s in hook.list_customer_subscriptions(subscription.customer_id)] == [subscription.id]


def test_subscription_rejection_lists_maxios_messages(
    hook: MaxioHook, subscription_input: SubscriptionInput
) -> None:
    wrong = SubscriptionInput(
        reference="006000000000002AAA",
        product_handle="no-such-product",
        customer_reference=ACCOUNT_ID,
        components=(SubscriptionComponent(2544424, subscription_input.components[0].price_point_id),),
    )
    with pytest.raises(RecordRejected) as caught:
        hook.get_or_create_subscription(wrong)
    assert caught.value.key == "006000000000002AAA"
    assert caught.value.field is None
    assert "Product: no product with handle 'no-such-product' could be found." in caught.value.reason
    assert "does not belong to component 2544424" in caught.value.reason


def test_subscription_reference_of_another_customer_is_a_conflict(
    hook: MaxioHook, subscription_input: SubscriptionInput
) -> None:
    hook.create_subscription(subscription_input)
    hook.get_or_create_customer(customer_input("001OTHER"))
    other = SubscriptionInput(
        reference=subscription_input.reference, product_handle="monthly-usage", customer_reference="001OTHER"
    )
    with pytest.raises(RecordRejected) as caught:
        hook.get_or_create_subscription(other)
    assert caught.value.code == "SUBSCRIPTION_CONFLICT"


def test_subscription_input_needs_exactly_one_customer_key() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SubscriptionInput(reference="r", product_handle="p")
    with pytest.raises(ValueError, match="exactly one"):
        SubscriptionInput(reference="r", product_handle="p", customer_id=1, customer_reference="a")


# ---- pure helpers --------------------------------------------------------------------------------


def test_volume_tiers_sorts_and_opens_the_last_bracket() -> None:
    assert volume_tiers([(101, "1.5"), (1, 2), (1001, Decimal("0.75"))]) == [
        {"starting_quantity": 1, "ending_quantity": 100, "unit_price": "2"},
        {"starting_quantity": 101, "ending_quantity": 1000, "unit_price": "1.5"},
        {"starting_quantity": 1001, "ending_quantity": None, "unit_price": "0.75"},
    ]
    # Salesforce LowerBound is a decimal field: 1.0 is accepted as 1.
    assert volume_tiers([(1.0, 3)]) == [{"starting_quantity": 1, "ending_quantity": None, "unit_price": "3"}]


@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ([], "at least one rate"),
        ([(1, 2), (50, 1), (50, 0.5)], "lower bound 50 appears more than once"),
        ([(1, 2), (10, "-0.01")], "price '-0.01' for lower bound 10 is negative"),
        ([(0, 1)], "below 1"),
        ([(1.5, 1)], "not a whole quantity"),
        ([(1, "abc")], "is not a number"),
        ([(1, float("nan"))], "is not a number"),
    ],
    ids=["empty", "duplicate", "negative", "zero", "fraction", "text", "nan"],
)
def test_volume_tiers_rejects_bad_rates_clearly(rates: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        volume_tiers(rates)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.integers(min_value=1, max_value=10**7),
        st.decimals(min_value=0, max_value=10**6, places=4, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=25,
    ),
    st.randoms(use_true_random=False),
)
def test_volume_tiers_are_sorted_contiguous_and_open_ended(rates: dict[int, Decimal], rnd: Any) -> None:
    shuffled = list(rates.items())
    rnd.shuffle(shuffled)
    tiers = volume_tiers(shuffled)
    bounds = sorted(rates)
    assert [t["starting_quantity"] for t in tiers] == bounds
    assert tiers[-1]["ending_quantity"] is None
    for tier, following in itertools.pairwise(tiers):
        assert tier["ending_quantity"] == following["starting_quantity"] - 1
    assert [Decimal(t["unit_price"]) for t in tiers] == [rates[b] for b in bounds]


def test_maxio_error_messages_reads_both_envelopes() -> None:
    assert maxio_error_messages({"errors": ["A: cannot be blank.", "B"]}) == (
        ["A: cannot be blank.", "B"],
        None,
    )
    assert maxio_error_messages({"errors": {"handle": ["Handle must be unique"]}}) == (
        ["Handle must be unique"],
        "handle",
    )
    assert maxio_error_messages({"errors": {"customer": "can't be blank", "prices": ["Price 1: bad"]}}) == (
        ["customer: can't be blank", "prices: Price 1: bad"],
        None,
    )
    assert maxio_error_messages({"errors": {"pricing_scheme": ["Pricing scheme must be one of: x"]}})[0] == [
        "Pricing scheme must be one of: x"
    ]
    assert maxio_error_messages("oops") == ([], None)


def test_make_handle_is_deterministic_valid_and_case_aware() -> None:
    upper, lower = (
        make_handle("sf", "0060a00000AbCdE", 2544422),
        make_handle("sf", "0060a00000abcde", 2544422),
    )
    assert upper == make_handle("sf", "0060a00000AbCdE", 2544422)
    assert upper != lower
    assert upper.startswith("sf-0060a00000abcde-2544422-")
    for handle in (upper, make_handle("Ünïcode / stuff!"), make_handle("", max_length=12)):
        assert HANDLE_RE.match(handle), handle
    assert len(make_handle("x" * 500)) == 100
