"""gpconnect_rapidpro_import end to end at volume: one 10,000-row report, then the same with 5% changed.

Runs the real DAG with ``dag.test()`` against moto's S3 and the RapidPro and WhatsApp emulators
(all in this process, so the peak RSS includes them and their in-memory state).

    .venv/bin/python benchmarks/bench_gpconnect.py [--rows 10000] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import emit, fresh_airflow, peak_mb  # also puts the project on sys.path


def _api_calls(sandbox: object) -> int:
    total = 0
    for name in ("rapidpro", "whatsapp"):
        by_route = sandbox.admin(name).calls()["by_route"]  # type: ignore[attr-defined]
        total += sum(n for route, n in by_route.items() if "/_sandbox" not in route)
    return total


def main() -> int:
    """Run the measured DAG runs and print (or write) a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = fresh_airflow("gpconnect")
    from crm_sync.integrations.gpconnect.generator import mutate_rows
    from demo.airflow_local import run_dag, xcom
    from demo.gpconnect import SERVICES, prepare, upload
    from sandbox.testing import start_sandbox

    results = []
    with start_sandbox(SERVICES, tmp_dir=work / "sandbox") as sandbox:
        os.environ.update(sandbox.conn_env())
        rows = prepare(sandbox, work, patients=args.rows)
        kept = sum(1 for r in rows if str(r["patients_tested_positive"]) == "1")
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        changed_rows, changed = mutate_rows(rows, fraction=0.05, seed=3)
        runs = (("new report", None), ("5% of rows changed", changed_rows))
        for index, (label, upload_rows) in enumerate(runs):
            if upload_rows is not None:
                upload(sandbox, work, "gpconnect-report-2.xlsx", upload_rows)
            for name in ("rapidpro", "whatsapp"):
                sandbox.admin(name).reset_calls()
            started = time.perf_counter()
            dag_run = run_dag(
                "gpconnect_rapidpro_import", logical_date=hour + timedelta(hours=index), retries=0
            )
            seconds = time.perf_counter() - started
            summary = xcom(dag_run, "report") or {}
            outcomes = summary.get("outcomes") or {}
            calls = _api_calls(sandbox)
            starts = int((xcom(dag_run, "push_rows") or {}).get("api_calls", {}).get("flow_starts", 0))
            created = int((outcomes.get("create") or {}).get("success", 0))
            updated = int((outcomes.get("update") or {}).get("success", 0))
            results.append(
                (label, str(dag_run.state), kept, created, updated, starts, calls, seconds, peak_mb())
            )
    _ = changed
    lines = [
        f"{args.rows:,}-row .xlsx report ({kept:,} rows tested positive), staging on SQLite; S3 (moto), "
        "RapidPro and WhatsApp emulators in the same process.",
        "",
        "| run | state | rows kept | contacts created | contact_update starts | flow start calls | "
        "API calls (RapidPro + WhatsApp) | API calls per kept row | wall s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, state, rows_kept, created, updated, starts, calls, seconds, peak in results:
        per_row = calls / rows_kept if rows_kept else 0
        lines.append(
            f"| {label} | {state} | {rows_kept:,} | {created:,} | {updated:,} | {starts:,} | {calls:,} | "
            f"{per_row:.2f} | {seconds:.1f} | {peak:.0f} |"
        )
    emit(lines, args.out)
    return 0 if all(r[1] == "success" for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
