"""The Maxio Advanced Billing emulator over real HTTP: auth, validation, 422 forms, lookups."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.maxio.store import DEFAULT_API_KEY
from sandbox.testing import Sandbox, start_sandbox

COMPONENT = 2544422
OTHER_COMPONENT = 2544424


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["maxio"], tmp_dir=tmp_path_factory.mktemp("maxio")) as running:
        yield running


@pytest.fixture
def admin(sandbox: Sandbox) -> Any:
    client = sandbox.admin("maxio")
    client.reset()
    return client


@pytest.fixture
def api(sandbox: Sandbox, admin: Any) -> Iterator[requests.Session]:
    session = requests.Session()
    session.auth = (DEFAULT_API_KEY, "x")
    base = sandbox.url("maxio")
    original = session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return original(method, base + url, *args, timeout=10, **kwargs)

    session.request = request  # type: ignore[method-assign]
    yield session
    session.close()


def customer(reference: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "first_name": "Accounts",
        "last_name": "Payable",
        "email": "ap@example.com",
        "reference": reference,
    }
    return {"customer": body | overrides}


def volume(name: str, handle: str, prices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if prices is None:
        prices = [
            {"starting_quantity": 1, "ending_quantity": 100, "unit_price": "2.5"},
            {"starting_quantity": 101, "ending_quantity": None, "unit_price": 1},
        ]
    return {"price_point": {"name": name, "handle": handle, "pricing_scheme": "volume", "prices": prices}}


# ---- auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [None, ("wrong-key", "x"), (DEFAULT_API_KEY, "not-x")],
    ids=["none", "wrong-key", "wrong-password"],
)
def test_api_refuses_requests_without_the_key_and_x(sandbox: Sandbox, admin: Any, auth: Any) -> None:
    response = requests.get(f"{sandbox.url('maxio')}/customers.json", auth=auth, timeout=10)
    assert response.status_code == 401
    assert response.text == "HTTP Basic: Access denied.\n"
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_configured_key_is_required_and_admin_api_needs_none(
    sandbox: Sandbox, admin: Any, api: requests.Session
) -> None:
    assert api.get("/site.json").json()["site"]["subdomain"] == "sandbox"
    admin.config(api_key="rotated-key")
    assert api.get("/site.json").status_code == 401
    api.auth = ("rotated-key", "x")
    assert api.get("/site.json").status_code == 200
    assert requests.get(f"{sandbox.url('maxio')}/_sandbox/health", timeout=10).status_code == 200


# ---- customers -----------------------------------------------------------------------------------


def test_customer_create_answers_201_with_the_stored_customer(api: requests.Session, admin: Any) -> None:
    response = api.post("/customers.json", json=customer("001A", organization="Acme", country="US"))
    assert response.status_code == 201
    body = response.json()["customer"]
    assert body["reference"] == "001A"
    assert body["organization"] == "Acme"
    assert body["country_name"] == "United States"
    assert api.get(f"/customers/{body['id']}.json").json()["customer"]["id"] == body["id"]
    assert admin.state(kind="customers")["count"] == 1


def test_customer_validation_uses_the_list_form(api: requests.Session) -> None:
    response = api.post(
        "/customers.json", json={"customer": {"first_name": " ", "email": "not-an-email", "reference": "R1"}}
    )
    assert response.status_code == 422
    assert response.json() == {
        "errors": [
            "First name: cannot be blank.",
            "Last name: cannot be blank.",
            "Email address: is invalid.",
        ]
    }


def test_customer_reference_is_unique(api: requests.Session, admin: Any) -> None:
    assert api.post("/customers.json", json=customer("001A")).status_code == 201
    response = api.post("/customers.json", json=customer("001A", email="other@example.com"))
    assert response.status_code == 422
    assert response.json() == {"errors": ["Reference: must be unique."]}
    assert admin.state(kind="customers")["count"] == 1


def test_customer_without_its_wrapper_uses_the_map_form(api: requests.Session) -> None:
    response = api.post("/customers.json", json={"first_name": "A"})
    assert response.status_code == 422
    assert response.json() == {"errors": {"customer": "can't be blank"}}


def test_lookup_is_exact_while_q_is_fuzzy(api: requests.Session) -> None:
    for reference in ("001A", "001AB", "X001A"):
        assert api.post("/customers.json", json=customer(reference)).status_code == 201

    exact = api.get("/customers/lookup.json", params={"reference": "001A"})
    assert exact.status_code == 200
    assert exact.json()["customer"]["reference"] == "001A"

    fuzzy = api.get("/customers.json", params={"q": "001a", "page": 1, "per_page": 50}).json()
    assert sorted(row["customer"]["reference"] for row in fuzzy) == ["001A", "001AB", "X001A"]
    # The original took the first row of q=<AccountId>&per_page=1: not necessarily its own.
    first = api.get("/customers.json", params={"q": "001A", "per_page": 1}).json()
    assert len(first) == 1

    missing = api.get("/customers/lookup.json", params={"reference": "001"})
    assert missing.status_code == 404
    assert missing.content == b""


def test_customer_search_pages(api: requests.Session) -> None:
    for number in range(5):
        api.post("/customers.json", json=customer(f"REF-{number}"))
    page_two = api.get("/customers.json", params={"per_page": 2, "page": 2}).json()
    assert [row["customer"]["reference"] for row in page_two] == ["REF-2", "REF-3"]
    assert api.get("/customers.json", params={"per_page": 2, "page": 4}).json() == []


# ---- components and price points ----------------------------------------------------------------


def test_catalogue_has_the_seed_components_in_one_family(api: requests.Session) -> None:
    for component_id in (2544422, 2544424, 2554766, 2544421, 2544427, 2544425):
        body = api.get(f"/components/{component_id}.json").json()["component"]
        assert body["product_family_handle"] == "pavillio"
        assert body["kind"] == "metered_component"
    assert api.get("/components/999.json").status_code == 404
    family = api.get("/product_families/handle:pavillio/components.json", params={"per_page": 200}).json()
    assert len(family) == 6


def test_price_point_create_and_read_back_by_handle(api: requests.Session) -> None:
    response = api.post(f"/components/{COMPONENT}/price_points.json", json=volume("Acme_1", "acme-1"))
    assert response.status_code == 201
    point = response.json()["price_point"]
    assert point["pricing_scheme"] == "volume"
    assert [(p["starting_quantity"], p["ending_quantity"], p["unit_price"]) for p in point["prices"]] == [
        (1, 100, "2.5"),
        (101, None, "1.0"),
    ]
    assert point["prices"][0]["formatted_unit_price"] == "$2.50"

    by_handle = api.get(f"/components/{COMPONENT}/price_points/handle:acme-1.json")
    assert by_handle.json()["price_point"]["id"] == point["id"]
    by_id = api.get(f"/components/handle:pavillio-core-billing/price_points/{point['id']}.json")
    assert by_id.json()["price_point"]["handle"] == "acme-1"
    # A price point is found only under its own component.
    assert api.get(f"/components/{OTHER_COMPONENT}/price_points/{point['id']}.json").status_code == 404
    assert api.get(f"/components/{COMPONENT}/price_points/handle:nope.json").status_code == 404


def test_price_point_handle_is_unique_per_component(api: requests.Session) -> None:
    assert (
        api.post(f"/components/{COMPONENT}/price_points.json", json=volume("A", "shared")).status_code == 201
    )
    duplicate = api.post(f"/components/{COMPONENT}/price_points.json", json=volume("B", "shared"))
    assert duplicate.status_code == 422
    assert duplicate.json() == {"errors": {"handle": ["Handle must be unique"]}}
    other = api.post(f"/components/{OTHER_COMPONENT}/price_points.json", json=volume("B", "shared"))
    assert other.status_code == 201


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        (
            [
                {"starting_quantity": 1, "ending_quantity": 10, "unit_price": 1},
                {"starting_quantity": 12, "unit_price": 1},
            ],
            "Prices: the bracket starting at 12 must start at 11 (brackets must be contiguous)",
        ),
        (
            [{"starting_quantity": 1, "ending_quantity": 10, "unit_price": 1}],
            "Prices: the last bracket of a volume price point must have no ending quantity",
        ),
        (
            [{"starting_quantity": 0, "unit_price": 1}],
            "Price 1: starting quantity must be greater than or equal to 1",
        ),
        (
            [{"starting_quantity": 1, "unit_price": "-0.01"}],
            "Price 1: unit price must be greater than or equal to 0",
        ),
        (
            # The original's unsorted SOQL order: 100.. then 1..
            [
                {"starting_quantity": 100, "ending_quantity": 0, "unit_price": 1},
                {"starting_quantity": 1, "unit_price": 2},
            ],
            "Price 1: ending quantity must be greater than or equal to starting quantity",
        ),
        ([], "Prices cannot be blank"),
    ],
    ids=["gap", "closed-last", "start-0", "negative", "unsorted", "empty"],
)
def test_price_point_brackets_are_validated_in_the_map_form(
    api: requests.Session, admin: Any, prices: list[dict[str, Any]], expected: str
) -> None:
    response = api.post(f"/components/{COMPONENT}/price_points.json", json=volume("X", "x", prices))
    assert response.status_code == 422
    assert expected in response.json()["errors"]["prices"]
    assert admin.state(kind="price_points", handle="x")["count"] == 0


def test_price_point_handle_format_and_scheme_are_validated(api: requests.Session) -> None:
    body = volume("X", "Has-Upper")
    body["price_point"]["pricing_scheme"] = "flat"
    errors = api.post(f"/components/{COMPONENT}/price_points.json", json=body).json()["errors"]
    assert errors["handle"][0].startswith("Handle must start with a letter or number")
    assert errors["pricing_scheme"] == ["Pricing scheme must be one of: per_unit, volume, tiered, stairstep"]


def test_price_point_list_pages_and_filters_by_type(api: requests.Session) -> None:
    for number in range(3):
        api.post(f"/components/{COMPONENT}/price_points.json", json=volume(f"P{number}", f"p-{number}"))
    everything = api.get(f"/components/{COMPONENT}/price_points.json").json()["price_points"]
    assert [p["type"] for p in everything] == ["default", "catalog", "catalog", "catalog"]
    page = api.get(f"/components/{COMPONENT}/price_points.json", params={"per_page": 2, "page": 2}).json()
    assert [p["handle"] for p in page["price_points"]] == ["p-1", "p-2"]
    catalog = api.get(f"/components/{COMPONENT}/price_points.json", params={"filter[type]": "catalog"}).json()
    assert len(catalog["price_points"]) == 3


def test_bulk_price_points_are_all_or_nothing_in_the_list_form(api: requests.Session, admin: Any) -> None:
    good = volume("Good", "good")["price_point"]
    clash = volume("Clash", "good")["price_point"]
    response = api.post(
        f"/components/{COMPONENT}/price_points/bulk.json", json={"price_points": [good, clash]}
    )
    assert response.status_code == 422
    assert response.json() == {"errors": ["Price point 2: Handle must be unique"]}
    assert admin.state(kind="price_points", handle="good")["count"] == 0
    created = api.post(f"/components/{COMPONENT}/price_points/bulk.json", json={"price_points": [good]})
    assert created.status_code == 201
    assert [p["handle"] for p in created.json()["price_points"]] == ["good"]


# ---- subscriptions -------------------------------------------------------------------------------


def make_subscription(reference: str, price_point: Any, **overrides: Any) -> dict[str, Any]:
    body = {
        "product_handle": "monthly-usage",
        "customer_reference": "001A",
        "reference": reference,
        "components": [{"component_id": COMPONENT, "enabled": True, "price_point_id": price_point}],
    }
    return {"subscription": body | overrides}


@pytest.fixture
def priced(api: requests.Session) -> int:
    assert api.post("/customers.json", json=customer("001A")).status_code == 201
    return api.post(f"/components/{COMPONENT}/price_points.json", json=volume("A", "a")).json()[
        "price_point"
    ]["id"]


def test_subscription_create_and_lookup_by_reference(api: requests.Session, priced: int) -> None:
    response = api.post("/subscriptions.json", json=make_subscription("opp-1", priced))
    assert response.status_code == 201
    subscription = response.json()["subscription"]
    assert subscription["state"] == "active"
    assert subscription["customer"]["reference"] == "001A"
    assert subscription["product"]["handle"] == "monthly-usage"

    found = api.get("/subscriptions/lookup.json", params={"reference": "opp-1"}).json()["subscription"]
    assert found["id"] == subscription["id"]
    assert api.get("/subscriptions/lookup.json", params={"reference": "opp"}).status_code == 404
    listed = api.get(f"/customers/{subscription['customer']['id']}/subscriptions.json").json()
    assert [row["subscription"]["id"] for row in listed] == [subscription["id"]]
    components = api.get(f"/subscriptions/{subscription['id']}/components.json").json()
    assert [(c["component"]["component_id"], c["component"]["price_point_id"]) for c in components] == [
        (COMPONENT, priced)
    ]


def test_subscription_price_point_by_handle(api: requests.Session, priced: int) -> None:
    response = api.post("/subscriptions.json", json=make_subscription("opp-1", "handle:a"))
    assert response.status_code == 201


def test_subscription_validation_uses_the_list_form(api: requests.Session, priced: int) -> None:
    assert api.post("/subscriptions.json", json=make_subscription("opp-1", priced)).status_code == 201
    bad = make_subscription(
        "opp-1",
        priced,
        product_handle="no-such-product",
        customer_reference="nobody",
        components=[
            {"component_id": OTHER_COMPONENT, "enabled": True, "price_point_id": priced},
            {"component_id": 999, "enabled": True},
        ],
    )
    response = api.post("/subscriptions.json", json=bad)
    assert response.status_code == 422
    assert response.json() == {
        "errors": [
            "Product: no product with handle 'no-such-product' could be found.",
            "Customer: no customer with reference 'nobody' could be found.",
            f"Component 1: price point '{priced}' does not belong to component {OTHER_COMPONENT}.",
            "Component 2: component '999' could not be found.",
            "Reference: must be unique.",
        ]
    }


def test_subscription_needs_a_payment_method_for_a_priced_product(
    api: requests.Session, admin: Any, priced: int
) -> None:
    admin.seed({"products": [{"handle": "flat-fee", "price_in_cents": 29900}]})
    response = api.post(
        "/subscriptions.json", json=make_subscription("opp-2", priced, product_handle="flat-fee")
    )
    assert response.json() == {"errors": ["No payment method was on file for the $299.00 balance"]}
    invoiced = make_subscription(
        "opp-2", priced, product_handle="flat-fee", payment_collection_method="remittance"
    )
    assert api.post("/subscriptions.json", json=invoiced).status_code == 201


# ---- admin: seed, state, calls, faults -----------------------------------------------------------


def test_seed_is_atomic_and_reports_ids(admin: Any) -> None:
    with pytest.raises(Exception, match="customers\\[1\\] rejected"):
        admin.seed({"customers": [customer("S1")["customer"], customer("S1")["customer"]]})
    assert admin.state()["counts"]["customers"] == 0
    ids = admin.seed(
        {
            "customers": [customer("S1")["customer"] | {"id": 42}],
            "price_points": [volume("Seeded", "seeded")["price_point"] | {"component_id": COMPONENT}],
            "subscriptions": [
                make_subscription("seeded-sub", "handle:seeded", customer_reference="S1")["subscription"]
            ],
        }
    )["ids"]
    assert ids["customers"] == [42]
    assert admin.state(kind="subscriptions")["records"][0]["components"][0]["component_id"] == COMPONENT


def test_calls_are_counted_by_route_template(api: requests.Session, admin: Any) -> None:
    api.get("/customers/lookup.json", params={"reference": "x"})
    api.get(f"/components/{COMPONENT}/price_points/handle:x.json")
    assert admin.calls()["by_route"] == {
        "GET /customers/lookup.json": 1,
        "GET /components/{component_id}/price_points/{price_point_id}.json": 1,
    }


def test_lost_response_applies_the_write_but_drops_the_answer(api: requests.Session, admin: Any) -> None:
    admin.faults([{"method": "POST", "path": "^/customers.json$", "lost_response": True}])
    with pytest.raises(requests.ConnectionError):
        api.post("/customers.json", json=customer("LOST"))
    assert api.get("/customers/lookup.json", params={"reference": "LOST"}).status_code == 200


def test_daily_limit_fault_answers_429_with_retry_after(api: requests.Session, admin: Any) -> None:
    admin.faults([{"path": "/customers", "daily_limit_exhausted": True}])
    response = api.get("/customers.json")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "60"
