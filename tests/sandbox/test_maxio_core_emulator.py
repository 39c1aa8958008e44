"""The Maxio Core emulator over real HTTP: token auth, DRF pages and filters, contract PATCH."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.maxio_core.store import DEFAULT_TOKEN
from sandbox.testing import Sandbox, start_sandbox

ACCOUNT = "0010a00001Qa6gPAAR"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["maxio_core"], tmp_dir=tmp_path_factory.mktemp("core")) as running:
        yield running


@pytest.fixture
def admin(sandbox: Sandbox) -> Any:
    client = sandbox.admin("maxio_core")
    client.reset()
    client.seed(
        {
            "registers": [{"id": 1, "name": "CASHe Billing"}, {"id": 2, "name": "Services"}],
            "customers": [
                {"id": 10, "number": ACCOUNT, "name": "Acme"},
                {"id": 11, "number": ACCOUNT + "X", "name": "Acme Two"},
            ],
            "contracts": [
                {"id": 100, "customer_number": ACCOUNT, "register_name": "CASHe Billing"},
                {"id": 101, "customer": 10, "register": 2},
                {"id": 102, "customer": 11, "register": 1},
            ],
        }
    )
    return client


@pytest.fixture
def api(sandbox: Sandbox, admin: Any) -> Iterator[requests.Session]:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {DEFAULT_TOKEN}"
    base = sandbox.url("maxio_core") + "/api/v1.0"
    original = session.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        return original(method, url if "://" in url else base + url, *args, timeout=10, **kwargs)

    session.request = request  # type: ignore[method-assign]
    yield session
    session.close()


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authentication credentials were not provided."),
        (f"Bearer {DEFAULT_TOKEN}", "Authentication credentials were not provided."),
        ("Token wrong", "Invalid token."),
    ],
)
def test_token_auth_as_drf_answers_it(sandbox: Sandbox, admin: Any, header: str | None, detail: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.get(f"{sandbox.url('maxio_core')}/api/v1.0/contracts/", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["WWW-Authenticate"] == "Token"


def test_contracts_filter_by_customer_and_customer_number(api: requests.Session) -> None:
    by_customer = api.get("/contracts/", params={"customer": 10}).json()
    assert by_customer["count"] == 2
    assert [c["id"] for c in by_customer["results"]] == [100, 101]
    by_number = api.get("/contracts/", params={"customer__number": ACCOUNT}).json()
    assert [c["id"] for c in by_number["results"]] == [100, 101]
    by_register = api.get("/contracts/", params={"customer": 10, "register": 1}).json()
    assert [c["id"] for c in by_register["results"]] == [100]


def test_customer_number_filter_is_exact_and_unknown_filters_are_ignored(api: requests.Session) -> None:
    exact = api.get("/customers/", params={"number": ACCOUNT}).json()
    assert [c["id"] for c in exact["results"]] == [10]
    # django-filter ignores parameters that are not filters: everything comes back.
    ignored = api.get("/customers/", params={"number__startswith": ACCOUNT}).json()
    assert ignored["count"] == 2


def test_pages_link_to_each_other(api: requests.Session, admin: Any) -> None:
    admin.config(max_page_size=2)
    first = api.get("/contracts/", params={"page_size": 50}).json()
    assert first["count"] == 3
    assert len(first["results"]) == 2
    assert first["previous"] is None
    second = api.get(first["next"]).json()
    assert [c["id"] for c in second["results"]] == [102]
    assert second["next"] is None
    assert api.get("/contracts/", params={"page": 9}).json() == {"detail": "Invalid page."}


def test_modified_filter_validates_its_value(api: requests.Session) -> None:
    response = api.get("/contracts/", params={"modified__gte": "yesterday"})
    assert response.status_code == 400
    assert response.json() == {"modified__gte": ["Enter a valid date/time."]}
    assert api.get("/contracts/", params={"modified__gte": "2000-01-01T00:00:00Z"}).json()["count"] == 3


def test_patch_text_field2_answers_the_updated_contract(api: requests.Session, admin: Any) -> None:
    before = api.get("/contracts/100/").json()
    response = api.patch("/contracts/100/", json={"text_field2": "80000001"})
    assert response.status_code == 200
    body = response.json()
    assert body["text_field2"] == "80000001"
    assert body["modified"] > before["modified"]
    stored = next(c for c in admin.state(kind="contracts")["records"] if c["id"] == 100)
    assert stored["text_field2"] == "80000001"


def test_patch_coerces_numbers_to_text(api: requests.Session) -> None:
    assert api.patch("/contracts/100/", json={"text_field2": 80000001}).json()["text_field2"] == "80000001"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"text_field9": "x"}, {"text_field9": ["Unknown field."]}),
        ({"text_field2": "9" * 256}, {"text_field2": ["Ensure this field has no more than 255 characters."]}),
        ({"text_field2": True}, {"text_field2": ["Not a valid string."]}),
        ({"register": 77}, {"register": ['Invalid pk "77" - object does not exist.']}),
        (["text_field2"], {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}),
    ],
    ids=["unknown", "too-long", "bool", "bad-register", "not-a-dict"],
)
def test_patch_validation_answers_400(api: requests.Session, body: Any, errors: dict[str, Any]) -> None:
    response = api.patch("/contracts/100/", json=body)
    assert response.status_code == 400
    assert response.json() == errors
    assert api.get("/contracts/100/").json()["text_field2"] is None


def test_read_only_fields_are_ignored_silently(api: requests.Session, admin: Any) -> None:
    admin.config(read_only_fields=["text_field2"])
    response = api.patch("/contracts/100/", json={"text_field2": "80000001", "id": 5})
    assert response.status_code == 200
    assert response.json()["text_field2"] is None
    assert response.json()["id"] == 100


def test_unknown_contract_and_path_without_slash_answer_404(api: requests.Session) -> None:
    assert api.get("/contracts/999/").json() == {"detail": "Not found."}
    assert api.patch("/contracts/999/", json={"text_field2": "1"}).status_code == 404
    missing_slash = api.get("/contracts/100")
    assert missing_slash.status_code == 404
    assert missing_slash.json() == {"detail": "Not found."}


def test_seed_rejects_a_contract_of_an_unknown_customer_and_keeps_nothing(admin: Any) -> None:
    with pytest.raises(Exception, match="does not exist"):
        admin.seed({"registers": [{"name": "New"}], "contracts": [{"customer": 999}]})
    assert admin.state()["counts"] == {"customers": 2, "contracts": 3, "registers": 2}


def test_patch_calls_are_counted(api: requests.Session, admin: Any) -> None:
    admin.reset_calls()
    api.patch("/contracts/100/", json={"text_field2": "1"})
    api.get("/contracts/", params={"customer": 10})
    assert admin.calls()["by_route"] == {
        "PATCH /api/v1.0/contracts/{contract_id}/": 1,
        "GET /api/v1.0/contracts/": 1,
    }
