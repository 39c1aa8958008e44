"""aou_salesforce_sync end to end at volume: a first load and a 1%-changed daily run.

Runs the real DAG with ``dag.test()`` against the Salesforce emulator (in this process, so
the peak RSS below includes the emulator and its in-memory Salesforce) and compares the
API calls with the original script's one REST call per contact.

    .venv/bin/python benchmarks/bench_aou.py [--participants 100000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import emit, fresh_airflow, peak_mb  # also puts the project on sys.path


def main() -> int:
    """Run the two measured DAG runs and print (or write) a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work = fresh_airflow("aou")
    import sqlalchemy as sa

    from crm_sync.integrations.aou.generator import generate_source, mutate_source
    from demo.airflow_local import run_dag, xcom
    from demo.aou import ACCOUNT_ID
    from sandbox.testing import start_sandbox

    rows = []
    with start_sandbox(["salesforce"], tmp_dir=work / "sandbox") as sandbox:
        os.environ.update(sandbox.conn_env())
        admin = sandbox.admin("salesforce")
        admin.config(bulk_processing_delay_s=0.05)
        users = admin.seed(
            {
                "objects": {
                    "Account": [{"Id": ACCOUNT_ID, "Name": "CUIMC"}],
                    "User": [
                        {"LastName": n, "Username": f"{n}@bench", "Email": f"{n}@b.test"} for n in "abcd"
                    ],
                }
            }
        )["ids"]["User"]
        config = dict(
            zip(("owner_id", "pardot_user_1", "pardot_user_2", "sovereign_user"), users, strict=True)
        )
        os.environ["AIRFLOW_VAR_AOU_SALESFORCE_SYNC_CONFIG"] = json.dumps(config)
        source_url = f"sqlite:///{work / 'source.db'}"
        os.environ["AIRFLOW_CONN_AOU_SOURCE"] = json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": source_url}}
        )
        source = sa.create_engine(source_url)
        day = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0) - timedelta(days=2)
        stats = generate_source(source, participants=args.participants, seed=1, day=day.date())
        for label, when, mutate in (("first load", day, 0.0), ("1% changed", day + timedelta(days=1), 0.01)):
            changed = mutate_source(source, fraction=mutate, seed=2, day=when.date()) if mutate else 0
            admin.reset_calls()
            started = time.perf_counter()
            dag_run = run_dag("aou_salesforce_sync", logical_date=when, retries=0)
            seconds = time.perf_counter() - started
            summary = xcom(dag_run, "report") or {}
            calls = admin.calls()["total"]
            outcomes = summary.get("outcomes", {})
            written = sum(
                v.get("success", 0) for a, v in outcomes.items() if a in {"create", "update", "claim"}
            )
            rows.append((label, str(dag_run.state), changed, written, calls, seconds, peak_mb()))

    contacts = stats.paired_organization
    lines = [
        f"{args.participants:,} generated participants, {contacts:,} in the paired organisation; "
        "staging on SQLite; Salesforce emulator in the same process.",
        "",
        "| run | state | source rows changed | records written (contacts + journeys) | API calls | "
        "original script's calls (1 per contact) | wall s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, state, changed, written, calls, seconds, peak in rows:
        original = contacts if label == "first load" else changed
        numbers = (f"{changed:,}", f"{written:,}", f"{calls:,}", f"{original:,}", f"{seconds:.1f}")
        cells = (label, state, *numbers)
        lines.append("| " + " | ".join(cells) + f" | {peak:.0f} |")
    emit(lines, args.out)
    return 0 if all(r[1] == "success" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
