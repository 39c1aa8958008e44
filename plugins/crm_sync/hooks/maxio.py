"""MaxioHook: Maxio Advanced Billing customers, price points and subscriptions as typed results.

Maxio has no idempotency keys and no upsert (api-contracts.md section 6.3), and the vendor SDK
hard-codes its hosts, so requests go through the shared HTTP policy, which never resends a
POST that may have reached the server. Every object is therefore created under a deterministic
key (customer ``reference``, price point ``handle``, subscription ``reference``) and the
``get_or_create_*`` verbs look that key up first, and again when a create's answer is lost, so
a retried task or a re-fired trigger never makes a duplicate.

Lookups are exact: ``/customers/lookup.json?reference=``, ``/subscriptions/lookup.json?reference=``
and ``/components/{id}/price_points/handle:{handle}.json``. The fuzzy ``/customers.json?q=``
search the original script used is never called.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import quote

import requests

from crm_sync.exceptions import ConfigurationError, FatalApiError, RecordRejected, RetriableApiError
from crm_sync.hooks.policy_hook import PolicyHook
from crm_sync.http import CONNECT_ERROR, HttpPolicy, PolicySession, raise_for_api_status
from crm_sync.redaction import safe_excerpt

__all__ = [
    "VALIDATION_CODE",
    "Customer",
    "CustomerInput",
    "MaxioHook",
    "MaxioSettings",
    "PricePoint",
    "PricePointInput",
    "PriceTier",
    "Subscription",
    "SubscriptionComponent",
    "SubscriptionInput",
    "make_handle",
    "maxio_error_messages",
    "volume_tiers",
]

log = logging.getLogger(__name__)

SYSTEM = "maxio"
#: ``RecordRejected.code`` for a 422: Maxio sends messages, no machine-readable codes.
VALIDATION_CODE = "MAXIO_VALIDATION"
#: Hosts by region (api-contracts.md section 6.1).
REGION_DOMAINS = {"us": "chargify.com", "eu": "ebilling.maxio.com"}

T = TypeVar("T")


# ---- pure helpers --------------------------------------------------------------------------------


def _decimal(value: Any, what: str) -> Decimal:
    try:
        number = Decimal("NaN" if isinstance(value, bool) else str(value).strip())
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite():
        raise ValueError(f"{what} {value!r} is not a number")
    return number


@dataclass(frozen=True)
class PriceTier:
    """One price bracket: ``unit_price`` per unit from ``starting_quantity`` to ``ending_quantity``."""

    starting_quantity: int
    ending_quantity: int | None
    unit_price: Decimal

    def as_json(self) -> dict[str, Any]:
        """The wire form; the price as a string so no float rounding creeps in (Maxio takes both)."""
        return {
            "starting_quantity": self.starting_quantity,
            "ending_quantity": self.ending_quantity,
            "unit_price": format(self.unit_price, "f"),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> PriceTier:
        """Parse one ``prices[]`` entry of a Maxio answer."""
        end = raw.get("ending_quantity")
        return cls(
            starting_quantity=int(raw["starting_quantity"]),
            ending_quantity=None if end in (None, "") else int(end),
            unit_price=_decimal(raw["unit_price"], "unit_price"),
        )


def _volume_brackets(rates: Sequence[tuple[Any, Any]]) -> tuple[PriceTier, ...]:
    if not rates:
        raise ValueError("a volume price point needs at least one rate")
    parsed: list[tuple[int, Decimal]] = []
    for lower, price in rates:
        bound = _decimal(lower, "lower bound")
        if bound != bound.to_integral_value():
            raise ValueError(f"lower bound {lower!r} is not a whole quantity")
        if bound < 1:
            raise ValueError(f"lower bound {lower!r} is below 1; Maxio brackets start at quantity 1")
        unit_price = _decimal(price, "price")
        if unit_price < 0:
            raise ValueError(f"price {price!r} for lower bound {lower!r} is negative")
        parsed.append((int(bound), unit_price))
    parsed.sort(key=lambda rate: rate[0])
    for (bound, _), (next_bound, _) in itertools.pairwise(parsed):
        if bound == next_bound:
            raise ValueError(f"lower bound {bound} appears more than once")
    ends: list[int | None] = [next_bound - 1 for next_bound, _ in parsed[1:]]
    return tuple(
        PriceTier(start, end, price) for (start, price), end in zip(parsed, [*ends, None], strict=True)
    )


def volume_tiers(rates: Sequence[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Build contiguous volume brackets from ``(lower_bound, price)`` rates, in any order.

    Rates are sorted by lower bound; each bracket ends one below the next bound and the last
    one is open-ended (``ending_quantity: None``), as a volume price point requires. The
    original used Salesforce's row order, which gives overlapping brackets when unsorted.

    Raises:
        ValueError: no rates, a duplicate lower bound, a bound that is not a whole number
            >= 1, or a negative or non-numeric price.
    """
    return [tier.as_json() for tier in _volume_brackets(rates)]


