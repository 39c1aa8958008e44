"""maxio_billing rules without Airflow: config, the opportunity id check, customer fallbacks,
component planning, and the outbox step runner on a real staging database."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from crm_sync.exceptions import ConfigurationError, RecordRejected, RetriableApiError
from crm_sync.integrations.maxio_billing.billing import requested_opportunities, requested_opportunity
from crm_sync.integrations.maxio_billing.config import BillingConfig
from crm_sync.integrations.maxio_billing.cpq import Bundle, Head, OrderLine
from crm_sync.integrations.maxio_billing.generator import CASH_PRODUCTS, OpportunitySpec, build_world, sf_id
from crm_sync.integrations.maxio_billing.provision import StepRunner, customer_input, plan_components
from crm_sync.operators.context import SyncRun
from crm_sync.sync.outbox import Outbox, OutboxState
from crm_sync.sync.staging import make_engine

OPP = sf_id("Opportunity", 1)
ACCOUNT = sf_id("Account", 1)


@pytest.fixture(scope="module")
def config() -> BillingConfig:
    return BillingConfig.load()


def _bundle(lines: list[OrderLine], account: dict | None = None, contact: str | None = None) -> Bundle:
    head = Head(OPP, ACCOUNT, sf_id("SBQQ__Quote__c", 1), "Closed Won", "New Logo", complete=False)
    return Bundle(
        head=head, account=account or {}, contact_email=contact, order_id=sf_id("Order", 1), lines=lines
    )


def _line(n: int, product: str, rates: tuple = ((1, "5"),)) -> OrderLine:
    return OrderLine(id=sf_id("OrderItem", n), number=f"{n:010d}", product_name=product, rates=rates)


def test_the_shipped_config_holds_the_seed_defaults(config: BillingConfig):
    assert config.opportunity_type == "New Logo"
    assert config.product_code_contains == "CASH"
    assert config.product_handle == "monthly-usage"
    assert config.component_for("Pavillio Platform - Lite") == 2544427
    assert config.component_for("Pavillio Platform - Basic") == 2544427
    assert len(config.product_components) == 7
    assert config.fallbacks.zip == "55555"


def test_config_overrides_and_errors(tmp_path: Path):
    overridden = BillingConfig.load({"opportunity_type": None, "fallbacks": {"city": "Elsewhere"}})
    assert overridden.opportunity_type is None
    assert overridden.fallbacks.city == "Elsewhere"
    assert overridden.fallbacks.state == "NS"
    with pytest.raises(ConfigurationError, match="unknown maxio_billing setting"):
        BillingConfig.load({"stage": "Won"})
    with pytest.raises(ConfigurationError, match="complete_field"):
        BillingConfig.load({"complete_field": "Done__c = true OR Id"})
    with pytest.raises(ConfigurationError, match="positive component id"):
        BillingConfig.load({"product_components": {"X": "2544422"}})
    broken = tmp_path / "broken.yaml"
    broken.write_text("closed_won_stage: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"broken\.yaml"):
        BillingConfig.load(path=broken)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("006' OR Name != '", "expected 15 or 18"),
        ("006' OR 'x'='xy", "only letters and digits"),
        ("006Mx0000000001ZZZ", "checksum"),
        ("001Mx0000000001IAA", "not an Opportunity id"),
        ("006Mx00000", "10 characters"),
        (6, "must be a string"),
    ],
)
def test_a_bad_opportunity_id_is_refused_naming_the_param(value: object, message: str):
    with pytest.raises(ConfigurationError, match=f"Param 'opportunity_id'.*{message}"):
        requested_opportunity({"opportunity_id": value})


def test_a_good_opportunity_id_becomes_18_characters():
    assert requested_opportunity({"opportunity_id": OPP[:15]}) == OPP
    assert requested_opportunity({"opportunity_id": None}) is None
    assert requested_opportunity({}) is None


def manual_run(integration: str = "salesforce_maxio_billing", **params: object) -> SyncRun:
    """A manual run of ``integration`` with these Params, as a task sees it."""
    return SyncRun(
        integration=integration,
        dag_id=integration,
        run_id="manual__1",
        dry_run=False,
        full_refresh=False,
        window_start=None,
        window_end=None,
        triggered_by="ursula",
        params=params,
    )


def test_keys_and_opportunity_id_become_unique_18_character_ids():
    second = sf_id("Opportunity", 2)
    run = manual_run(opportunity_id=OPP[:15], keys=[second[:15], OPP, second])
    assert requested_opportunities(run) == [OPP, second]
    assert requested_opportunities(manual_run(keys=[])) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [("006Mx0000000001ZZZ", "checksum"), ("001Mx0000000001IAA", "not an Opportunity id")],
)
def test_a_bad_key_is_refused_naming_the_param_and_the_key(value: str, message: str):
    with pytest.raises(ConfigurationError, match=f"Param 'keys'.*{value}.*{message}"):
        requested_opportunities(manual_run(keys=[OPP, value]))


def test_customer_fallbacks_follow_the_original(config: BillingConfig):
    bare = customer_input(_bundle([]), config)
    assert (bare.email, bare.address, bare.city, bare.state, bare.zip, bare.phone) == (
        "noemailprovided@testco.com",
        "123 No St.",
        "NoTown",
        "NS",
        "55555",
        "555-555-5555",
    )
    assert (bare.first_name, bare.last_name, bare.country, bare.locale) == (
        "Accounts",
        "Payable",
        "US",
        "en-US",
    )
    assert bare.reference == ACCOUNT
    assert customer_input(_bundle([], contact="c@x.example"), config).email == "c@x.example"
    account = {"ia_crm__Email_ID__c": "ap@x.example", "BillingCity": "  ", "Name": "Acme"}
    full = customer_input(_bundle([], account=account, contact="c@x.example"), config)
    assert (full.email, full.city, full.organization) == ("ap@x.example", "NoTown", "Acme")


def test_components_are_planned_from_mapped_products_with_rates(config: BillingConfig):
    lines = [
        _line(1, CASH_PRODUCTS[0], ((101, 4), (1, "5.5"), (1001, 3))),
        _line(2, "Implementation Services"),
        _line(3, CASH_PRODUCTS[2], ()),
    ]
    [planned] = plan_components(_bundle(lines, account={"Name": "Acme"}), config)
    assert planned.component_id == 2544422
    assert planned.line.id == lines[0].id
    assert [(t.starting_quantity, t.ending_quantity, t.unit_price) for t in planned.price_point.prices] == [
        (1, 100, Decimal("5.5")),
        (101, 1000, Decimal(4)),
        (1001, None, Decimal(3)),
    ]
    assert planned.price_point.handle == plan_components(_bundle(lines), config)[0].price_point.handle
    assert planned.price_point.name == "Acme_0000000001"


@pytest.mark.parametrize(
    ("lines", "code", "names"),
    [
        ([_line(1, CASH_PRODUCTS[0], ((1, 5), (1, 4)))], "INVALID_RATES", "appears more than once"),
        ([_line(1, CASH_PRODUCTS[0], ((0, 5),))], "INVALID_RATES", "below 1"),
        (
            [_line(1, "Pavillio Platform - Basic"), _line(2, "Pavillio Platform - Lite")],
            "DUPLICATE_COMPONENT",
            "2544427",
        ),
        ([_line(1, "Implementation Services")], "NO_BILLABLE_PRODUCT", "no product mapped"),
    ],
)
def test_unbillable_orders_are_rejected_naming_the_order_item(config, lines, code, names):
    with pytest.raises(RecordRejected) as caught:
        plan_components(_bundle(lines), config)
    assert caught.value.key == OPP
    assert caught.value.code == code
    assert names in caught.value.reason


def test_step_runner_resumes_and_never_repeats_a_done_step(staging_url: str):
    engine = make_engine(staging_url)
    steps = StepRunner(Outbox(engine, "maxio_billing_test"), "run-1")
    calls: list[str] = []

    def create() -> str:
        calls.append("create")
        return "42"

    assert steps.run("customer", OPP, create) == "42"
    assert steps.run("customer", OPP, create) == "42"
    assert calls == ["create"]

    def lost() -> str:
        raise RetriableApiError("maxio POST -> no answer", code="LOST")

    with pytest.raises(RetriableApiError):
        steps.run("subscription", OPP, lost)
    entry = steps.outbox.get(Outbox.op_key("subscription", OPP))
    assert entry.state == OutboxState.PENDING  # outcome unknown: due again next run

    def rejected() -> str:
        raise RecordRejected(OPP, "MAXIO_VALIDATION", "Prices: bad", field="prices")

    with pytest.raises(RecordRejected):
        steps.run("price_point", OPP, rejected, "item-1")
    entry = steps.outbox.get(Outbox.op_key("price_point", OPP, "item-1"))
    assert (entry.state, entry.error) == (OutboxState.FAILED, "MAXIO_VALIDATION")


def test_the_generator_links_every_record():
    world = build_world(specs=[OpportunitySpec(), OpportunitySpec(cash=False), OpportunitySpec(order=False)])
    seed = world.salesforce_seed()["objects"]
    assert len(seed["Opportunity"]) == 3
    assert len(seed["Order"]) == 2
    assert len(world.late_order_seed()["objects"]["Order"]) == 1
    quotes = {q["Id"] for q in seed["SBQQ__Quote__c"]}
    assert {o["SBQQ__PrimaryQuote__c"] for o in seed["Opportunity"]} <= quotes
    no_cash = [i for i in seed["OpportunityLineItem"] if i["OpportunityId"] == world.opportunity_ids[1]]
    codes = {p["Id"]: p["ProductCode"] for p in seed["Product2"]}
    assert not any("CASH" in codes[i["Product2Id"]] for i in no_cash)
    assert len(world.core["contracts"]) == 3
    assert build_world(2).salesforce_seed() == build_world(2).salesforce_seed()
