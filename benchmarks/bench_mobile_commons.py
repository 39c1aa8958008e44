"""salesforce_mobile_commons_nightly at volume: a first night and an unchanged night.

Runs the real DAG with ``dag.test()`` against the Salesforce and Mobile Commons emulators (in
this process, so the peak RSS includes both emulators and their data), and reports wall time,
Mobile Commons calls per Salesforce record and peak RSS.

    .venv/bin/python benchmarks/bench_mobile_commons.py [--records 50000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import emit, fresh_airflow, peak_mb  # also puts the project on sys.path

SEED_CHUNK = 5000


def main() -> int:
    """Run the measured DAG runs and print (or write) a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = fresh_airflow("mc")
    config = {"default_opt_in_path_id": 101, "group_paths": {"Volunteers": 202}, "report_dir": str(work)}
    os.environ["AIRFLOW_VAR_MOBILE_COMMONS_SYNC_CONFIG"] = json.dumps(config)
    from crm_sync.integrations.mobile_commons.generator import contacts
    from demo.airflow_local import run_dag, xcom
    from sandbox.testing import start_sandbox

    rows = []
    with start_sandbox(["salesforce", "mobile_commons"], tmp_dir=work / "sandbox") as sandbox:
        os.environ.update(sandbox.conn_env())
        sf, mc = sandbox.admin("salesforce"), sandbox.admin("mobile_commons")
        mc.seed(
            {
                "campaigns": [
                    {"id": 1, "name": "News", "opt_in_paths": [{"id": 101, "name": "Web"}]},
                    {"id": 2, "name": "Volunteers", "opt_in_paths": [{"id": 202, "name": "Volunteers"}]},
                ]
            }
        )
        records = contacts(args.records, seed=5)
        for start in range(0, len(records), SEED_CHUNK):
            sf.seed({"objects": {"Contact": records[start : start + SEED_CHUNK]}})
        night = datetime.now(UTC).replace(hour=3, minute=0, second=0, microsecond=0) - timedelta(days=2)
        for label, when in (("first night", night), ("unchanged night", night + timedelta(days=1))):
            sf.reset_calls()
            mc.reset_calls()
            started = time.perf_counter()
            dag_run = run_dag("salesforce_mobile_commons_nightly", logical_date=when, retries=0)
            seconds = time.perf_counter() - started
            report = (xcom(dag_run, "synchronization_report") or {}).get("counts", {})
            mc_calls, sf_calls = mc.calls()["total"], sf.calls()["total"]
            written = int(report.get("created", 0)) + int(report.get("updated", 0))
            rows.append((label, str(dag_run.state), written, mc_calls, sf_calls, seconds, peak_mb()))
            os.environ["AIRFLOW_VAR_MOBILE_COMMONS_SYNC_CONFIG"] = json.dumps(config)
        profiles = mc.state()["counts"]["profiles"]

    lines = [
        f"{args.records:,} generated Salesforce Contacts ({profiles:,} profiles after the runs; ~3% without "
        "a phone, ~1% sharing one); staging on SQLite; both emulators in the same process. "
        "The synchronization report counts the last 24 hours, so the second row's written is cumulative.",
        "",
        "| run | state | profiles written (24 h) | Mobile Commons calls | calls per record | "
        "Salesforce calls | wall s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, state, written, mc_calls, sf_calls, seconds, peak in rows:
        per_record = mc_calls / args.records if args.records else 0.0
        cells = (
            label,
            state,
            f"{written:,}",
            f"{mc_calls:,}",
            f"{per_record:.3f}",
            f"{sf_calls:,}",
            f"{seconds:.1f}",
        )
        lines.append("| " + " | ".join(cells) + f" | {peak:.0f} |")
    emit(lines, args.out)
    return 0 if all(r[1] == "success" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
