"""gpconnect_rapidpro_import and salesforce_maxio_billing on the CeleryExecutor stack.

Each is triggered through the REST API as users would (the billing DAG exactly as the README's
webhook replacement: ``logical_date: null`` and an ``opportunity_id``), and checked in the
sandbox as the in-process tests check it, plus the Celery evidence of every task.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.distributed.stack import CeleryStack
from tests.distributed.test_celery_aou import assert_ran_on_celery

pytestmark = [pytest.mark.distributed, pytest.mark.slow, pytest.mark.timeout(600)]


def _start_first_run(stack: CeleryStack, dag_id: str, **conf: Any) -> str:
    """Trigger the interval the scheduler would run next, then unpause (see the aou test)."""
    details = stack.wait_for_dag(dag_id)
    run_id = stack.trigger(dag_id, logical_date=details["next_dagrun_logical_date"], conf=conf)
    stack.unpause(dag_id)
    return run_id


def test_gpconnect_file_becomes_contacts_and_one_flow_start_each(
    stack: CeleryStack, sandbox: Any, tmp_path: Path
) -> None:
    from crm_sync.integrations.gpconnect.generator import patient_rows, rapidpro_seed, write_xlsx
    from sandbox.s3 import BUCKET, s3_client
    from tests.dags.test_gpconnect_rapidpro_import import NEW_FLOW, UPDATE_FLOW

    rapidpro = sandbox.admin("rapidpro")
    rapidpro.reset()
    rapidpro.seed(rapidpro_seed(NEW_FLOW, UPDATE_FLOW))
    rows = patient_rows(40, seed=5)
    path = write_xlsx(tmp_path / "report-dist.xlsx", rows)
    s3_client(sandbox.url("s3")).upload_file(str(path), BUCKET, "uploads/report-dist.xlsx")
    kept = [r for r in rows if str(r["patients_tested_positive"]) == "1"]

    dag_id = "gpconnect_rapidpro_import"
    run_id = _start_first_run(stack, dag_id)
    state = stack.wait_for_run(dag_id, run_id)
    assert state == "success", (stack.task_states(dag_id, run_id), stack.logs_tail())

    contacts = rapidpro.state(contacts="")["contacts"]
    assert len(contacts) == len(kept)
    starts = Counter(c["uuid"] for s in rapidpro.state(flow_starts="")["flow_starts"] for c in s["contacts"])
    assert set(starts.values()) == {1}, "a contact was started twice"
    assert len(starts) == len(kept)
    staging = sa.create_engine(stack.databases.url("staging"))
    with staging.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM file_import WHERE file_key = 'uploads/report-dist.xlsx'")
        ).scalars()
        assert set(status) == {"imported"}
    staging.dispose()
    assert_ran_on_celery(stack, dag_id, run_id)


def test_billing_trigger_for_one_opportunity_provisions_it_once(stack: CeleryStack, sandbox: Any) -> None:
    from crm_sync.integrations.maxio_billing.generator import CASH_PRODUCTS, OpportunitySpec, build_world

    for service in ("maxio", "maxio_core"):
        sandbox.admin(service).reset()
    cpq = build_world(specs=[OpportunitySpec(products=(CASH_PRODUCTS[0],))], seed=9)
    sandbox.admin("salesforce").seed(cpq.salesforce_seed())
    sandbox.admin("maxio_core").seed(cpq.core_seed())
    opportunity = cpq.opportunity_ids[0]

    dag_id = "salesforce_maxio_billing"
    stack.wait_for_dag(dag_id)
    # The README's call: no logical date, the opportunity in conf.
    run_id = stack.trigger(dag_id, logical_date=None, conf={"opportunity_id": opportunity})
    stack.unpause(dag_id)
    state = stack.wait_for_run(dag_id, run_id)
    assert state == "success", (stack.task_states(dag_id, run_id), stack.logs_tail())

    maxio = sandbox.admin("maxio")
    customers = maxio.state(kind="customers")["records"]
    subscriptions = maxio.state(kind="subscriptions")["records"]
    assert [c["reference"] for c in customers] == [cpq.account_of[opportunity]]
    assert [s.get("reference") for s in subscriptions] == [opportunity]
    contracts = sandbox.admin("maxio_core").state(kind="contracts")["records"]
    assert any(str(c.get("text_field2")) == str(subscriptions[0]["id"]) for c in contracts)
    deadline = time.monotonic() + 30
    opp: dict[str, Any] = {}
    while time.monotonic() < deadline:
        records = sandbox.admin("salesforce").state(object="Opportunity")["records"]
        opp = next(r for r in records if r["Id"] == opportunity)
        if opp.get("Maxio_Provisioned__c"):
            break
        time.sleep(1)
    assert opp.get("Maxio_Provisioned__c") is True
    assert_ran_on_celery(stack, dag_id, run_id)
