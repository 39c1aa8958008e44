"""In-memory state of the Maxio Core emulator and the Django REST Framework rules it mimics.

Shapes follow api-contracts.md section 6.4 and tap-saasoptics' schemas: ``{count, next,
previous, results}`` pages, ``modified__gte/lte`` filters, ``Authorization: Token``. Errors
are DRF's: ``{"detail": "..."}`` for auth, 404 and throttling, ``{"field": ["..."]}`` for
validation. As in django-filter, query parameters that are not filters are ignored.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from sandbox.emulator import AdminError, EmulatorBackend

DEFAULT_TOKEN = "sandbox-maxio-core-token"
TEXT_MAX = 255
TEXT_FIELDS = (
    "text_field1",
    "text_field2",
    "text_field3",
    "notes",
    "email",
    "lead_source",
    "channel",
    "number",
)
NUMBER_FIELDS = ("number_field1", "number_field2")
#: Fields DRF lists as read-only on contracts: sent values are silently ignored.
READ_ONLY_FIELDS = frozenset({"id", "modified", "customer", "entry_date", "sf_id", "qb_job_id"})
WRITABLE_FIELDS = frozenset({*TEXT_FIELDS, *NUMBER_FIELDS, "register", "is_job"})
FILTERS = {
    "customers": ("number", "sf_id", "crm_id", "is_active"),
    "contracts": ("customer", "customer__number", "register", "number"),
    "registers": ("name",),
}


class ApiError(Exception):
    """Answer with ``status`` and a DRF-style JSON body."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found() -> ApiError:
    """DRF's 404."""
    return ApiError(404, {"detail": "Not found."})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _parse_datetime(name: str, raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ApiError(400, {name: ["Enter a valid date/time."]}) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class CoreConfig:
    """Knobs set through ``POST /_sandbox/config``."""

    token: str = DEFAULT_TOKEN
    page_size: int = 100
    max_page_size: int = 1000
    read_only_fields: list[str] = field(default_factory=list)

    def apply(self, knobs: dict[str, Any]) -> None:
        """Validate and set knobs."""
        known = {"token", "page_size", "max_page_size", "read_only_fields"}
        unknown = set(knobs) - known
        if unknown:
            raise AdminError(f"unknown maxio_core config knobs: {sorted(unknown)}; known: {sorted(known)}")
        if "token" in knobs:
            if not isinstance(knobs["token"], str) or not knobs["token"]:
                raise AdminError("token must be a non-empty string")
            self.token = knobs["token"]
        for name in ("page_size", "max_page_size"):
            if name in knobs:
                size = knobs[name]
                if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= 1000:
                    raise AdminError(f"{name} must be an integer from 1 to 1000")
                setattr(self, name, size)
        if "read_only_fields" in knobs:
            names = knobs["read_only_fields"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise AdminError("read_only_fields must be a list of field names")
            self.read_only_fields = list(names)

    def as_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "token": self.token,
            "page_size": self.page_size,
            "max_page_size": self.max_page_size,
            "read_only_fields": self.read_only_fields,
        }


@dataclass
class Data:
    """Everything the emulator stores."""

    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    registers: dict[int, dict[str, Any]] = field(default_factory=dict)
    contracts: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_ids: dict[str, int] = field(
        default_factory=lambda: {"customers": 7001, "registers": 11, "contracts": 17001}
    )

    def new_id(self, kind: str, wanted: Any = None) -> int:
        """A fresh id, or ``wanted`` when a seed gives one."""
        table: dict[int, Any] = getattr(self, kind)
        if wanted is None:
            wanted = self.next_ids[kind]
        if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1 or wanted in table:
            raise AdminError(f"{kind} id {wanted!r} is not a new positive integer")
        self.next_ids[kind] = max(self.next_ids[kind], wanted + 1)
        return wanted


class MaxioCoreBackend(EmulatorBackend):
    """The emulator's state, its API operations and its admin hooks."""

    name = "maxio_core"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.config = CoreConfig()
        self.data = Data()

    # ---- admin ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything."""
        with self.lock:
            self.config = CoreConfig()
            self.data = Data()

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load ``registers``, ``customers`` and ``contracts`` (in that order); all or nothing."""
        kinds = ("registers", "customers", "contracts")
        unknown = set(body) - set(kinds)
        if unknown:
            raise AdminError(f"unknown seed keys: {sorted(unknown)}; known: {list(kinds)}")
        batches = [(kind, body.get(kind) or []) for kind in kinds]
        for kind, records in batches:
            if not isinstance(records, list) or not all(isinstance(raw, dict) for raw in records):
                raise AdminError(f"seed {kind} must be a list of objects")
        with self.lock:
            snapshot = copy.deepcopy(self.data)
            ids: dict[str, list[int]] = {}
            adders = {
                "registers": self._add_register,
                "customers": self._add_customer,
                "contracts": self._add_contract,
            }
            try:
                for kind, records in batches:
                    for raw in records:
                        ids.setdefault(kind, []).append(adders[kind](dict(raw))["id"])
            except AdminError:
                self.data = snapshot
                raise
            return {"ids": ids}

    def _add_register(self, raw: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(raw.get("name"), str) or not raw["name"]:
            raise AdminError("a register needs a name")
        register = {
            "id": self.data.new_id("registers", raw.get("id")),
            "name": raw["name"],
            "currency_code": raw.get("currency_code", "USD"),
            "generated_invoice_number_prefix": raw.get("generated_invoice_number_prefix"),
            "default_qb_ar_account": None,
            "modified": _now(),
        }
        self.data.registers[register["id"]] = register
        return register

    def _add_customer(self, raw: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(raw.get("number"), str) or not raw["number"]:
            raise AdminError("a customer needs a number (the Salesforce account id)")
        customer: dict[str, Any] = {
            "id": self.data.new_id("customers", raw.get("id")),
            "number": raw["number"],
            "name": raw.get("name") or raw["number"],
            "email": raw.get("email"),
            "is_active": bool(raw.get("is_active", True)),
            "parent": raw.get("parent"),
        }
        for name in ("crm_id", "sf_id", "qb_id", "recurly_id", "stripe_id", "text_field1", "text_field2"):
            customer[name] = raw.get(name)
        customer.update(text_field3=raw.get("text_field3"), number_field1=None, number_field2=None)
        customer["modified"] = _now()
        self.data.customers[customer["id"]] = customer
        return customer

    def _lookup_one(self, table: dict[int, dict[str, Any]], key: str, value: Any, what: str) -> int:
        matches = [record["id"] for record in table.values() if record[key] == value]
        if len(matches) != 1:
            raise AdminError(f"{what} {key}={value!r} matches {len(matches)} records; give the id")
        return matches[0]

    def _add_contract(self, raw: dict[str, Any]) -> dict[str, Any]:
        customer = raw.get("customer")
        if customer is None and raw.get("customer_number"):
            customer = self._lookup_one(self.data.customers, "number", raw["customer_number"], "customer")
        if customer not in self.data.customers:
            raise AdminError(f"contract customer {customer!r} does not exist")
        register = raw.get("register")
        if register is None and raw.get("register_name"):
            register = self._lookup_one(self.data.registers, "name", raw["register_name"], "register")
        if register is not None and register not in self.data.registers:
            raise AdminError(f"contract register {register!r} does not exist")
        contract_id = self.data.new_id("contracts", raw.get("id"))
        contract: dict[str, Any] = {
            "id": contract_id,
            "customer": customer,
            "register": register,
            "number": raw.get("number") or f"C-{contract_id}",
            "email": raw.get("email"),
            "entry_date": raw.get("entry_date") or _now(),
            "is_job": bool(raw.get("is_job", False)),
            "lead_source": raw.get("lead_source"),
            "lead_date": None,
            "channel": raw.get("channel"),
            "notes": raw.get("notes"),
            "sf_id": raw.get("sf_id"),
            "qb_job_id": None,
            "text_field1": raw.get("text_field1"),
            "text_field2": raw.get("text_field2"),
            "text_field3": raw.get("text_field3"),
            "number_field1": raw.get("number_field1"),
            "number_field2": raw.get("number_field2"),
            "unbalanced_revenue_exception": False,
            "modified": _now(),
        }
        self.data.contracts[contract_id] = contract
        return contract

    def state(self, params: dict[str, str]) -> Any:
        """``?kind=customers|registers|contracts`` -> records; without: counts."""
        with self.lock:
            kind = params.get("kind")
            if not kind:
                return {"counts": {name: len(getattr(self.data, name)) for name in FILTERS}}
            if kind not in FILTERS:
                raise AdminError(f"unknown state kind {kind!r}; known: {sorted(FILTERS)}")
            records = [dict(r) for r in getattr(self.data, kind).values()]
            return {"kind": kind, "count": len(records), "records": records}

    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set knobs: ``token``, ``page_size``, ``max_page_size``, ``read_only_fields``."""
        with self.lock:
            self.config.apply(knobs)
            return self.config.as_dict()

    def daily_limit_response(self) -> tuple[int, Any, dict[str, str]]:
        """DRF throttling: 429 with ``Retry-After`` (api-contracts 6.4: 429 possible)."""
        return (
            429,
            {"detail": "Request was throttled. Expected available in 60 seconds."},
            {"Retry-After": "60"},
        )

    # ---- API ----------------------------------------------------------------------------------

    def authenticate(self, header: str | None) -> None:
        """DRF TokenAuthentication: ``Authorization: Token <key>``."""
        scheme, _, key = (header or "").partition(" ")
        if scheme.lower() != "token":
            raise ApiError(
                401,
                {"detail": "Authentication credentials were not provided."},
                {"WWW-Authenticate": "Token"},
            )
        if key.strip() != self.config.token:
            raise ApiError(401, {"detail": "Invalid token."}, {"WWW-Authenticate": "Token"})

    def _filtered(self, kind: str, params: dict[str, str]) -> list[dict[str, Any]]:
        rows = sorted(getattr(self.data, kind).values(), key=lambda r: r["id"])
        for name in FILTERS[kind]:
            if name not in params:
                continue
            wanted = params[name]
            if name == "customer__number":
                ids = {c["id"] for c in self.data.customers.values() if c["number"] == wanted}
                rows = [r for r in rows if r["customer"] in ids]
            else:
                rows = [r for r in rows if _as_query_text(r[name]) == wanted]
        for name, keep in (("modified__gte", lambda a, b: a >= b), ("modified__lte", lambda a, b: a <= b)):
            if name in params:
                bound = _parse_datetime(name, params[name])
                rows = [r for r in rows if keep(_parse_datetime("modified", r["modified"]), bound)]
        return rows

    def list(self, kind: str, params: dict[str, str], url: str) -> dict[str, Any]:
        """One DRF page of ``kind``, filtered."""
        with self.lock:
            rows = self._filtered(kind, params)
            try:
                page = int(params.get("page", 1))
                # DRF's PageNumberPagination caps a client's page_size at max_page_size.
                size = min(
                    max(int(params.get("page_size", self.config.page_size)), 1), self.config.max_page_size
                )
            except ValueError as exc:
                raise ApiError(404, {"detail": "Invalid page."}) from exc
            pages = max((len(rows) + size - 1) // size, 1)
            if not 1 <= page <= pages:
                raise ApiError(404, {"detail": "Invalid page."})

            def link(number: int) -> str | None:
                if not 1 <= number <= pages:
                    return None
                query = {k: v for k, v in params.items() if k != "page"} | {"page": str(number)}
                return f"{url}?{urlencode(query)}"

            return {
                "count": len(rows),
                "next": link(page + 1),
                "previous": link(page - 1),
                "results": [dict(r) for r in rows[(page - 1) * size : page * size]],
            }

    def get(self, kind: str, record_id: str) -> dict[str, Any]:
        """One record by id."""
        with self.lock:
            found = getattr(self.data, kind).get(int(record_id)) if record_id.isdigit() else None
            if found is None:
                raise not_found()
            return dict(found)

    def patch_contract(self, contract_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /contracts/{id}/``: partial update; read-only fields are ignored, unknown ones refused."""
        with self.lock:
            contract = self.data.contracts.get(int(contract_id)) if contract_id.isdigit() else None
            if contract is None:
                raise not_found()
            if not isinstance(body, dict):
                got = type(body).__name__
                raise ApiError(
                    400, {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {got}."]}
                )
            ignored = READ_ONLY_FIELDS | set(self.config.read_only_fields)
            errors: dict[str, list[str]] = {}
            changes: dict[str, Any] = {}
            for name, value in body.items():
                if name in ignored:
                    continue
                if name not in WRITABLE_FIELDS:
                    errors[name] = ["Unknown field."]
                    continue
                try:
                    changes[name] = self._clean(name, value)
                except ValueError as exc:
                    errors[name] = [str(exc)]
            if errors:
                raise ApiError(400, errors)
            if changes:
                contract.update(changes, modified=_now())
            return dict(contract)

    def _clean(self, name: str, value: Any) -> Any:
        """One writable value, coerced as DRF's serializer fields do; ValueError with DRF's text."""
        if value is None:
            return None
        if name in TEXT_FIELDS:
            if isinstance(value, bool | dict | list):
                raise ValueError("Not a valid string.")
            text = str(value)
            if len(text) > TEXT_MAX:
                raise ValueError(f"Ensure this field has no more than {TEXT_MAX} characters.")
            return text
        if name in NUMBER_FIELDS:
            try:
                number = Decimal("NaN" if isinstance(value, bool) else str(value))
            except InvalidOperation as exc:
                raise ValueError("A valid number is required.") from exc
            if not number.is_finite():
                raise ValueError("A valid number is required.")
            return float(number)
        if name == "is_job":
            if not isinstance(value, bool):
                raise ValueError("Must be a valid boolean.")
            return value
        if not isinstance(value, int) or isinstance(value, bool) or value not in self.data.registers:
            raise ValueError(f'Invalid pk "{value}" - object does not exist.')
        return value


def _as_query_text(value: Any) -> str:
    """How a stored value compares with a query-string filter value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