def make_handle(*parts: object, max_length: int = 100) -> str:
    """A deterministic Maxio handle: a readable lowercase slug plus 8 hex of the exact parts.

    Handles allow only lowercase letters, digits, ``:``, ``-`` and ``_``; lowercasing alone
    would merge 15-character Salesforce ids that differ only in case, so the digest is taken
    from the parts as given.
    """
    raw = ":".join(str(part) for part in parts)
    digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
    slug = re.sub(r"[^a-z0-9]+", "-", raw.lower()).strip("-")[: max(max_length - 9, 1)].strip("-")
    return f"{slug or 'x'}-{digest}"


def _humanize(name: str) -> str:
    return name.replace("_", " ").strip().lower()


def maxio_error_messages(body: Any) -> tuple[list[str], str | None]:
    """Decode a Maxio error envelope into its messages and, when one field is to blame, its name.

    Handles both forms the API uses (api-contracts.md section 6.3): the list form
    ``{"errors": ["..."]}`` and the map form ``{"errors": {"field": ["..."] or "..."}}``.
    Map messages that do not already name their field are prefixed with it.
    """
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if isinstance(errors, str):
        return [errors], None
    if isinstance(errors, list):
        return [str(message) for message in errors], None
    if isinstance(errors, Mapping):
        messages: list[str] = []
        for name, value in errors.items():
            for message in value if isinstance(value, list) else [value]:
                text = str(message)
                named = text.lower().startswith(_humanize(str(name)))
                messages.append(text if named else f"{name}: {text}")
        return messages, (str(next(iter(errors))) if len(errors) == 1 else None)
    return [], None


# ---- typed inputs and results --------------------------------------------------------------------


@dataclass(frozen=True)
class MaxioSettings:
    """Where and how to call Maxio, read from the connection."""

    base_url: str
    api_key: str = field(repr=False)

    @classmethod
    def from_connection(cls, conn: Any) -> MaxioSettings:
        """Build settings from an Airflow connection.

        ``host`` (+ ``schema`` and ``port``) wins, so the sandbox and proxies work; without
        it the production host is derived from ``extra.subdomain`` and ``extra.region``
        (``us``: ``<subdomain>.chargify.com``, ``eu``: ``<subdomain>.ebilling.maxio.com``).
        """
        extra = conn.extra_dejson or {}
        if not conn.login:
            raise ConfigurationError(f"connection {conn.conn_id!r}: login must hold the Maxio API key")
        if conn.host:
            host = conn.host.rstrip("/")
            if "://" not in host:
                port = f":{conn.port}" if conn.port else ""
                host = f"{conn.schema or 'https'}://{host}{port}"
            return cls(base_url=host, api_key=conn.login)
        subdomain, region = extra.get("subdomain"), str(extra.get("region", "us")).lower()
        if not subdomain or region not in REGION_DOMAINS:
            raise ConfigurationError(
                f"connection {conn.conn_id!r}: set host, or extra.subdomain with extra.region us|eu"
            )
        return cls(base_url=f"https://{subdomain}.{REGION_DOMAINS[region]}", api_key=conn.login)


@dataclass(frozen=True)
class Customer:
    """A Maxio customer (personal fields are not kept)."""

    id: int
    reference: str | None
    organization: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Customer:
        """Parse ``{"customer": {...}}`` or the inner object."""
        raw = body.get("customer", body)
        return cls(id=int(raw["id"]), reference=raw.get("reference"), organization=raw.get("organization"))


@dataclass(frozen=True)
class CustomerInput:
    """A customer to create; ``reference`` (the source system's id) is the idempotency key."""

    reference: str
    first_name: str = field(repr=False)
    last_name: str = field(repr=False)
    email: str = field(repr=False)
    organization: str | None = field(default=None, repr=False)
    address: str | None = field(default=None, repr=False)
    address_2: str | None = field(default=None, repr=False)
    city: str | None = field(default=None, repr=False)
    state: str | None = field(default=None, repr=False)
    zip: str | None = field(default=None, repr=False)
    country: str | None = None
    phone: str | None = field(default=None, repr=False)
    locale: str | None = None

    def __post_init__(self) -> None:
        if not self.reference or not self.reference.strip():
            raise ValueError("a Maxio customer needs a reference (the idempotency key)")

    def payload(self) -> dict[str, Any]:
        """``{"customer": {...}}`` without unset fields."""
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {"customer": {name: value for name, value in fields.items() if value is not None}}


