"""The salesforce_maxio_billing part of the demo: closed-won opportunities billed in Maxio.

Seeds a few closed-won opportunities (one without a CASH product, one whose account lacks
billing data), runs the DAG for their window, runs it again (nothing new), then triggers it
for one opportunity the way the REST API would (``conf={"opportunity_id": ...}``).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from demo.airflow_local import run_succeeding, xcom
from demo.report import RunRow

DAG_ID = "salesforce_maxio_billing"
SERVICES: list[str] = ["salesforce", "maxio", "maxio_core"]


def prepare(sandbox: Any, *, opportunities: int = 5, tag: str = "Dm") -> Any:
    """Seed Salesforce CPQ records and Core contracts; return the generated world."""
    from crm_sync.integrations.maxio_billing.generator import CASH_PRODUCTS, OpportunitySpec, build_world

    specs = [OpportunitySpec(products=(CASH_PRODUCTS[i % 4],)) for i in range(max(opportunities - 2, 1))]
    specs += [OpportunitySpec(cash=False), OpportunitySpec(sparse_account=True)]
    world = build_world(specs=specs, seed=7, tag=tag)
    sandbox.admin("salesforce").seed(world.salesforce_seed())
    sandbox.admin("maxio_core").seed(world.core_seed())
    os.environ.update(sandbox.conn_env())
    return world


def window_end(sandbox: Any, opportunity_ids: list[str]) -> datetime:
    """The end of the 15-minute interval in which the opportunities were last modified."""
    records = sandbox.admin("salesforce").state(object="Opportunity")["records"]
    wanted = set(opportunity_ids)
    latest = max(
        datetime.fromisoformat(r["LastModifiedDate"].replace("Z", "+00:00"))
        for r in records
        if r["Id"] in wanted
    )
    floor = latest.replace(minute=latest.minute - latest.minute % 15, second=0, microsecond=0)
    return floor.astimezone(UTC) + timedelta(minutes=15)


def run(sandbox: Any, workdir: Path, *, opportunities: int = 5) -> tuple[list[RunRow], str]:
    """The window's first run, the same window again, and a manual trigger for one opportunity."""
    if "AIRFLOW_CONN_CRM_SYNC_STAGING" not in os.environ:
        os.environ["AIRFLOW_CONN_CRM_SYNC_STAGING"] = json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{workdir / 'staging.db'}"}}
        )
    world = prepare(sandbox, opportunities=opportunities)
    end = window_end(sandbox, world.opportunity_ids)
    plan = [
        ("1 closed-won window", end, None),
        ("2 same window again", end, None),
        (
            "3 trigger one opportunity",
            end + timedelta(minutes=15),
            {"opportunity_id": world.opportunity_ids[0]},
        ),
    ]
    rows = []
    for label, logical_date, conf in plan:
        dag_run, elapsed = run_succeeding(DAG_ID, label, logical_date=logical_date, conf=conf)
        rows.append(RunRow.from_summary(label, "success", xcom(dag_run, "report") or {}, elapsed))
    maxio = sandbox.admin("maxio").state()["counts"]
    note = (
        f"{len(world.opportunity_ids)} closed-won opportunities (1 without a CASH product, 1 account without "
        f"billing data): Maxio holds {maxio['customers']} customers, {maxio['subscriptions']} subscriptions"
    )
    return rows, note
