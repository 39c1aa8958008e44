"""marketo_pipedrive_sync at volume: many changed leads and deals in one 10-minute window.

Runs the real DAG once with ``dag.test()`` against the Marketo and Pipedrive emulators (in
this process, so the peak RSS includes both emulators), with their rate limits raised so the
figures show the sync's own cost, then a second run over the same window that must write
nothing (no echo). API calls are counted per route on each side and grouped by entity.

    .venv/bin/python benchmarks/bench_marketo_pipedrive.py [--leads 10000] [--deals 2000]
        [--persons 0] [--out FILE]

``--persons`` adds persons created in Pipedrive (with 50 organizations) in the same window:
the Pipedrive -> Marketo direction at volume.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import emit, fresh_airflow, peak_mb  # also puts the project on sys.path

PIPELINE = "NX Subscription (New and Upsell)"


def _by_entity(calls: dict[str, int], entities: tuple[str, ...]) -> Counter[str]:
    """API calls grouped by the entity their route names (admin routes left out)."""
    grouped: Counter[str] = Counter()
    for route, n in calls.items():
        if "_sandbox" in route:
            continue
        entity = next((e for e in entities if e in route.lower()), "other")
        grouped[entity] += n
    return grouped


def _seed(sandbox: Any, leads: int, deals: int, persons: int = 0) -> None:
    marketo, pipedrive = sandbox.admin("marketo"), sandbox.admin("pipedrive")
    marketo.config(rate_limit=1_000_000, daily_quota=100_000_000, max_concurrent=1_000)
    pipedrive.config(burst_limit=None, daily_token_budget=10**12, daily_write_limit=10**9)
    pipedrive.seed({"fields": {"persons": [{"name": "Inferred country", "field_type": "varchar"}]}})
    for start in range(0, leads, 1000):
        batch = [
            {
                "email": f"lead{i}@bench.example.com",
                "firstName": f"First{i}",
                "lastName": f"Last{i}",
                "title": "CTO" if i % 3 else "CFO",
                "company": f"Company {i % 500}",
                "website": f"https://www.company{i % 500}.example.com",
                "leadCountry": ("fr", "de", "us", "za")[i % 4],
                "leadOwnerFirstName": "Sandbox",
                "leadOwnerLastName": "Admin",
                "toDelete": False,
            }
            for i in range(start, min(start + 1000, leads))
        ]
        marketo.seed({"leads": batch, "log_activities": True})

    if persons:
        orgs = pipedrive.seed({"organizations": [{"name": f"Org {i}"} for i in range(50)]})["organizations"]
        for start in range(0, persons, 500):
            people = [
                {
                    "name": f"Person {i}",
                    "emails": [{"value": f"person{i}@bench.example.org", "primary": True}],
                    "job_title": "Buyer",
                    "org_id": orgs[i % len(orgs)],
                }
                for i in range(start, min(start + 500, persons))
            ]
            pipedrive.seed({"persons": people})

    from crm_sync.hooks.pipedrive import PipedriveHook

    pipeline = PipedriveHook().pipeline_ids([PIPELINE])[PIPELINE]
    for start in range(0, deals, 500):
        pipedrive.seed(
            {
                "deals": [
                    {
                        "title": f"Deal {i}",
                        "value": 1000 + i,
                        "currency": "EUR",
                        "pipeline_id": pipeline,
                        "expected_close_date": "2026-12-15",
                    }
                    for i in range(start, min(start + 500, deals))
                ]
            }
        )


def main() -> int:
    """Seed, run the DAG twice over one window, and write a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--deals", type=int, default=2_000)
    parser.add_argument("--persons", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = fresh_airflow("mp")
    from demo.airflow_local import run_succeeding, xcom
    from sandbox.testing import start_sandbox

    rows = []
    with start_sandbox(["marketo", "pipedrive"], tmp_dir=work / "sandbox") as sandbox:
        os.environ.update(sandbox.conn_env())
        _seed(sandbox, args.leads, args.deals, args.persons)
        when = datetime.now(UTC) + timedelta(seconds=5)
        for label in ("changed window", "same window again"):
            for name in ("marketo", "pipedrive"):
                sandbox.admin(name).reset_calls()
            started = time.perf_counter()
            dag_run, _ = run_succeeding("marketo_pipedrive_sync", label, logical_date=when)
            seconds = time.perf_counter() - started
            summary = xcom(dag_run, "report") or {}
            marketo = _by_entity(
                sandbox.admin("marketo").calls()["by_route"],
                ("identity", "leads", "companies", "opportunities", "activities"),
            )
            pipedrive = _by_entity(
                sandbox.admin("pipedrive").calls()["by_route"],
                ("persons", "organizations", "deals", "activities", "fields", "users", "pipelines"),
            )
            rows.append((label, summary, marketo, pipedrive, seconds, peak_mb()))

    lines = [
        f"{args.leads:,} new Marketo leads (500 companies), {args.deals:,} Pipedrive deals in "
        f"`{PIPELINE}`"
        + (f" and {args.persons:,} new Pipedrive persons (50 organizations)" if args.persons else "")
        + ", all in one window; emulators in the same process, their rate limits raised except "
        "Pipedrive's burst window (80 requests / 2 s, the client waits it out); staging on SQLite.",
        "",
        "| run | records written | skipped (echo etc.) | Marketo calls by entity | "
        "Pipedrive calls by entity | wall s | peak RSS MB |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for label, summary, marketo, pipedrive, seconds, peak in rows:
        outcomes = summary.get("outcomes", {})
        written = sum(v.get("success", 0) for a, v in outcomes.items() if a in {"create", "update", "delete"})
        skipped = sum(v.get("skipped", 0) for v in outcomes.values())
        mk = ", ".join(f"{k} {v:,}" for k, v in marketo.most_common()) or "0"
        pd = ", ".join(f"{k} {v:,}" for k, v in pipedrive.most_common()) or "0"
        lines.append(f"| {label} | {written:,} | {skipped:,} | {mk} | {pd} | {seconds:.1f} | {peak:.0f} |")
    emit(lines, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
