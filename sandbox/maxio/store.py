"""In-memory state of the Maxio Advanced Billing emulator and the rules its API enforces.

Error envelopes follow the official SDK's per-endpoint types (api-contracts.md section 6.3):
customers and subscriptions answer 422 ``{"errors": ["..."]}`` (list form), single price
points 422 ``{"errors": {"field": ["..."]}}`` (map form), bulk price points the list form.
Not-found answers are a bare 404 with an empty body.
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox.emulator import AdminError, EmulatorBackend
from sandbox.maxio import catalogue
from sandbox.maxio.pricing import Bracket, format_decimal, format_money, validate_price_point

DEFAULT_API_KEY = "sandbox-maxio-api-key"
SUBDOMAIN = "sandbox"
PER_PAGE_MAX = 200

CUSTOMER_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "cc_emails",
    "organization",
    "reference",
    "address",
    "address_2",
    "city",
    "state",
    "zip",
    "country",
    "phone",
    "locale",
    "vat_number",
    "tax_exempt_reason",
    "salesforce_id",
)
REQUIRED_CUSTOMER_FIELDS = (
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("email", "Email address"),
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
COMPONENT_KINDS = (
    "metered_component",
    "quantity_based_component",
    "on_off_component",
    "prepaid_usage_component",
    "event_based_component",
)
COLLECTION_METHODS = ("automatic", "remittance", "prepaid", "invoice")
SUBSCRIPTION_STATES = ("active",)


class ApiError(Exception):
    """Answer the call with ``status`` and ``body`` (None = empty body)."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_found() -> ApiError:
    """Maxio's plain 404."""
    return ApiError(404)


def list_errors(messages: list[str]) -> ApiError:
    """422 in the list form ``{"errors": [...]}``."""
    return ApiError(422, {"errors": messages})


