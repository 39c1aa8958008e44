"""Provision one opportunity in Maxio, step by step, each step recorded in the outbox.

Steps per opportunity (``Outbox.entity`` = the step, ``record_key`` = the Opportunity Id):
``customer``, one ``price_point`` per order item, ``subscription``, then (link task)
``core_link`` and ``complete``. A step already ``done`` is not called again: its
``target_id`` (the Maxio id) is reused, so a failed run resumes at the step that failed. A
step left ``pending`` (transient error, crash) makes the opportunity due again on the next
run; a rejected step is marked ``failed`` with its code and waits for a fix and a manual
trigger. Maxio has no idempotency keys, so every create is also found by its deterministic
key first (MaxioHook.get_or_create_*): an outbox entry lost with its worker cannot lead to
a duplicate either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from crm_sync.exceptions import RecordRejected
from crm_sync.hooks.maxio import (
    CustomerInput,
    MaxioHook,
    PricePointInput,
    SubscriptionComponent,
    SubscriptionInput,
    make_handle,
)
from crm_sync.integrations.maxio_billing.config import BillingConfig
from crm_sync.integrations.maxio_billing.cpq import Bundle, OrderLine
from crm_sync.sync.outbox import Outbox

__all__ = ["ENTITY", "Component", "StepRunner", "customer_input", "plan_components", "provision"]

log = logging.getLogger(__name__)

ENTITY = "opportunity"
"""The ledger entity of this integration: one outcome per Opportunity."""


@dataclass(frozen=True)
class Component:
    """An order item billed through a Maxio component, with its volume price point."""

    line: OrderLine
    component_id: int
    price_point: PricePointInput


@dataclass
class StepRunner:
    """Run a step once: claim its outbox key, call, record the created id or the rejection."""

    outbox: Outbox
    run_id: str

    def run(self, step: str, opportunity_id: str, call: Callable[[], str], *parts: object) -> str:
        """Return the target id of ``step``, calling ``call`` only when it is not done yet.

        A rejection marks the entry ``failed`` with its code; any other error leaves it
        ``pending`` (the outcome may be unknown), so the next run looks again.
        """
        op_key = Outbox.op_key(step, opportunity_id, *parts)
        entry = self.outbox.claim(op_key, entity=step, record_key=opportunity_id, run_id=self.run_id)
        if entry.is_done and entry.target_id is not None:
            return entry.target_id
        try:
            target_id = call()
        except RecordRejected as exc:
            self.outbox.fail(op_key, exc.code)
            raise
        self.outbox.complete(op_key, target_id)
        return target_id


def _value(account: dict, name: str, fallback: str) -> str:
    value = account.get(name)
    return str(value).strip() if value not in (None, "") and str(value).strip() else fallback


def customer_input(bundle: Bundle, config: BillingConfig) -> CustomerInput:
    """The Maxio customer for the opportunity's Account, with the original's fallbacks.

    Email: the Account's ``ia_crm__Email_ID__c``, else the primary quote contact's, else the
    configured placeholder.
    """
    account, fallbacks = bundle.account, config.fallbacks
    email = account.get("ia_crm__Email_ID__c") or bundle.contact_email or fallbacks.email
    return CustomerInput(
        reference=str(bundle.head.account_id),
        first_name=config.customer_first_name,
        last_name=config.customer_last_name,
        email=str(email),
        organization=account.get("Name"),
        address=_value(account, "BillingStreet", fallbacks.address),
        city=_value(account, "BillingCity", fallbacks.city),
        state=_value(account, "BillingState", fallbacks.state),
        zip=_value(account, "BillingPostalCode", fallbacks.zip),
        country=config.customer_country,
        phone=_value(account, "Phone", fallbacks.phone),
        locale=config.customer_locale,
    )


def plan_components(bundle: Bundle, config: BillingConfig) -> list[Component]:
    """The mapped order items with consumption rates, as volume price points.

    Raises:
        RecordRejected: no Order, bad rates (named by order item), two items on one
            component, or nothing billable.
    """
    opp = bundle.head.id
    if bundle.order_id is None:
        raise RecordRejected(opp, "ORDER_MISSING", "the primary quote has no Order", field="SBQQ__Quote__c")
    organization = str(bundle.account.get("Name") or bundle.head.account_id)[:80]
    planned: dict[int, Component] = {}
    for line in bundle.lines:
        component_id = config.component_for(line.product_name)
        if component_id is None or not line.rates:
            # Unmapped products and products without a consumption schedule are not billed in
            # Maxio (the original dropped them too).
            continue
        try:
            price_point = PricePointInput.volume(
                name=f"{organization}_{line.number or line.id}",
                handle=make_handle("sf-order-item", line.id),
                rates=line.rates,
            )
        except ValueError as exc:
            raise RecordRejected(
                opp,
                "INVALID_RATES",
                f"order item {line.id}: {exc}",
                field="SBQQ__OrderItemConsumptionRate__c",
            ) from exc
        if component_id in planned:
            raise RecordRejected(
                opp,
                "DUPLICATE_COMPONENT",
                f"order items {planned[component_id].line.id} and {line.id} both map to Maxio component "
                f"{component_id}; a subscription takes each component once",
                field="Product2Id",
            )
        planned[component_id] = Component(line, component_id, price_point)
    if not planned:
        raise RecordRejected(
            opp,
            "NO_BILLABLE_PRODUCT",
            f"order {bundle.order_id} has no product mapped to a Maxio component with consumption rates",
            field="Product2Id",
        )
    return list(planned.values())


def provision(bundle: Bundle, config: BillingConfig, maxio: MaxioHook, steps: StepRunner) -> str:
    """Get or create the customer, the price points and the subscription; return its id.

    Raises:
        RecordRejected: the opportunity cannot be provisioned as it is (the key is the
            Opportunity Id, the message Maxio's own).
        RetriableError: a transient failure; the steps done so far stay done.
    """
    opp = bundle.head.id
    components = plan_components(bundle, config)
    customer = customer_input(bundle, config)
    try:
        steps.run("customer", opp, lambda: str(maxio.get_or_create_customer(customer)[0].id))
        chosen: list[SubscriptionComponent] = []
        for planned in components:
            price_point_id = steps.run(
                "price_point",
                opp,
                lambda p=planned: str(maxio.get_or_create_price_point(p.component_id, p.price_point)[0].id),
                planned.line.id,
            )
            chosen.append(SubscriptionComponent(planned.component_id, int(price_point_id)))
        subscription = SubscriptionInput(
            reference=opp,
            product_handle=config.product_handle,
            components=tuple(chosen),
            customer_reference=customer.reference,
        )
        return steps.run(
            "subscription", opp, lambda: str(maxio.get_or_create_subscription(subscription)[0].id)
        )
    except RecordRejected as exc:
        if exc.key == opp:
            raise
        # The hooks key a rejection by the Maxio reference or handle: re-key it by the opportunity.
        raise RecordRejected(opp, exc.code, exc.reason, field=exc.field) from exc
