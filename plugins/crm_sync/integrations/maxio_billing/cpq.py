"""Read the Salesforce CPQ chain of closed-won opportunities (seed-notes §004, "Read chain").

Every literal goes through ``crm_sync.hooks.soql`` (the original built its queries with
f-strings), and every step reads all opportunities of the run at once with ``IN`` lists, so
200 opportunities cost a dozen queries instead of two thousand.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from crm_sync.hooks import soql
from crm_sync.integrations.maxio_billing.config import BillingConfig

__all__ = [
    "Bundle",
    "Head",
    "OrderLine",
    "find_in_window",
    "gate_products",
    "orders_by_quote",
    "read_bundles",
    "read_heads",
]

IN_CHUNK = 200
"""Ids per ``IN`` list: keeps every query far below SOQL's 100,000-character limit."""


class Querier(Protocol):
    """What this module needs of SalesforceSyncHook."""

    def query(self, soql_text: str) -> Iterator[dict[str, Any]]:
        """Stream a SOQL query's records as flat dicts."""


@dataclass(frozen=True)
class Head:
    """The Opportunity fields that decide whether and how it is provisioned."""

    id: str
    account_id: str | None
    quote_id: str | None
    stage: str | None
    type: str | None
    complete: bool


@dataclass(frozen=True)
class OrderLine:
    """An order product with its Maxio-relevant data: product name and consumption rates."""

    id: str
    number: str | None
    product_name: str | None
    rates: tuple[tuple[Any, Any], ...]
    """``(lower bound, price)`` pairs of all its consumption schedules, in Salesforce order."""


@dataclass
class Bundle:
    """Everything one opportunity needs to be provisioned (held in memory for one task only)."""

    head: Head
    account: dict[str, Any] = field(default_factory=dict)
    contact_email: str | None = None
    order_id: str | None = None
    lines: list[OrderLine] = field(default_factory=list)


def _chunks(values: Iterable[str]) -> Iterator[list[str]]:
    unique = sorted(set(values))
    for start in range(0, len(unique), IN_CHUNK):
        yield unique[start : start + IN_CHUNK]


def _select_in(
    sf: Querier, sobject: str, fields: Sequence[str], key: str, values: Iterable[str]
) -> Iterator[dict[str, Any]]:
    for part in _chunks(v for v in values if v):
        yield from sf.query(soql.select(sobject, fields, where={key: part}))


_HEAD_FIELDS = ("Id", "AccountId", "SBQQ__PrimaryQuote__c", "StageName", "Type")


def _head(row: dict[str, Any], config: BillingConfig) -> Head:
    return Head(
        id=row["Id"],
        account_id=row.get("AccountId"),
        quote_id=row.get("SBQQ__PrimaryQuote__c"),
        stage=row.get("StageName"),
        type=row.get("Type"),
        complete=bool(row.get(config.complete_field)),
    )


def find_in_window(sf: Querier, config: BillingConfig, start: datetime, end: datetime) -> list[Head]:
    """Opportunities of the configured stage and type changed in ``[start, end)``, not yet complete."""
    template = "StageName = {stage} AND {complete} = false AND {field} >= {start} AND {field} < {end}"
    template = template.replace("{complete}", soql.identifier(config.complete_field))
    template = template.replace("{field}", soql.identifier(config.window_field))
    if config.opportunity_type is not None:
        template += " AND Type = {type}"
    where = soql.fragment(
        template, stage=config.closed_won_stage, start=start, end=end, type=config.opportunity_type
    )
    query = soql.select("Opportunity", [*_HEAD_FIELDS, config.complete_field], where=where, order_by=["Id"])
    return [_head(row, config) for row in sf.query(query)]


def read_heads(sf: Querier, config: BillingConfig, ids: Iterable[str]) -> dict[str, Head]:
    """The heads of these opportunities (ids as 18-character ids), missing ones left out."""
    rows = _select_in(sf, "Opportunity", [*_HEAD_FIELDS, config.complete_field], "Id", ids)
    return {row["Id"]: _head(row, config) for row in rows}


