"""salesforce_maxio_billing at volume: provisioning N closed-won opportunities, then a re-run.

Runs the real DAG with ``dag.test()`` against the Salesforce, Maxio and Maxio Core emulators
(in this process) and counts the calls each emulator served. The original made about 12
Salesforce queries, 2-3 Maxio calls per product and 2 Core/warehouse steps per opportunity.

    .venv/bin/python benchmarks/bench_maxio_billing.py [--opportunities 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import emit, fresh_airflow  # also puts the project on sys.path

SERVICES = ("salesforce", "maxio", "maxio_core")


def main() -> int:
    """Run the measured DAG runs and print (or write) a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--opportunities", type=int, default=200)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = fresh_airflow("maxio")
    from crm_sync.integrations.maxio_billing.generator import CASH_PRODUCTS, OpportunitySpec, build_world
    from demo.airflow_local import run_dag, xcom
    from demo.maxio_billing import window_end
    from sandbox.testing import start_sandbox

    rows = []
    n = args.opportunities
    # A mix of one- and two-product opportunities (the 2nd product bills through another component).
    specs = [
        OpportunitySpec(products=(CASH_PRODUCTS[0],) if i % 2 else (CASH_PRODUCTS[1], CASH_PRODUCTS[3]))
        for i in range(n)
    ]
    world = build_world(specs=specs, seed=1, tag="Bn")
    with start_sandbox(list(SERVICES), tmp_dir=work / "sandbox") as sandbox:
        os.environ.update(sandbox.conn_env())
        sandbox.admin("salesforce").seed(world.salesforce_seed())
        sandbox.admin("maxio_core").seed(world.core_seed())
        end = window_end(sandbox, world.opportunity_ids)
        for label in ("provision", "re-run (nothing new)"):
            for service in SERVICES:
                sandbox.admin(service).reset_calls()
            started = time.perf_counter()
            dag_run = run_dag("salesforce_maxio_billing", logical_date=end, retries=0)
            seconds = time.perf_counter() - started
            summary = xcom(dag_run, "report") or {}
            calls = {service: sandbox.admin(service).calls()["total"] for service in SERVICES}
            done = int((summary.get("by_status") or {}).get("success", 0))
            rows.append((label, str(dag_run.state), done, calls, seconds))
        counts = sandbox.admin("maxio").state()["counts"]

    lines = [
        f"{n} closed-won opportunities ({n // 2} with one product, {n - n // 2} with two); staging on "
        f"SQLite; emulators in the same process. Maxio afterwards: {counts['customers']} customers, "
        f"{counts['subscriptions']} subscriptions, {counts['price_points'] - 6} price points.",
        "",
        "| run | state | provisioned | Salesforce calls | Maxio calls | Core calls | calls per opportunity "
        "| wall s | s per opportunity |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, state, done, calls, seconds in rows:
        total = sum(calls.values())
        cells = (
            label,
            state,
            f"{done}",
            f"{calls['salesforce']}",
            f"{calls['maxio']}",
            f"{calls['maxio_core']}",
            f"{total / n:.2f}",
            f"{seconds:.1f}",
            f"{seconds / n:.3f}",
        )
        lines.append("| " + " | ".join(cells) + " |")
    emit(lines, args.out)
    return 0 if all(r[1] == "success" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
