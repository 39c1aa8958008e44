"""Synthetic Salesforce CPQ records and Maxio Core contracts for tests, the demo and the benchmark.

Builds the seed-notes §004 chain: Product2, Account, Contact, primary SBQQ__Quote__c,
closed-won Opportunity with line items, Order from the quote, OrderItems, consumption
schedules and rates (written in shuffled lower-bound order, as Salesforce may return them),
and in Core a customer (``number`` = Account Id) with one contract in a ``CASHe`` register.
Ids are fixed by the generator so the records reference each other in one seed call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crm_sync.hooks.soql import sf_id_18

__all__ = ["CASH_PRODUCTS", "CpqWorld", "OpportunitySpec", "build_world", "sf_id"]

CASH_PRODUCTS = (
    "Pavillio Subscription - Core Billing",
    "Pavillio Subscription - County Billing",
    "Managed Billing Subscription",
    "Pavillio Per Client Fee",
    "Pavillio Platform - Basic",
    "Billing Services Subscription (By Claim)",
)
SERVICE_PRODUCT = "Implementation Services"
REGISTER = "CASHe Billing"
_OBJECT_ORDER = (
    "Product2",
    "Account",
    "Contact",
    "SBQQ__Quote__c",
    "Opportunity",
    "OpportunityLineItem",
    "Order",
    "OrderItem",
    "SBQQ__OrderItemConsumptionSchedule__c",
    "SBQQ__OrderItemConsumptionRate__c",
)
_PREFIX = {
    "Product2": "01t",
    "Account": "001",
    "Contact": "003",
    "SBQQ__Quote__c": "a0A",
    "Opportunity": "006",
    "OpportunityLineItem": "00k",
    "Order": "801",
    "OrderItem": "802",
    "SBQQ__OrderItemConsumptionSchedule__c": "a0B",
    "SBQQ__OrderItemConsumptionRate__c": "a0C",
}


def sf_id(sobject: str, number: int, tag: str = "Mx") -> str:
    """A valid 18-character id of ``sobject`` (its key prefix, a tag, a number, the checksum)."""
    return sf_id_18(f"{_PREFIX[sobject]}{tag}{number:010d}")


@dataclass(frozen=True)
class OpportunitySpec:
    """How one generated opportunity looks."""

    products: tuple[str, ...] = (CASH_PRODUCTS[0],)
    """Billed products (each gets an order item with a consumption schedule)."""
    cash: bool = True
    """False: the line items carry no ``CASH`` product code (the product gate skips it)."""
    order: bool = True
    """False: the Order is kept in :attr:`CpqWorld.late_orders` (seed it later, or never)."""
    sparse_account: bool = False
    """Account without email, address and phone (the customer gets the fallbacks)."""
    rates: tuple[tuple[int, float], ...] | None = None
    """Explicit ``(lower bound, price)`` rates for every product (None: generated)."""


@dataclass
class CpqWorld:
    """Seed payloads and the ids tests look for."""

    salesforce: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    late_orders: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    core: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    opportunity_ids: list[str] = field(default_factory=list)
    account_of: dict[str, str] = field(default_factory=dict)
    quote_of: dict[str, str] = field(default_factory=dict)
    order_items_of: dict[str, list[str]] = field(default_factory=dict)

    def salesforce_seed(self) -> dict[str, Any]:
        """``POST /_sandbox/seed`` body for the Salesforce emulator (objects in reference order)."""
        return {
            "objects": {name: self.salesforce[name] for name in _OBJECT_ORDER if self.salesforce.get(name)}
        }

    def late_order_seed(self) -> dict[str, Any]:
        """The held-back Orders with their items, schedules and rates."""
        return {
            "objects": {name: self.late_orders[name] for name in _OBJECT_ORDER if self.late_orders.get(name)}
        }

    def core_seed(self) -> dict[str, Any]:
        """``POST /_sandbox/seed`` body for the Maxio Core emulator."""
        return dict(self.core)


class _Ids:
    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.counters: dict[str, int] = {}

    def next(self, sobject: str) -> str:
        self.counters[sobject] = self.counters.get(sobject, 0) + 1
        return sf_id(sobject, self.counters[sobject], self.tag)


def _rates(rng: random.Random) -> list[tuple[int, float]]:
    bounds = [1, 101, 1001, 5001][: rng.randint(1, 4)]
    price = round(rng.uniform(2.0, 9.0), 2)
    rates = [(bound, round(price * (0.8**i), 2)) for i, bound in enumerate(bounds)]
    rng.shuffle(rates)  # Salesforce returns rates in no promised order: the hook sorts them
    return rates


def build_world(
    count: int = 0, *, specs: list[OpportunitySpec] | None = None, seed: int = 4, tag: str = "Mx"
) -> CpqWorld:
    """Generate ``count`` default opportunities, or one per spec in ``specs``.

    Args:
        count: how many default opportunities (ignored when ``specs`` is given).
        specs: the opportunities to build.
        seed: the random seed (rates, account data).
        tag: two letters inside every id, so several worlds can share one Salesforce org.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    ids = _Ids(tag)
    specs = specs if specs is not None else [OpportunitySpec() for _ in range(count)]
    world = CpqWorld(
        salesforce={name: [] for name in _OBJECT_ORDER}, late_orders={name: [] for name in _OBJECT_ORDER}
    )
    sf = world.salesforce
    products: dict[str, str] = {}
    for name in (*CASH_PRODUCTS, SERVICE_PRODUCT):
        products[name] = ids.next("Product2")
        code = "SVC-IMPL" if name == SERVICE_PRODUCT else f"CASH-{len(products):03d}"
        sf["Product2"].append({"Id": products[name], "Name": name, "ProductCode": code})
    plain_codes: dict[str, str] = {}
    core_customers, core_contracts = [], []
    today = datetime.now(UTC).date().isoformat()
    for number, spec in enumerate(specs):
        # New logos: one account each (Core holds one contract per account to link).
        account_id = ids.next("Account")
        full = not spec.sparse_account
        account = {
            "Id": account_id,
            "Name": f"County Health District {tag}{number:04d}",
            "ia_crm__Email_ID__c": f"ap{number}@county{number}.example" if full and number % 3 else None,
            "BillingStreet": f"{100 + number} Main St" if full else None,
            "BillingCity": "Springfield" if full else None,
            "BillingState": "IL" if full else None,
            "BillingPostalCode": f"{62700 + number % 99}" if full else None,
            "Phone": f"217-555-{number % 10000:04d}" if full else None,
        }
        sf["Account"].append({k: v for k, v in account.items() if v is not None})
        core_customers.append({"number": account_id, "name": account["Name"]})
        core_contracts.append({"customer_number": account_id, "register_name": REGISTER})
        contact_id = ids.next("Contact")
        sf["Contact"].append(
            {"Id": contact_id, "LastName": f"Buyer{number}", "Email": f"buyer{number}@example.org"}
        )
        quote_id = ids.next("SBQQ__Quote__c")
        sf["SBQQ__Quote__c"].append(
            {
                "Id": quote_id,
                "SBQQ__Account__c": account_id,
                "SBQQ__PrimaryContact__c": contact_id,
                "SBQQ__Primary__c": True,
            }
        )
        opp_id = ids.next("Opportunity")
        sf["Opportunity"].append(
            {
                "Id": opp_id,
                "Name": f"New logo {tag}{number:04d}",
                "StageName": "Closed Won",
                "Type": "New Logo",
                "CloseDate": today,
                "AccountId": account_id,
                "ContactId": contact_id,
                "SBQQ__PrimaryQuote__c": quote_id,
            }
        )
        world.opportunity_ids.append(opp_id)
        world.account_of[opp_id] = account_id
        world.quote_of[opp_id] = quote_id
        line_products = [*spec.products, SERVICE_PRODUCT]
        for name in line_products:
            product_id = products[name]
            if not spec.cash and name != SERVICE_PRODUCT:
                # Same product name, no CASH code: a product the gate must not let through.
                if name not in plain_codes:
                    plain_codes[name] = ids.next("Product2")
                    sf["Product2"].append({"Id": plain_codes[name], "Name": name, "ProductCode": "SUB-PLAIN"})
                product_id = plain_codes[name]
            sf["OpportunityLineItem"].append(
                {"OpportunityId": opp_id, "Product2Id": product_id, "Quantity": 1, "UnitPrice": 0}
            )
        target = sf if spec.order else world.late_orders
        order_id = ids.next("Order")
        target["Order"].append(
            {
                "Id": order_id,
                "AccountId": account_id,
                "OpportunityId": opp_id,
                "SBQQ__Quote__c": quote_id,
                "Status": "Draft",
                "EffectiveDate": today,
            }
        )
        world.order_items_of[opp_id] = []
        for name in line_products:
            item_id = ids.next("OrderItem")
            target["OrderItem"].append(
                {
                    "Id": item_id,
                    "OrderId": order_id,
                    "Product2Id": products[name],
                    "Quantity": 1,
                    "UnitPrice": 0,
                }
            )
            if name == SERVICE_PRODUCT:
                continue  # no consumption schedule: not billed in Maxio
            world.order_items_of[opp_id].append(item_id)
            schedule_id = ids.next("SBQQ__OrderItemConsumptionSchedule__c")
            target["SBQQ__OrderItemConsumptionSchedule__c"].append(
                {
                    "Id": schedule_id,
                    "SBQQ__OrderItem__c": item_id,
                    "SBQQ__RatingMethod__c": "Tier",
                    "SBQQ__Type__c": "Range",
                }
            )
            for lower, price in spec.rates if spec.rates is not None else _rates(rng):
                target["SBQQ__OrderItemConsumptionRate__c"].append(
                    {
                        "SBQQ__OrderItemConsumptionSchedule__c": schedule_id,
                        "SBQQ__LowerBound__c": lower,
                        "SBQQ__Price__c": price,
                    }
                )
    world.core = {"registers": [{"name": REGISTER}], "customers": core_customers, "contracts": core_contracts}
    return world