def map_errors(errors: dict[str, Any]) -> ApiError:
    """422 in the map form ``{"errors": {"field": [...]}}``."""
    return ApiError(422, {"errors": errors})


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _ts(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _add_interval(moment: datetime, interval: int, unit: str) -> datetime:
    if unit == "day":
        return moment + timedelta(days=interval)
    month_index = moment.month - 1 + interval
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable: every month has 28 days")


def _page(page: str | None, per_page: str | None, default: int) -> tuple[int, int]:
    """1-based page and page size; per_page over the maximum is lowered to it, as Maxio does."""
    try:
        number = max(int(page or 1), 1)
    except ValueError:
        number = 1
    try:
        size = int(per_page or default)
    except ValueError:
        size = default
    return number, min(max(size, 1), PER_PAGE_MAX)


@dataclass
class MaxioConfig:
    """Knobs set through ``POST /_sandbox/config``."""

    api_key: str = DEFAULT_API_KEY

    def apply(self, knobs: dict[str, Any]) -> None:
        """Validate and set knobs."""
        unknown = set(knobs) - {"api_key"}
        if unknown:
            raise AdminError(f"unknown maxio config knobs: {sorted(unknown)}; known: ['api_key']")
        if "api_key" in knobs:
            if not isinstance(knobs["api_key"], str) or not knobs["api_key"]:
                raise AdminError("api_key must be a non-empty string")
            self.api_key = knobs["api_key"]


@dataclass
class Data:
    """Everything the emulator stores (deep-copied to make seeds atomic)."""

    product_families: dict[int, dict[str, Any]] = field(default_factory=dict)
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    components: dict[int, dict[str, Any]] = field(default_factory=dict)
    price_points: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_ids: dict[str, int] = field(
        default_factory=lambda: {
            "product_families": 2_400_101,
            "products": 6_500_101,
            "components": 2_600_001,
            "price_points": 3_000_001,
            "prices": 9_000_001,
            "customers": 60_000_001,
            "subscriptions": 80_000_001,
        }
    )

    def new_id(self, kind: str, wanted: Any = None) -> int:
        """A fresh id, or ``wanted`` when a seed gives one."""
        if wanted is not None:
            if not isinstance(wanted, int) or isinstance(wanted, bool) or wanted < 1:
                raise ApiError(422, {"errors": [f"id must be a positive integer, got {wanted!r}"]})
            if wanted in getattr(self, kind):
                raise ApiError(422, {"errors": [f"{kind} id {wanted} already exists"]})
            self.next_ids[kind] = max(self.next_ids[kind], wanted + 1)
            return wanted
        value = self.next_ids[kind]
        self.next_ids[kind] += 1
        return value


class MaxioBackend(EmulatorBackend):
    """The emulator's state, its API operations and its admin hooks."""

    name = "maxio"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.config = MaxioConfig()
        self.data = Data()
        self.reset()

    # ---- admin ------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything and load the default catalogue."""
        with self.lock:
            self.config = MaxioConfig()
            self.data = Data()
            self._add_family(dict(catalogue.PRODUCT_FAMILY))
            for product in catalogue.PRODUCTS:
                self._add_product(dict(product))
            for component in catalogue.COMPONENTS:
                self._add_component(dict(component))

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load catalogue and records; all or nothing."""
        kinds = ("product_families", "products", "components", "customers", "price_points", "subscriptions")
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
            for kind, records in batches:
                for index, raw in enumerate(records):
                    try:
                        ids.setdefault(kind, []).append(self._seed_one(kind, dict(raw)))
                    except ApiError as exc:
                        self.data = snapshot
                        details = {"kind": kind, "index": index, "status": exc.status, "body": exc.body}
                        raise AdminError(f"seed {kind}[{index}] rejected", details=details) from exc
            return {"ids": ids}

    def _seed_one(self, kind: str, raw: dict[str, Any]) -> int:
        if kind == "product_families":
            return self._add_family(raw)["id"]
        if kind == "products":
            return self._add_product(raw)["id"]
        if kind == "components":
            return self._add_component(raw)["id"]
        if kind == "customers":
            return self._create_customer(raw, wanted_id=raw.get("id"))["id"]
        if kind == "price_points":
            component = self._component(str(raw.pop("component_id", "")))
            point, errors = self._build_price_point(component, raw)
            if errors:
                raise map_errors(errors)
            return self._store_price_point(point)["id"]
        return self.create_subscription({"subscription": raw}, wanted_id=raw.pop("id", None))["subscription"][
            "id"
        ]

    def state(self, params: dict[str, str]) -> Any:
        """``?kind=customers|price_points|subscriptions|components|products|product_families``."""
        with self.lock:
            kind = params.get("kind")
            if not kind:
                names = (
                    "product_families",
                    "products",
                    "components",
                    "price_points",
                    "customers",
                    "subscriptions",
                )
                return {"counts": {name: len(getattr(self.data, name)) for name in names}}
            views = {
                "customers": (self.data.customers, self._customer_view),
                "price_points": (self.data.price_points, self._price_point_view),
                "subscriptions": (self.data.subscriptions, self._subscription_state_view),
                "components": (self.data.components, self._component_view),
                "products": (self.data.products, self._product_view),
                "product_families": (self.data.product_families, dict),
            }
            if kind not in views:
                raise AdminError(f"unknown state kind {kind!r}; known: {sorted(views)}")
            table, view = views[kind]
            records = [view(record) for record in table.values()]
            for key in ("component_id", "reference", "handle"):
                if key in params:
                    records = [r for r in records if str(r.get(key)) == params[key]]
            return {"kind": kind, "count": len(records), "records": records}

    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set knobs: ``api_key``."""
        with self.lock:
            self.config.apply(knobs)
            return {"api_key": self.config.api_key}

    def daily_limit_response(self) -> tuple[int, Any, dict[str, str]]:
        """Maxio publishes no daily quota; its abuse throttle answers 429 (api-contracts 6.3)."""
        return 429, {"errors": ["API rate limit exceeded. Please retry later."]}, {"Retry-After": "60"}

    # ---- catalogue ----------------------------------------------------------------------------

    def _add_family(self, raw: dict[str, Any]) -> dict[str, Any]:
        handle = raw.get("handle")
        if not isinstance(handle, str) or not handle:
            raise ApiError(422, {"errors": ["product family handle is required"]})
        family = {
            "id": self.data.new_id("product_families", raw.get("id")),
            "handle": handle,
            "name": raw.get("name") or handle,
            "description": raw.get("description"),
            "accounting_code": None,
            "created_at": _ts(_now()),
            "updated_at": _ts(_now()),
        }
        self.data.product_families[family["id"]] = family
        return family

    def _family(self, raw: dict[str, Any]) -> dict[str, Any]:
        if raw.get("product_family_id") is not None:
            family = self.data.product_families.get(raw["product_family_id"])
        elif raw.get("product_family_handle"):
            family = next(
                (
                    f
                    for f in self.data.product_families.values()
                    if f["handle"] == raw["product_family_handle"]
                ),
                None,
            )
        else:
            family = self.data.product_families.get(catalogue.PRODUCT_FAMILY["id"])
        if family is None:
            raise ApiError(422, {"errors": ["product family not found"]})
        return family

    def _add_product(self, raw: dict[str, Any]) -> dict[str, Any]:
        handle = raw.get("handle")
        if not isinstance(handle, str) or not handle:
            raise ApiError(422, {"errors": ["product handle is required"]})
        if any(p["handle"] == handle for p in self.data.products.values()):
            raise ApiError(422, {"errors": [f"product handle {handle!r} already exists"]})
        family = self._family(raw)
        unit = raw.get("interval_unit", "month")
        if unit not in ("day", "month"):
            raise ApiError(422, {"errors": ["interval_unit must be day or month"]})
        product = {
            "id": self.data.new_id("products", raw.get("id")),
            "handle": handle,
            "name": raw.get("name") or handle,
            "description": raw.get("description"),
            "price_in_cents": int(raw.get("price_in_cents", 0)),
            "interval": int(raw.get("interval", 1)),
            "interval_unit": unit,
            "require_credit_card": bool(raw.get("require_credit_card", False)),
            "product_family_id": family["id"],
            "default_product_price_point_id": self.data.new_id("price_points"),
            "archived_at": None,
            "created_at": _ts(_now()),
            "updated_at": _ts(_now()),
        }
        self.data.products[product["id"]] = product
        return product

    def _add_component(self, raw: dict[str, Any]) -> dict[str, Any]:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(422, {"errors": ["component name is required"]})
        kind = raw.get("kind", "metered_component")
        if kind not in COMPONENT_KINDS:
            raise ApiError(422, {"errors": [f"component kind must be one of {list(COMPONENT_KINDS)}"]})
        family = self._family(raw)
        handle = raw.get("handle")
        if handle and any(c["handle"] == handle for c in self.data.components.values()):
            raise ApiError(422, {"errors": [f"component handle {handle!r} already exists"]})
        component = {
            "id": self.data.new_id("components", raw.get("id")),
            "name": name,
            "handle": handle,
            "kind": kind,
            "unit_name": raw.get("unit_name", "unit"),
            "product_family_id": family["id"],
            "product_family_handle": family["handle"],
            "taxable": False,
            "recurring": kind != "metered_component",
            "archived": False,
            "created_at": _ts(_now()),
            "updated_at": _ts(_now()),
        }
        self.data.components[component["id"]] = component
        default, errors = self._build_price_point(
            component,
            {
                "name": "Original",
                "pricing_scheme": raw.get("pricing_scheme", "per_unit"),
                "prices": raw.get("prices")
                or [{"starting_quantity": 1, "unit_price": raw.get("unit_price", "1.0")}],
            },
            kind="default",
        )
        if errors:
            del self.data.components[component["id"]]
            raise map_errors(errors)
        component["default_price_point_id"] = self._store_price_point(default)["id"]
        return component

    def _component(self, ref: str) -> dict[str, Any]:
        """A component by id or ``handle:<handle>``; 404 when unknown."""
        if ref.startswith("handle:"):
            handle = ref[len("handle:") :]
            found = next((c for c in self.data.components.values() if c["handle"] == handle), None)
        else:
            found = self.data.components.get(int(ref)) if ref.isdigit() else None
        if found is None:
            raise not_found()
        return found

    def _component_view(self, component: dict[str, Any]) -> dict[str, Any]:
        default = self.data.price_points[component["default_price_point_id"]]
        points = [p for p in self.data.price_points.values() if p["component_id"] == component["id"]]
        first = default["brackets"][0]
        return {
            **component,
            "pricing_scheme": default["pricing_scheme"],
            "unit_price": format_decimal(first.unit_price),
            "default_price_point_name": default["name"],
            "prices": self._price_point_view(default)["prices"],
            "price_point_count": len(points),
            "price_points_url": f"/components/{component['id']}/price_points",
        }

    def _product_view(self, product: dict[str, Any]) -> dict[str, Any]:
        family = self.data.product_families[product["product_family_id"]]
        view = {k: v for k, v in product.items() if k != "product_family_id"}
        view["product_family"] = {"id": family["id"], "handle": family["handle"], "name": family["name"]}
        return view

    # ---- reads --------------------------------------------------------------------------------

    def site(self) -> dict[str, Any]:
        """``GET /site.json``."""
        return {"site": {"id": 1, "name": "crm_sync sandbox", "subdomain": SUBDOMAIN, "currency": "USD"}}

    def get_component(self, ref: str) -> dict[str, Any]:
        """``GET /components/{id}.json``."""
        with self.lock:
            return {"component": self._component_view(self._component(ref))}

    def family_components(
        self, family_ref: str, page: str | None, per_page: str | None
    ) -> list[dict[str, Any]]:
        """``GET /product_families/{id}/components.json``."""
        with self.lock:
            if family_ref.startswith("handle:"):
                family = self._family({"product_family_handle": family_ref[len("handle:") :]})
            elif family_ref.isdigit() and int(family_ref) in self.data.product_families:
                family = self.data.product_families[int(family_ref)]
            else:
                raise not_found()
            number, size = _page(page, per_page, 20)
            rows = [c for c in self.data.components.values() if c["product_family_id"] == family["id"]]
            return [{"component": self._component_view(c)} for c in rows[(number - 1) * size : number * size]]

    # ---- customers ----------------------------------------------------------------------------

    def _customer_view(self, customer: dict[str, Any]) -> dict[str, Any]:
        return dict(customer)

    def _validate_customer(
        self, raw: dict[str, Any], *, prefix: str = ""
    ) -> tuple[dict[str, Any], list[str]]:
        errors: list[str] = []
        clean: dict[str, Any] = {}
        for name in CUSTOMER_FIELDS:
            value = raw.get(name)
            if isinstance(value, bool | dict | list):
                errors.append(f"{prefix}{name.replace('_', ' ').capitalize()}: is invalid.")
                value = None
            elif isinstance(value, int | float):
                value = str(value)
            elif isinstance(value, str):
                value = value.strip() or None
            clean[name] = value
        for name, label in REQUIRED_CUSTOMER_FIELDS:
            if not clean[name]:
                errors.append(f"{prefix}{label}: cannot be blank.")
        if clean["email"] and not EMAIL_RE.match(clean["email"]):
            errors.append(f"{prefix}Email address: is invalid.")
        if clean["reference"] and any(
            c["reference"] == clean["reference"] for c in self.data.customers.values()
        ):
            errors.append(f"{prefix}Reference: must be unique.")
        tax_exempt = raw.get("tax_exempt", False)
        if not isinstance(tax_exempt, bool):
            errors.append(f"{prefix}Tax exempt: is invalid.")
        clean["tax_exempt"] = bool(tax_exempt)
        parent_id = raw.get("parent_id")
        if parent_id is not None and parent_id not in self.data.customers:
            errors.append(f"{prefix}Parent: could not be found.")
        clean["parent_id"] = parent_id
        return clean, errors

    def _create_customer(self, raw: dict[str, Any], *, wanted_id: Any = None) -> dict[str, Any]:
        clean, errors = self._validate_customer(raw)
        if errors:
            raise list_errors(errors)
        return self._store_customer(clean, wanted_id)

    def _store_customer(self, clean: dict[str, Any], wanted_id: Any = None) -> dict[str, Any]:
        moment = _ts(_now())
        customer = {
            "id": self.data.new_id("customers", wanted_id),
            **clean,
            "state_name": None,
            "country_name": "United States" if clean.get("country") == "US" else None,
            "verified": False,
            "portal_customer_created_at": None,
            "portal_invite_last_sent_at": None,
            "portal_invite_last_accepted_at": None,
            "default_subscription_group_uid": None,
            "created_at": moment,
            "updated_at": moment,
        }
        self.data.customers[customer["id"]] = customer
        return customer

    def create_customer(self, body: Any) -> dict[str, Any]:
        """``POST /customers.json``."""
        raw = body.get("customer") if isinstance(body, dict) else None
        if not isinstance(raw, dict):
            raise map_errors({"customer": "can't be blank"})
        with self.lock:
            return {"customer": self._customer_view(self._create_customer(raw))}

    def search_customers(self, q: str | None, page: str | None, per_page: str | None) -> list[dict[str, Any]]:
        """``GET /customers.json?q=``: a fuzzy, case-insensitive substring search across fields."""
        with self.lock:
            rows = list(self.data.customers.values())
            if q:
                needle = q.lower()
                fields = ("email", "reference", "organization", "first_name", "last_name", "id")
                rows = [c for c in rows if any(needle in str(c.get(f) or "").lower() for f in fields)]
            number, size = _page(page, per_page, 50)
            return [{"customer": self._customer_view(c)} for c in rows[(number - 1) * size : number * size]]

    def lookup_customer(self, reference: str | None) -> dict[str, Any]:
        """``GET /customers/lookup.json?reference=``: exact match or 404."""
        with self.lock:
            found = next(
                (c for c in self.data.customers.values() if reference and c["reference"] == reference), None
            )
            if found is None:
                raise not_found()
            return {"customer": self._customer_view(found)}

    def get_customer(self, customer_id: str) -> dict[str, Any]:
        """``GET /customers/{id}.json``."""
        with self.lock:
            return {"customer": self._customer_view(self._customer(customer_id))}

    def _customer(self, customer_id: str) -> dict[str, Any]:
        found = self.data.customers.get(int(customer_id)) if customer_id.isdigit() else None
        if found is None:
            raise not_found()
        return found

    def customer_subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        """``GET /customers/{id}/subscriptions.json``."""
        with self.lock:
            customer = self._customer(customer_id)
            return [
                {"subscription": self._subscription_view(s)}
                for s in self.data.subscriptions.values()
                if s["customer_id"] == customer["id"]
            ]

    # ---- price points -------------------------------------------------------------------------

    def _build_price_point(
        self, component: dict[str, Any], raw: Any, *, kind: str = "catalog"
    ) -> tuple[dict[str, Any], dict[str, list[str]]]:
        clean, errors = validate_price_point(raw)
        siblings = [p for p in self.data.price_points.values() if p["component_id"] == component["id"]]
        if clean.get("handle") and any(p["handle"] == clean["handle"] for p in siblings):
            errors.setdefault("handle", []).append("Handle must be unique")
        if clean.get("name") and any(p["name"] == clean["name"] for p in siblings):
            errors.setdefault("name", []).append("Name must be unique")
        clean["component_id"] = component["id"]
        clean["type"] = kind
        return clean, errors

    def _store_price_point(self, clean: dict[str, Any]) -> dict[str, Any]:
        moment = _ts(_now())
        point = {
            "id": self.data.new_id("price_points"),
            **clean,
            "default": clean["type"] == "default",
            "archived_at": None,
            "created_at": moment,
            "updated_at": moment,
            "price_ids": [self.data.new_id("prices") for _ in clean["brackets"]],
        }
        self.data.price_points[point["id"]] = point
        return point

    def _price_point_view(self, point: dict[str, Any]) -> dict[str, Any]:
        brackets: list[Bracket] = point["brackets"]
        prices = [
            {
                "id": price_id,
                "component_id": point["component_id"],
                "starting_quantity": bracket.starting_quantity,
                "ending_quantity": bracket.ending_quantity,
                "unit_price": format_decimal(bracket.unit_price),
                "price_point_id": point["id"],
                "formatted_unit_price": format_money(bracket.unit_price),
                "segment_id": None,
            }
            for price_id, bracket in zip(point["price_ids"], brackets, strict=True)
        ]
        hidden = {"brackets", "price_ids"}
        return {k: v for k, v in point.items() if k not in hidden} | {
            "prices": prices,
            "subscription_id": None,
        }

    def create_price_point(self, component_ref: str, body: Any) -> dict[str, Any]:
        """``POST /components/{id}/price_points.json`` (422 in the map form)."""
        with self.lock:
            component = self._component(component_ref)
            raw = body.get("price_point") if isinstance(body, dict) else None
            point, errors = self._build_price_point(component, raw)
            if errors:
                raise map_errors(errors)
            return {"price_point": self._price_point_view(self._store_price_point(point))}

    def bulk_create_price_points(self, component_ref: str, body: Any) -> dict[str, Any]:
        """``POST /components/{id}/price_points/bulk.json``: all or nothing, 422 in the list form."""
        with self.lock:
            component = self._component(component_ref)
            raws = body.get("price_points") if isinstance(body, dict) else None
            if not isinstance(raws, list) or not raws:
                raise list_errors(["Price points cannot be blank"])
            snapshot = copy.deepcopy(self.data)
            stored, messages = [], []
            for number, raw in enumerate(raws, start=1):
                if isinstance(raw, dict):
                    # The SDK documents both flags as unsupported in bulk: they are not applied.
                    raw = {
                        k: v for k, v in raw.items() if k not in {"tax_included", "use_site_exchange_rate"}
                    }
                point, errors = self._build_price_point(component, raw)
                if errors:
                    messages += [f"Price point {number}: {m}" for ms in errors.values() for m in ms]
                    continue
                stored.append(self._store_price_point(point))
            if messages:
                self.data = snapshot
                raise list_errors(messages)
            return {"price_points": [self._price_point_view(p) for p in stored]}

    def list_price_points(
        self, component_ref: str, page: str | None, per_page: str | None, types: str | None
    ) -> dict[str, Any]:
        """``GET /components/{id}/price_points.json``."""
        with self.lock:
            component = self._component(component_ref)
            rows = [
                p
                for p in self.data.price_points.values()
                if p["component_id"] == component["id"] and p["archived_at"] is None
            ]
            if types:
                wanted = {t.strip() for t in types.split(",")}
                rows = [p for p in rows if p["type"] in wanted]
            number, size = _page(page, per_page, 20)
            return {
                "price_points": [self._price_point_view(p) for p in rows[(number - 1) * size : number * size]]
            }

    def _price_point(self, component: dict[str, Any], ref: str) -> dict[str, Any]:
        if ref.startswith("handle:"):
            handle = ref[len("handle:") :]
            found = next(
                (
                    p
                    for p in self.data.price_points.values()
                    if p["component_id"] == component["id"] and handle and p["handle"] == handle
                ),
                None,
            )
        else:
            found = self.data.price_points.get(int(ref)) if ref.isdigit() else None
            if found is not None and found["component_id"] != component["id"]:
                found = None
        if found is None:
            raise not_found()
        return found

    def get_price_point(self, component_ref: str, point_ref: str) -> dict[str, Any]:
        """``GET /components/{id}/price_points/{id or handle:x}.json``."""
        with self.lock:
            component = self._component(component_ref)
            return {"price_point": self._price_point_view(self._price_point(component, point_ref))}

    # ---- subscriptions ------------------------------------------------------------------------

    def _resolve_subscription_customer(
        self, raw: dict[str, Any], errors: list[str]
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The existing customer, or clean attributes of one to create."""
        if raw.get("customer_id") is not None:
            customer = (
                self.data.customers.get(raw["customer_id"]) if isinstance(raw["customer_id"], int) else None
            )
            if customer is None:
                errors.append("Customer: could not be found.")
            return customer, None
        if raw.get("customer_reference"):
            reference = raw["customer_reference"]
            customer = next((c for c in self.data.customers.values() if c["reference"] == reference), None)
            if customer is None:
                errors.append(f"Customer: no customer with reference '{reference}' could be found.")
            return customer, None
        if isinstance(raw.get("customer_attributes"), dict):
            clean, customer_errors = self._validate_customer(raw["customer_attributes"], prefix="Customer ")
            errors.extend(customer_errors)
            return None, clean
        errors.append("Customer: a customer_id, customer_reference or customer_attributes must be given.")
        return None, None

    def _resolve_product(self, raw: dict[str, Any], errors: list[str]) -> dict[str, Any] | None:
        if raw.get("product_id") is not None:
            product = (
                self.data.products.get(raw["product_id"]) if isinstance(raw["product_id"], int) else None
            )
            if product is None:
                errors.append(f"Product: no product with id '{raw['product_id']}' could be found.")
            return product
        if raw.get("product_handle"):
            handle = raw["product_handle"]
            product = next((p for p in self.data.products.values() if p["handle"] == handle), None)
            if product is None:
                errors.append(f"Product: no product with handle '{handle}' could be found.")
            return product
        errors.append("Product: a product_handle or product_id must be given.")
        return None

    def _resolve_components(
        self, raws: Any, product: dict[str, Any] | None, errors: list[str]
    ) -> list[dict[str, Any]]:
        if raws is None:
            return []
        if not isinstance(raws, list):
            errors.append("Components: must be a list.")
            return []
        resolved: list[dict[str, Any]] = []
        seen: set[int] = set()
        for number, raw in enumerate(raws, start=1):
            if not isinstance(raw, dict) or raw.get("component_id") in (None, ""):
                errors.append(f"Component {number}: component_id cannot be blank.")
                continue
            try:
                component = self._component(str(raw["component_id"]))
            except ApiError:
                errors.append(f"Component {number}: component '{raw['component_id']}' could not be found.")
                continue
            if component["id"] in seen:
                errors.append(f"Component {number}: component {component['id']} is given more than once.")
                continue
            seen.add(component["id"])
            if product is not None and component["product_family_id"] != product["product_family_id"]:
                errors.append(
                    f"Component {number}: component {component['id']} does not belong to the product's "
                    "product family."
                )
                continue
            point_ref = raw.get("price_point_id")
            if point_ref in (None, ""):
                point = self.data.price_points[component["default_price_point_id"]]
            else:
                try:
                    point = self._price_point(component, str(point_ref))
                except ApiError:
                    errors.append(
                        f"Component {number}: price point '{point_ref}' does not belong to component "
                        f"{component['id']}."
                    )
                    continue
            enabled = raw.get("enabled", True)
            if not isinstance(enabled, bool):
                errors.append(f"Component {number}: enabled must be true or false.")
                continue
            resolved.append(
                {
                    "component_id": component["id"],
                    "price_point_id": point["id"],
                    "enabled": enabled,
                    "allocated_quantity": raw.get("allocated_quantity"),
                    "unit_balance": raw.get("unit_balance"),
                }
            )
        return resolved

    def create_subscription(self, body: Any, *, wanted_id: Any = None) -> dict[str, Any]:
        """``POST /subscriptions.json`` (422 in the list form)."""
        raw = body.get("subscription") if isinstance(body, dict) else None
        if not isinstance(raw, dict):
            raise list_errors(["Subscription: cannot be blank."])
        with self.lock:
            errors: list[str] = []
            product = self._resolve_product(raw, errors)
            customer, new_customer = self._resolve_subscription_customer(raw, errors)
            components = self._resolve_components(raw.get("components"), product, errors)
            reference = raw.get("reference")
            if reference is not None and not isinstance(reference, str):
                errors.append("Reference: is invalid.")
            elif reference and any(s["reference"] == reference for s in self.data.subscriptions.values()):
                errors.append("Reference: must be unique.")
            method = raw.get("payment_collection_method", "automatic")
            if method not in COLLECTION_METHODS:
                errors.append(f"Payment collection method: must be one of {', '.join(COLLECTION_METHODS)}.")
            elif (
                product is not None
                and product["price_in_cents"] > 0
                and method == "automatic"
                and not raw.get("payment_profile_id")
                and not raw.get("credit_card_attributes")
            ):
                amount = format_money(Decimal(product["price_in_cents"]) / 100)
                errors.append(f"No payment method was on file for the {amount} balance")
            if errors:
                raise list_errors(errors)
            assert product is not None
            if customer is None:
                assert new_customer is not None
                customer = self._store_customer(new_customer)
            moment = _now()
            subscription = {
                "id": self.data.new_id("subscriptions", wanted_id),
                "state": "active",
                "reference": reference or None,
                "customer_id": customer["id"],
                "product_id": product["id"],
                "product_price_point_id": product["default_product_price_point_id"],
                "payment_collection_method": method,
                "components": components,
                "current_period_started_at": moment,
                "current_period_ends_at": _add_interval(
                    moment, product["interval"], product["interval_unit"]
                ),
                "created_at": moment,
            }
            self.data.subscriptions[subscription["id"]] = subscription
            return {"subscription": self._subscription_view(subscription)}

    def _subscription_view(self, subscription: dict[str, Any]) -> dict[str, Any]:
        product = self.data.products[subscription["product_id"]]
        customer = self.data.customers[subscription["customer_id"]]
        created = _ts(subscription["created_at"])
        ends = _ts(subscription["current_period_ends_at"])
        return {
            "id": subscription["id"],
            "state": subscription["state"],
            "balance_in_cents": 0,
            "total_revenue_in_cents": 0,
            "product_price_in_cents": product["price_in_cents"],
            "product_version_number": 1,
            "current_period_started_at": _ts(subscription["current_period_started_at"]),
            "current_period_ends_at": ends,
            "next_assessment_at": ends,
            "activated_at": created,
            "created_at": created,
            "updated_at": created,
            "expires_at": None,
            "cancel_at_end_of_period": False,
            "payment_collection_method": subscription["payment_collection_method"],
            "reference": subscription["reference"],
            "currency": "USD",
            "coupon_codes": [],
            "product_price_point_id": subscription["product_price_point_id"],
            "customer": self._customer_view(customer),
            "product": self._product_view(product),
        }

    def _subscription_state_view(self, subscription: dict[str, Any]) -> dict[str, Any]:
        view = self._subscription_view(subscription)
        view["components"] = [dict(c) for c in subscription["components"]]
        return view

    def lookup_subscription(self, reference: str | None) -> dict[str, Any]:
        """``GET /subscriptions/lookup.json?reference=``: exact match or 404."""
        with self.lock:
            found = next(
                (s for s in self.data.subscriptions.values() if reference and s["reference"] == reference),
                None,
            )
            if found is None:
                raise not_found()
            return {"subscription": self._subscription_view(found)}

    def _subscription(self, subscription_id: str) -> dict[str, Any]:
        found = self.data.subscriptions.get(int(subscription_id)) if subscription_id.isdigit() else None
        if found is None:
            raise not_found()
        return found

    def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        """``GET /subscriptions/{id}.json``."""
        with self.lock:
            return {"subscription": self._subscription_view(self._subscription(subscription_id))}

    def subscription_components(self, subscription_id: str) -> list[dict[str, Any]]:
        """``GET /subscriptions/{id}/components.json``."""
        with self.lock:
            subscription = self._subscription(subscription_id)
            rows = []
            for entry in subscription["components"]:
                component = self.data.components[entry["component_id"]]
                point = self.data.price_points[entry["price_point_id"]]
                rows.append(
                    {
                        "component": {
                            "component_id": component["id"],
                            "subscription_id": subscription["id"],
                            "component_handle": component["handle"],
                            "name": component["name"],
                            "kind": component["kind"],
                            "unit_name": component["unit_name"],
                            "enabled": entry["enabled"],
                            "allocated_quantity": entry["allocated_quantity"],
                            "unit_balance": entry["unit_balance"],
                            "price_point_id": point["id"],
                            "price_point_handle": point["handle"],
                            "price_point_name": point["name"],
                            "price_point_type": point["type"],
                            "pricing_scheme": point["pricing_scheme"],
                        }
                    }
                )
            return rows
