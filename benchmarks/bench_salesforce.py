"""Benchmark SalesforceSyncHook.upsert against the in-process Salesforce emulator.

Upserts 150, 2,000, 10,000 and 100,000 Contacts (fresh inserts, then the same records again
as updates for the smaller sizes) and reports, per size, the API the hook chose, the calls
the emulator counted (writes, Bulk polls, everything) and the wall time.

Usage: ``.venv/bin/python benchmarks/bench_salesforce.py [--sizes 150,2000] [--out FILE]``
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="crm-sync-bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from crm_sync.hooks.salesforce import SalesforceSyncHook  # noqa: E402
from sandbox.testing import start_sandbox  # noqa: E402

SIZES = (150, 2_000, 10_000, 100_000)


def contacts(n: int) -> list[dict[str, Any]]:
    """``n`` Contacts keyed by HP_PMI_ID__c, with a few typical fields."""
    return [
        {
            "HP_PMI_ID__c": f"P{i:09d}",
            "LastName": f"Last{i}",
            "FirstName": "Ann",
            "Email": f"p{i}@example.org",
            "MailingCity": "New York",
            "DV_Enrollment__c": i % 2 == 0,
            "Birthdate": "1980-02-29",
        }
        for i in range(n)
    ]


def route(by_route: dict[str, int], method: str, path: str) -> int:
    """Calls the emulator counted on one route template under /services/data/vXX.X/."""
    return by_route.get(f"{method} /services/data/v{{version}}/{path}", 0)


def run(size: int, admin: Any) -> dict[str, Any]:
    """Upsert ``size`` fresh Contacts; return the figures of one table row."""
    admin.reset()
    admin.config(automation=False)
    records = contacts(size)
    hook = SalesforceSyncHook()
    hook.describe("Contact")  # auth + describe are per run, not per record: keep them out of the timing
    admin.reset_calls()
    started = time.perf_counter()
    results = hook.upsert("Contact", "HP_PMI_ID__c", records)
    wall = time.perf_counter() - started
    calls = admin.calls()
    by_route = calls["by_route"]
    failed = sum(not r.success for r in results)
    if failed or len(results) != size:
        raise SystemExit(f"{size}: {failed} of {len(results)} records failed")
    bulk = route(by_route, "POST", "jobs/ingest") > 0
    return {
        "size": size,
        "api": "Bulk API 2.0" if bulk else "Collections",
        "writes": route(by_route, "PUT", "jobs/ingest/{job_id}/batches")
        if bulk
        else route(by_route, "PATCH", "composite/sobjects/{sobject}/{field}"),
        "polls": route(by_route, "GET", "jobs/ingest/{job_id}"),
        "reads": route(by_route, "GET", "jobs/ingest/{job_id}/{kind}"),
        "total": calls["total"],
        "wall": wall,
        "rate": size / wall,
    }


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table."""
    lines = [
        "| records | API | write calls | job polls | result reads | API calls in total "
        "| wall time (s) | records/s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['size']:,} | {r['api']} | {r['writes']} | {r['polls']} | {r['reads']} | {r['total']} "
        f"| {r['wall']:.2f} "
        f"| {r['rate']:,.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


def main() -> None:
    """Run the benchmark and print (or write) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated record counts")
    parser.add_argument("--out", type=Path, help="write the Markdown table here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    with (
        tempfile.TemporaryDirectory(prefix="crm-sync-bench-") as tmp,
        start_sandbox(["salesforce"], tmp_dir=Path(tmp)) as sandbox,
    ):
        os.environ.update(sandbox.conn_env())
        admin = sandbox.admin("salesforce")
        rows = []
        for size in sizes:
            rows.append(run(size, admin))
            print(f"{size:>7,} records: {rows[-1]['total']} calls, {rows[-1]['wall']:.2f}s", file=sys.stderr)
    text = "## Salesforce upsert (SalesforceSyncHook against the sandbox)\n\n" + table(rows) + "\n"
    text += (
        "\nAPI calls are the emulator's own count for the upsert (auth and describe, once per run, "
        "excluded). Bulk totals include job create, upload, close, polls and result reads.\n"
    )
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
