"""salesforce_maxio_billing end to end: real Airflow (dag.test), the Salesforce, Maxio and Maxio
Core emulators over real HTTP, and the staging database on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from demo.maxio_billing import window_end
from sandbox.testing import start_sandbox
from tests.airflow_support import airflow_db, run_dag, task_states, xcom  # noqa: F401 - fixture

DAG_ID = "salesforce_maxio_billing"
SERVICES = ["salesforce", "maxio", "maxio_core"]
pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.slow]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    with start_sandbox(SERVICES, tmp_dir=tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@dataclass
class World:
    sandbox: Any
    staging_url: str
    cpq: Any
    window_end: datetime

    def admin(self, service: str) -> Any:
        return self.sandbox.admin(service)

    def maxio(self, kind: str, **filters: Any) -> list[dict[str, Any]]:
        return self.admin("maxio").state(kind=kind, **filters)["records"]

    def posts(self, service: str = "maxio") -> dict[str, int]:
        routes = self.admin(service).calls()["by_route"]
        return {route: n for route, n in routes.items() if route.split()[0] in {"POST", "PUT", "PATCH"}}

    def opportunities(self) -> dict[str, dict[str, Any]]:
        records = self.admin("salesforce").state(object="Opportunity")["records"]
        return {r["Id"]: r for r in records}

    def contracts(self) -> dict[str, dict[str, Any]]:
        core = self.admin("maxio_core").state(kind="contracts")["records"]
        customers = {
            c["id"]: c["number"] for c in self.admin("maxio_core").state(kind="customers")["records"]
        }
        return {customers[c["customer"]]: c for c in core}

    def run(self, window_end: datetime | None = None, **conf: Any) -> Any:
        return run_dag(DAG_ID, logical_date=window_end or self.window_end, conf=conf)

    def ledger(self, run_id: str | None = None) -> dict[str, Any]:
        from crm_sync.sync.staging import make_engine

        query = (
            "SELECT key, status, error_code, message, field, run_id FROM sync_log"
            " WHERE entity = 'opportunity'"
        )
        with make_engine(self.staging_url).connect() as conn:
            rows = conn.execute(sa.text(query)).all()
        return {row.key: row for row in rows if run_id is None or row.run_id == run_id}


def _world(sandbox: Any, monkeypatch: pytest.MonkeyPatch, staging_url: str, specs: list[Any]) -> World:
    from crm_sync.integrations.maxio_billing.generator import build_world

    for service in SERVICES:
        sandbox.admin(service).reset()
        sandbox.admin(service).clear_faults()
    cpq = build_world(specs=specs, seed=4)
    sandbox.admin("salesforce").seed(cpq.salesforce_seed())
    sandbox.admin("maxio_core").seed(cpq.core_seed())
    for name, value in sandbox.conn_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(
        "AIRFLOW_CONN_CRM_SYNC_STAGING",
        json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": staging_url}}),
    )
    end = window_end(sandbox, cpq.opportunity_ids)
    return World(sandbox=sandbox, staging_url=staging_url, cpq=cpq, window_end=end)


def _specs(*kinds: str) -> list[Any]:
    from crm_sync.integrations.maxio_billing.generator import CASH_PRODUCTS, OpportunitySpec

    table = {
        "core": OpportunitySpec(products=(CASH_PRODUCTS[0],)),
        "two": OpportunitySpec(products=(CASH_PRODUCTS[1], CASH_PRODUCTS[3])),
        "managed": OpportunitySpec(products=(CASH_PRODUCTS[2],)),
        "sparse": OpportunitySpec(sparse_account=True),
        "no_cash": OpportunitySpec(cash=False),
        "late": OpportunitySpec(order=False),
    }
    return [table[kind] for kind in kinds]


def _assert_success(dag_run: Any) -> None:
    assert str(dag_run.state) == "success", task_states(dag_run)


@pytest.fixture
def world(sandbox: Any, monkeypatch: pytest.MonkeyPatch, staging_url: str) -> World:
    return _world(sandbox, monkeypatch, staging_url, _specs("core", "two", "sparse", "no_cash"))


def test_closed_won_opportunities_are_provisioned_once(world: World):
    dag_run = world.run()
    _assert_success(dag_run)
    billed, skipped = world.cpq.opportunity_ids[:3], world.cpq.opportunity_ids[3]

    customers = {c["reference"]: c for c in world.maxio("customers")}
    assert set(customers) == {world.cpq.account_of[o] for o in billed}
    sparse = customers[world.cpq.account_of[billed[2]]]
    assert (sparse["address"], sparse["city"], sparse["zip"]) == ("123 No St.", "NoTown", "55555")
    assert sparse["email"] == "buyer2@example.org"  # no Account email: the quote contact's

    subscriptions = {s["reference"]: s for s in world.maxio("subscriptions")}
    assert set(subscriptions) == set(billed)
    custom = [p for p in world.maxio("price_points") if p.get("type") != "default"]
    assert len(custom) == 4  # one per billed order item: 1 + 2 + 1
    for point in custom:
        starts = [tier["starting_quantity"] for tier in point["prices"]]
        assert starts == sorted(starts)
        assert point["prices"][-1]["ending_quantity"] is None
        assert point["pricing_scheme"] == "volume"

    contracts = world.contracts()
    opportunities = world.opportunities()
    for opp in billed:
        subscription_id = str(subscriptions[opp]["id"])
        assert contracts[world.cpq.account_of[opp]]["text_field2"] == subscription_id
        assert opportunities[opp]["Maxio_Provisioned__c"] is True
        assert opportunities[opp]["Maxio_Subscription_Id__c"] == subscription_id
    assert opportunities[skipped]["Maxio_Provisioned__c"] is False

    ledger = world.ledger(dag_run.run_id)
    assert {o: ledger[o].status for o in billed} == dict.fromkeys(billed, "success")
    assert ledger[skipped].status == "skipped"
    assert ledger[skipped].error_code == "NO_MATCHING_PRODUCT"
    assert "'CASH'" in ledger[skipped].message
    report = xcom(dag_run, "report")
    assert report["by_status"]["success"] == 3
    assert report["api_calls"]["maxio"] > 0


def test_a_dry_run_plans_and_writes_nothing(world: World):
    dag_run = world.run(dry_run=True)
    _assert_success(dag_run)
    ledger = world.ledger(dag_run.run_id)
    planned = world.cpq.opportunity_ids[:3]
    assert {o: ledger[o].error_code for o in planned} == dict.fromkeys(planned, "DRY_RUN")
    assert world.posts("maxio") == {}
    assert world.posts("maxio_core") == {}
    assert not any(o["Maxio_Provisioned__c"] for o in world.opportunities().values())


def test_reruns_retries_and_repeated_triggers_create_nothing(world: World):
    _assert_success(world.run())
    created = {kind: len(world.maxio(kind)) for kind in ("customers", "price_points", "subscriptions")}
    world.admin("maxio").reset_calls()
    world.admin("maxio_core").reset_calls()

    _assert_success(world.run())  # the same window again
    opp = world.cpq.opportunity_ids[0]
    again = world.run(world.window_end + timedelta(minutes=15), opportunity_id=opp)
    _assert_success(again)
    _assert_success(world.run(world.window_end + timedelta(minutes=30), opportunity_id=opp[:15]))

    assert world.posts("maxio") == {}
    assert world.posts("maxio_core") == {}
    assert {kind: len(world.maxio(kind)) for kind in created} == created
    assert world.ledger(again.run_id)[opp].error_code == "ALREADY_PROVISIONED"


def test_existing_customer_is_reused_and_lost_responses_make_no_duplicate(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
):
    world = _world(sandbox, monkeypatch, sqlite_url, _specs("core", "two"))
    existing_account = world.cpq.account_of[world.cpq.opportunity_ids[0]]
    seeded = world.admin("maxio").seed(
        {
            "customers": [
                {
                    "first_name": "Accounts",
                    "last_name": "Payable",
                    "email": "ap@x.example",
                    "reference": existing_account,
                }
            ]
        }
    )
    existing_id = seeded["ids"]["customers"][0]
    # Maxio applies each create but the answer never arrives: the hook must find, not re-create.
    world.admin("maxio").faults(
        [
            {"method": "POST", "path": r"^/customers\.json$", "lost_response": True},
            {"method": "POST", "path": r"^/components/\d+/price_points\.json$", "lost_response": True},
            {"method": "POST", "path": r"^/subscriptions\.json$", "lost_response": True},
        ]
    )
    _assert_success(world.run())

    customers = world.maxio("customers")
    assert len(customers) == 2
    assert {c["id"] for c in customers if c["reference"] == existing_account} == {existing_id}
    assert len(world.maxio("subscriptions")) == 2
    assert len([p for p in world.maxio("price_points") if p.get("type") != "default"]) == 3
    assert world.posts()["POST /customers.json"] == 1  # only the new account's


def test_a_failed_step_resumes_where_it_stopped(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
):
    world = _world(sandbox, monkeypatch, sqlite_url, _specs("core"))
    opp = world.cpq.opportunity_ids[0]
    world.admin("maxio").faults([{"method": "POST", "path": r"^/subscriptions\.json$", "status": 503}])
    first = world.run()
    _assert_success(first)
    assert world.ledger(first.run_id)[opp].status == "failed"
    assert world.maxio("subscriptions") == []

    world.admin("maxio").reset_calls()
    later = world.run(world.window_end + timedelta(minutes=15))  # the next window: due from the outbox
    _assert_success(later)
    assert world.ledger(later.run_id)[opp].status == "success"
    posts = world.posts()
    assert "POST /customers.json" not in posts
    assert not any("price_points" in route for route in posts)
    assert posts["POST /subscriptions.json"] == 1


def test_the_opportunity_is_marked_only_after_core_holds_the_link(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
):
    world = _world(sandbox, monkeypatch, sqlite_url, _specs("core", "managed"))
    first_opp, second_opp = world.cpq.opportunity_ids
    # Core answers 200 to the PATCH but keeps text_field2: the original would have marked it done.
    world.admin("maxio_core").config(read_only_fields=["text_field2"])
    dag_run = world.run()
    assert task_states(dag_run)["link_contracts"] == "failed"
    assert not any(o["Maxio_Provisioned__c"] for o in world.opportunities().values())
    assert len(world.maxio("subscriptions")) == 2

    world.admin("maxio_core").config(read_only_fields=[])
    world.admin("maxio").reset_calls()
    later = world.run(world.window_end + timedelta(minutes=15))  # due again: not yet complete
    _assert_success(later)
    opportunities = world.opportunities()
    assert opportunities[first_opp]["Maxio_Provisioned__c"] is True
    assert opportunities[second_opp]["Maxio_Provisioned__c"] is True
    assert world.posts("maxio") == {}


def test_a_contract_core_has_not_created_yet_is_linked_by_a_later_run(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
):
    world = _world(sandbox, monkeypatch, sqlite_url, _specs("core"))
    opp = world.cpq.opportunity_ids[0]
    world.admin("maxio_core").reset()  # Core's own AB sync has not imported the customer yet
    dag_run = world.run()
    _assert_success(dag_run)
    entry = world.ledger(dag_run.run_id)[opp]
    assert (entry.status, entry.error_code) == ("failed", "CONTRACT_NOT_FOUND")

    world.admin("maxio_core").seed(world.cpq.core_seed())
    later = world.run(world.window_end + timedelta(minutes=15))
    _assert_success(later)
    subscription = world.maxio("subscriptions")[0]
    assert world.contracts()[world.cpq.account_of[opp]]["text_field2"] == str(subscription["id"])
    assert world.opportunities()[opp]["Maxio_Provisioned__c"] is True


def test_a_422_on_one_price_point_fails_only_that_opportunity(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
):
    world = _world(sandbox, monkeypatch, sqlite_url, _specs("core", "managed", "two"))
    victim = world.cpq.opportunity_ids[1]
    world.admin("maxio").faults(
        [
            {
                "method": "POST",
                "path": r"^/components/2554766/price_points\.json$",
                "status": 422,
                "body": {"errors": {"prices": ["Unit price must be greater than or equal to 0."]}},
            }
        ]
    )
    dag_run = world.run()
    states = task_states(dag_run)
    assert states["link_contracts"] == "success"
    assert states["report"] == "failed"  # 1 of 3 rejected is above max_reject_ratio

    ledger = world.ledger(dag_run.run_id)
    assert ledger[victim].status == "rejected"
    assert ledger[victim].error_code == "MAXIO_VALIDATION"
    assert "Unit price must be greater than or equal to 0." in ledger[victim].message
    assert ledger[victim].field == "prices"
    others = [o for o in world.cpq.opportunity_ids if o != victim]
    assert {o: ledger[o].status for o in others} == dict.fromkeys(others, "success")
    assert {s["reference"] for s in world.maxio("subscriptions")} == set(others)


def test_an_opportunity_without_order_times_out_the_sensor(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, sqlite_url: str, capfd: pytest.CaptureFixture[str]
):
    world = _world(sandbox, monkeypatch, sqlite_url, _specs("late"))
    opp = world.cpq.opportunity_ids[0]
    dag_run = world.run()
    states = task_states(dag_run)
    assert states["wait_for_orders"] == "failed"
    assert states["provision_billing"] == "upstream_failed"
    logged = capfd.readouterr().out
    assert f"no Salesforce Order after 30s for opportunity {opp} (quote {world.cpq.quote_of[opp]})" in logged
    entry = world.ledger(dag_run.run_id)[opp]
    assert (entry.status, entry.error_code) == ("failed", "ORDER_TIMEOUT")
    assert world.cpq.quote_of[opp] in entry.message
    assert world.maxio("customers") == []

    world.admin("salesforce").seed(world.cpq.late_order_seed())
    later = world.run(world.window_end + timedelta(minutes=15))
    _assert_success(later)
    assert world.ledger(later.run_id)[opp].status == "success"


@pytest.mark.parametrize(
    "bad_id",
    ["006' OR Name != '", "006Mx0000000001ZZZ", "001Mx0000000001IAA"],
    ids=["injection", "bad-checksum", "not-an-opportunity"],
)
def test_a_malicious_opportunity_id_is_refused_before_any_query(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, sqlite_url: str, bad_id: str
):
    world = _world(sandbox, monkeypatch, sqlite_url, _specs("core"))
    world.admin("salesforce").reset_calls()
    if bad_id.isalnum():
        # Passes the Param's pattern; the task's own check (checksum, key prefix) refuses it.
        assert task_states(world.run(opportunity_id=bad_id))["find_opportunities"] == "failed"
    else:
        with pytest.raises(Exception, match=r"opportunity_id|pattern"):
            world.run(opportunity_id=bad_id)
    queries = [r for r in world.admin("salesforce").calls()["by_route"] if "query" in r]
    assert queries == []
    assert world.maxio("customers") == []


def test_keys_provision_exactly_the_selected_opportunities_at_their_failed_step(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
):
    world = _world(sandbox, monkeypatch, sqlite_url, _specs("core", "two", "managed"))
    opps = world.cpq.opportunity_ids
    world.admin("maxio").faults(
        [{"method": "POST", "path": r"^/subscriptions\.json$", "status": 503, "times": None}]
    )
    first = world.run()
    _assert_success(first)
    assert {o: world.ledger(first.run_id)[o].status for o in opps} == dict.fromkeys(opps, "failed")
    world.admin("maxio").clear_faults()
    world.admin("maxio").reset_calls()

    selected, left = [opps[0], opps[1][:15]], opps[2]  # the dashboard may hold 15-character ids
    retry = world.run(world.window_end + timedelta(minutes=15), keys=selected)
    _assert_success(retry)
    ledger = world.ledger(retry.run_id)
    assert set(ledger) == {opps[0], opps[1]}
    assert {o: ledger[o].status for o in ledger} == dict.fromkeys(ledger, "success")
    assert {s["reference"] for s in world.maxio("subscriptions")} == {opps[0], opps[1]}
    posts = world.posts()
    assert posts == {"POST /subscriptions.json": 2}  # customers and price points: done before
    assert world.opportunities()[left]["Maxio_Provisioned__c"] is False
    assert xcom(retry, "find_opportunities")["found"] == 2

    # The one not selected is still due: the next scheduled window provisions it.
    later = world.run(world.window_end + timedelta(minutes=30))
    _assert_success(later)
    assert set(world.ledger(later.run_id)) == {left}
    assert world.opportunities()[left]["Maxio_Provisioned__c"] is True


@pytest.mark.parametrize(
    ("bad_id", "reason"),
    [("006Mx0000000001ZZZ", "checksum"), ("001Mx0000000001IAA", "prefix 006")],
    ids=["bad-checksum", "not-an-opportunity"],
)
def test_a_bad_key_is_refused_naming_it_before_any_query(
    sandbox: Any,
    monkeypatch: pytest.MonkeyPatch,
    sqlite_url: str,
    capfd: pytest.CaptureFixture[str],
    bad_id: str,
    reason: str,
):
    world = _world(sandbox, monkeypatch, sqlite_url, _specs("core"))
    world.admin("salesforce").reset_calls()
    dag_run = world.run(keys=[world.cpq.opportunity_ids[0], bad_id])
    assert task_states(dag_run)["find_opportunities"] == "failed"
    logged = capfd.readouterr().out
    assert "Param 'keys'" in logged
    assert bad_id in logged
    assert reason in logged
    assert [r for r in world.admin("salesforce").calls()["by_route"] if "query" in r] == []
    assert world.maxio("customers") == []
    with pytest.raises(Exception, match=r"keys|pattern"):
        world.run(keys=["006' OR Name != '"])