def gate_products(sf: Querier, config: BillingConfig, ids: Iterable[str]) -> set[str]:
    """The opportunities with a line item whose product code contains the configured marker.

    Case-sensitive, as the original's ``"CASH" in code`` (SOQL ``LIKE`` would ignore case).
    """
    needle = config.product_code_contains
    rows = _select_in(sf, "OpportunityLineItem", ["OpportunityId", "ProductCode"], "OpportunityId", ids)
    return {row["OpportunityId"] for row in rows if needle in (row.get("ProductCode") or "")}


def orders_by_quote(sf: Querier, quote_ids: Iterable[str]) -> dict[str, str]:
    """Quote id -> Order id (the first Order created from the quote)."""
    found: dict[str, str] = {}
    rows = _select_in(sf, "Order", ["Id", "SBQQ__Quote__c", "CreatedDate"], "SBQQ__Quote__c", quote_ids)
    for row in sorted(rows, key=lambda r: (str(r.get("CreatedDate")), r["Id"])):
        found.setdefault(row["SBQQ__Quote__c"], row["Id"])
    return found


_ACCOUNT_FIELDS = (
    "Id",
    "Name",
    "ia_crm__Email_ID__c",
    "BillingStreet",
    "BillingCity",
    "BillingState",
    "BillingPostalCode",
    "Phone",
)


def read_bundles(sf: Querier, config: BillingConfig, heads: Sequence[Head]) -> dict[str, Bundle]:
    """Read quote contact, Order, order items, consumption schedules and rates, and Account.

    Products without a consumption schedule carry no rates (the original dropped them).
    """
    bundles = {head.id: Bundle(head=head) for head in heads}
    quotes = {
        row["Id"]: row
        for row in _select_in(
            sf, "SBQQ__Quote__c", ["Id", "SBQQ__PrimaryContact__c"], "Id", (h.quote_id for h in heads)
        )
    }
    contacts = {
        row["Id"]: row.get("Email")
        for row in _select_in(
            sf, "Contact", ["Id", "Email"], "Id", (q.get("SBQQ__PrimaryContact__c") for q in quotes.values())
        )
    }
    orders = orders_by_quote(sf, (h.quote_id for h in heads if h.quote_id))
    items_by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _select_in(
        sf, "OrderItem", ["Id", "OrderId", "OrderItemNumber", "Product2.Name"], "OrderId", orders.values()
    ):
        items_by_order[row["OrderId"]].append(row)
    item_ids = [row["Id"] for rows in items_by_order.values() for row in rows]
    schedule_item = {
        row["Id"]: row["SBQQ__OrderItem__c"]
        for row in _select_in(
            sf,
            "SBQQ__OrderItemConsumptionSchedule__c",
            ["Id", "SBQQ__OrderItem__c"],
            "SBQQ__OrderItem__c",
            item_ids,
        )
    }
    rates: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for row in _select_in(
        sf,
        "SBQQ__OrderItemConsumptionRate__c",
        ["Id", "SBQQ__OrderItemConsumptionSchedule__c", "SBQQ__LowerBound__c", "SBQQ__Price__c"],
        "SBQQ__OrderItemConsumptionSchedule__c",
        schedule_item,
    ):
        item = schedule_item[row["SBQQ__OrderItemConsumptionSchedule__c"]]
        rates[item].append((row.get("SBQQ__LowerBound__c"), row.get("SBQQ__Price__c")))
    accounts = {
        row["Id"]: row
        for row in _select_in(sf, "Account", _ACCOUNT_FIELDS, "Id", (h.account_id for h in heads))
    }
    for bundle in bundles.values():
        head = bundle.head
        quote = quotes.get(head.quote_id or "") or {}
        bundle.contact_email = contacts.get(quote.get("SBQQ__PrimaryContact__c") or "")
        bundle.account = accounts.get(head.account_id or "", {})
        bundle.order_id = orders.get(head.quote_id or "")
        bundle.lines = [
            OrderLine(
                id=row["Id"],
                number=row.get("OrderItemNumber"),
                product_name=row.get("Product2.Name"),
                rates=tuple(rates.get(row["Id"], ())),
            )
            for row in items_by_order.get(bundle.order_id or "", [])
        ]
    return bundles