@dataclass(frozen=True)
class PricePoint:
    """A component price point and its brackets."""

    id: int
    component_id: int
    handle: str | None
    name: str
    pricing_scheme: str
    prices: tuple[PriceTier, ...]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PricePoint:
        """Parse ``{"price_point": {...}}`` or the inner object."""
        raw = body.get("price_point", body)
        return cls(
            id=int(raw["id"]),
            component_id=int(raw["component_id"]),
            handle=raw.get("handle"),
            name=str(raw.get("name") or ""),
            pricing_scheme=str(raw.get("pricing_scheme") or ""),
            prices=tuple(PriceTier.from_json(price) for price in raw.get("prices") or []),
        )


@dataclass(frozen=True)
class PricePointInput:
    """A price point to create; ``handle`` (unique per component) is the idempotency key."""

    name: str
    handle: str
    prices: tuple[PriceTier, ...]
    pricing_scheme: str = "volume"
    use_site_exchange_rate: bool = False

    @classmethod
    def volume(cls, *, name: str, handle: str, rates: Sequence[tuple[Any, Any]]) -> PricePointInput:
        """A volume price point from ``(lower_bound, price)`` rates (see :func:`volume_tiers`)."""
        return cls(name=name, handle=handle, prices=_volume_brackets(rates))

    def payload(self) -> dict[str, Any]:
        """``{"price_point": {...}}``."""
        return {
            "price_point": {
                "name": self.name,
                "handle": self.handle,
                "pricing_scheme": self.pricing_scheme,
                "prices": [tier.as_json() for tier in self.prices],
                "use_site_exchange_rate": self.use_site_exchange_rate,
            }
        }


@dataclass(frozen=True)
class Subscription:
    """A Maxio subscription."""

    id: int
    reference: str | None
    state: str
    customer_id: int
    customer_reference: str | None
    product_handle: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Subscription:
        """Parse ``{"subscription": {...}}`` or the inner object."""
        raw = body.get("subscription", body)
        customer = raw.get("customer") or {}
        product = raw.get("product") or {}
        return cls(
            id=int(raw["id"]),
            reference=raw.get("reference"),
            state=str(raw.get("state") or ""),
            customer_id=int(customer.get("id") or raw.get("customer_id")),
            customer_reference=customer.get("reference"),
            product_handle=product.get("handle"),
        )


@dataclass(frozen=True)
class SubscriptionComponent:
    """One component of a new subscription, on a given price point (None: the default one)."""

    component_id: int
    price_point_id: int | None = None
    enabled: bool = True

    def as_json(self) -> dict[str, Any]:
        """The wire form."""
        body: dict[str, Any] = {"component_id": self.component_id, "enabled": self.enabled}
        if self.price_point_id is not None:
            body["price_point_id"] = self.price_point_id
        return body


@dataclass(frozen=True)
class SubscriptionInput:
    """A subscription to create; ``reference`` is the idempotency key.

    Exactly one of ``customer_reference`` and ``customer_id`` names the customer.
    """

    reference: str
    product_handle: str
    components: tuple[SubscriptionComponent, ...] = ()
    customer_reference: str | None = None
    customer_id: int | None = None
    payment_collection_method: str | None = None

    def __post_init__(self) -> None:
        if not self.reference or not self.reference.strip():
            raise ValueError("a Maxio subscription needs a reference (the idempotency key)")
        if (self.customer_reference is None) == (self.customer_id is None):
            raise ValueError("give exactly one of customer_reference and customer_id")

    def payload(self) -> dict[str, Any]:
        """``{"subscription": {...}}``."""
        body: dict[str, Any] = {
            "product_handle": self.product_handle,
            "reference": self.reference,
            "components": [component.as_json() for component in self.components],
        }
        if self.customer_reference is not None:
            body["customer_reference"] = self.customer_reference
        else:
            body["customer_id"] = self.customer_id
        if self.payment_collection_method:
            body["payment_collection_method"] = self.payment_collection_method
        return {"subscription": body}


# ---- the hook ------------------------------------------------------------------------------------


class MaxioHook(PolicyHook):
    """Interact with Maxio Advanced Billing: exact lookups and duplicate-safe creates.

    Args:
        maxio_conn_id: the connection (default ``maxio_default``): ``login`` = API key,
            ``password`` = ``x``, ``host``/``schema``/``port`` or ``extra.subdomain`` (+ ``region``).
        http_policy: timeouts and retries; by default a 429 is retried even for a POST, since a
            throttled request was not processed (RFC 6585 section 4).
    """

    conn_name_attr = "maxio_conn_id"
    system = SYSTEM
    settings_class = MaxioSettings
    default_conn_name = "maxio_default"
    conn_type = "maxio"
    hook_name = "Maxio Advanced Billing"

    def __init__(
        self, maxio_conn_id: str = default_conn_name, *, http_policy: HttpPolicy | None = None
    ) -> None:
        super().__init__()
        self.maxio_conn_id = maxio_conn_id
        self.http_policy = http_policy or HttpPolicy(non_idempotent_retry_statuses=frozenset({429}))
        self._session: PolicySession | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the connection form: the API key goes in Login, ``x`` in Password."""
        return {
            "hidden_fields": [],
            "relabeling": {"login": "API key", "password": "Password (always x)", "schema": "Scheme"},
            "placeholders": {
                "host": "empty in production (from extra.subdomain); 127.0.0.1 for the sandbox",
                "schema": "https",
                "password": "x",
                "extra": '{"subdomain": "acme", "region": "us"}',
            },
        }

    def session_options(self, settings: MaxioSettings) -> dict[str, Any]:
        """Basic auth with the key as user and "x" as password (api-contracts 6.1)."""
        return {"auth": (settings.api_key, "x"), "headers": {"Accept": "application/json"}}

    @property
    def api_calls(self) -> dict[str, int]:
        """Requests sent so far (a retry inside the HTTP policy counts once): total and per method."""
        session = self.get_conn()
        return {"total": session.calls, **dict(session.calls_by_method)}

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with ``GET /site.json`` (Airflow's "Test" button)."""
        try:
            site = self._call("GET", "site.json").get("site", {})
        except (FatalApiError, RetriableApiError, ConfigurationError) as exc:
            return False, str(exc)
        return True, f"connected to Maxio site {site.get('subdomain')!r}"

    # ---- transport ------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, *, key: str | None = None, missing_ok: bool = False, **kwargs: Any
    ) -> Any:
        """Send one request; return the decoded JSON body, or None for a 404 when ``missing_ok``."""
        response = self.get_conn().request(method, path, **kwargs)
        if missing_ok and response.status_code == 404:
            return None
        self._raise_for_response(response, key=key)
        try:
            return response.json()
        except ValueError as exc:
            raise FatalApiError(
                f"maxio {method} {path}: HTTP {response.status_code} without a JSON body", code="BAD_RESPONSE"
            ) from exc

    @staticmethod
    def _raise_for_response(response: requests.Response, *, key: str | None) -> None:
        """Raise the crm_sync error for a failed call, decoding Maxio's 422 envelopes.

        A 422 about one record (``key`` given) raises :class:`RecordRejected` with Maxio's own
        messages (personal data masked); without a key it is a :class:`FatalApiError`. Other
        statuses follow :func:`crm_sync.http.raise_for_api_status`.
        """
        if response.status_code != 422:
            raise_for_api_status(response, system=SYSTEM)
            return
        try:
            body = response.json()
        except ValueError:
            body = None
        messages, field_name = maxio_error_messages(body)
        message = safe_excerpt("; ".join(messages) or response.text or "unprocessable entity", limit=500)
        if key is not None:
            raise RecordRejected(key, VALIDATION_CODE, message, field=field_name)
        method = response.request.method if response.request is not None else "?"
        raise FatalApiError(f"maxio {method} -> HTTP 422: {message}", status=422, code=VALIDATION_CODE)

    def _get_or_create(
        self, find: Callable[[], T | None], create: Callable[[], T], *, what: str, key: str
    ) -> tuple[T, bool]:
        """Look up, create when missing, and look again when the create's outcome is unknown."""
        found = find()
        if found is not None:
            return found, False
        try:
            return create(), True
        except RetriableApiError as exc:
            if exc.code == CONNECT_ERROR:
                raise  # never reached Maxio: nothing was created
            # The POST may have been applied although no (or a 5xx) answer came back.
            found = find()
            if found is None:
                raise
            log.warning("maxio %s %r: the create's answer was lost but Maxio applied it", what, key)
            return found, True
        except RecordRejected:
            # Another writer may have created the same key first ("must be unique"): use theirs.
            found = find()
            if found is None:
                raise
            return found, False

    # ---- customers ------------------------------------------------------------------------

    def find_customer_by_reference(self, reference: str) -> Customer | None:
        """The customer whose ``reference`` equals ``reference`` exactly, or None."""
        body = self._call("GET", "customers/lookup.json", params={"reference": reference}, missing_ok=True)
        if body is None:
            return None
        customer = Customer.from_json(body)
        if customer.reference != reference:
            raise RecordRejected(
                reference,
                "REFERENCE_MISMATCH",
                f"the exact lookup returned customer {customer.id}, whose reference differs",
                field="reference",
            )
        return customer

    def create_customer(self, customer: CustomerInput) -> Customer:
        """Create a customer (never retried once it may have been sent; see get_or_create_customer)."""
        body = self._call("POST", "customers.json", json=customer.payload(), key=customer.reference)
        return Customer.from_json(body)

    def get_or_create_customer(self, customer: CustomerInput) -> tuple[Customer, bool]:
        """Return ``(customer, created)``, looking the reference up before and after creating."""
        return self._get_or_create(
            lambda: self.find_customer_by_reference(customer.reference),
            lambda: self.create_customer(customer),
            what="customer",
            key=customer.reference,
        )

    # ---- price points ---------------------------------------------------------------------

    def find_price_point(self, component_id: int, handle: str) -> PricePoint | None:
        """The price point of ``component_id`` with this ``handle``, or None."""
        path = f"components/{int(component_id)}/price_points/{quote('handle:' + handle, safe=':')}.json"
        body = self._call("GET", path, missing_ok=True)
        return None if body is None else PricePoint.from_json(body)

    def create_price_point(self, component_id: int, price_point: PricePointInput) -> PricePoint:
        """Create a price point on a component; a 422 raises RecordRejected with Maxio's message."""
        body = self._call(
            "POST",
            f"components/{int(component_id)}/price_points.json",
            json=price_point.payload(),
            key=price_point.handle,
        )
        return PricePoint.from_json(body)

    def get_or_create_price_point(
        self, component_id: int, price_point: PricePointInput
    ) -> tuple[PricePoint, bool]:
        """Return ``(price_point, created)`` by handle; an existing one must have the same brackets.

        Raises:
            RecordRejected: ``PRICE_POINT_CONFLICT`` when the handle exists with other prices.
        """
        found, created = self._get_or_create(
            lambda: self.find_price_point(component_id, price_point.handle),
            lambda: self.create_price_point(component_id, price_point),
            what="price point",
            key=price_point.handle,
        )
        if found.prices != price_point.prices or found.pricing_scheme != price_point.pricing_scheme:
            raise RecordRejected(
                price_point.handle,
                "PRICE_POINT_CONFLICT",
                f"price point {found.id} of component {component_id} has this handle but other prices",
                field="handle",
            )
        return found, created

    # ---- subscriptions --------------------------------------------------------------------

    def find_subscription_by_reference(self, reference: str) -> Subscription | None:
        """The subscription whose ``reference`` equals ``reference`` exactly, or None."""
        body = self._call(
            "GET", "subscriptions/lookup.json", params={"reference": reference}, missing_ok=True
        )
        if body is None:
            return None
        subscription = Subscription.from_json(body)
        if subscription.reference != reference:
            raise RecordRejected(
                reference,
                "REFERENCE_MISMATCH",
                f"the exact lookup returned subscription {subscription.id}, whose reference differs",
                field="reference",
            )
        return subscription

    def create_subscription(self, subscription: SubscriptionInput) -> Subscription:
        """Create a subscription (a 422 raises RecordRejected with Maxio's messages)."""
        body = self._call(
            "POST", "subscriptions.json", json=subscription.payload(), key=subscription.reference
        )
        return Subscription.from_json(body)

    def get_or_create_subscription(self, subscription: SubscriptionInput) -> tuple[Subscription, bool]:
        """Return ``(subscription, created)`` by reference; an existing one must belong to the customer.

        Raises:
            RecordRejected: ``SUBSCRIPTION_CONFLICT`` when the reference belongs to another customer.
        """
        found, created = self._get_or_create(
            lambda: self.find_subscription_by_reference(subscription.reference),
            lambda: self.create_subscription(subscription),
            what="subscription",
            key=subscription.reference,
        )
        same_customer = (
            found.customer_reference == subscription.customer_reference
            if subscription.customer_reference is not None
            else found.customer_id == subscription.customer_id
        )
        if not same_customer:
            raise RecordRejected(
                subscription.reference,
                "SUBSCRIPTION_CONFLICT",
                f"subscription {found.id} has this reference but belongs to customer {found.customer_id}",
                field="reference",
            )
        return found, created

    def list_customer_subscriptions(self, customer_id: int) -> list[Subscription]:
        """Every subscription of a customer (``GET /customers/{id}/subscriptions.json``)."""
        body = self._call("GET", f"customers/{int(customer_id)}/subscriptions.json")
        return [Subscription.from_json(entry) for entry in body]
