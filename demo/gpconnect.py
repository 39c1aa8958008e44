"""The gpconnect_rapidpro_import part of the demo: generated reports uploaded to the sandbox bucket.

Three runs: a first report, the hourly run after it (nothing new), and a second report where
some rows changed and a few are broken (a bad phone, a duplicate phone).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from demo.airflow_local import run_succeeding, xcom
from demo.report import RunRow

DAG_ID = "gpconnect_rapidpro_import"
SERVICES = ["s3", "rapidpro", "whatsapp"]
NEW_FLOW = "6b0c8f0e-5b1a-4c1e-9a0d-000000000001"
UPDATE_FLOW = "6b0c8f0e-5b1a-4c1e-9a0d-000000000002"


def prepare(sandbox: Any, workdir: Path, *, patients: int) -> list[dict[str, Any]]:
    """Seed RapidPro with the org's fields and flows; upload the first report."""
    from crm_sync.integrations.gpconnect.generator import patient_rows, rapidpro_seed

    sandbox.admin("rapidpro").seed(rapidpro_seed(NEW_FLOW, UPDATE_FLOW))
    rows = patient_rows(patients, seed=7)
    upload(sandbox, workdir, "gpconnect-report-1.xlsx", rows)
    return rows


def upload(sandbox: Any, workdir: Path, name: str, rows: list[dict[str, Any]]) -> str:
    """Write a report workbook and put it under ``uploads/`` in the sandbox bucket."""
    from crm_sync.integrations.gpconnect.generator import write_xlsx
    from sandbox.s3 import BUCKET, s3_client

    path = write_xlsx(workdir / name, rows)
    key = f"uploads/{name}"
    s3_client(sandbox.url("s3")).upload_file(str(path), BUCKET, key)
    return key


def _run(label: str, hour: datetime) -> RunRow:
    dag_run, seconds = run_succeeding(DAG_ID, label, logical_date=hour)
    summary = xcom(dag_run, "report") or {}
    state = str(dag_run.state)
    outcomes = summary.get("outcomes") or {}
    push = xcom(dag_run, "push_rows") or {}
    return RunRow(
        label=label,
        state=state,
        created=int((outcomes.get("create") or {}).get("success", 0)),
        updated=int((outcomes.get("update") or {}).get("success", 0)),
        claimed=0,
        unchanged=int((outcomes.get("unchanged") or {}).get("skipped", 0)),
        rejected=int(summary.get("rejected", 0)),
        skipped=0,
        api_calls=int((push.get("api_calls") or {}).get("total", 0)),
        seconds=seconds,
    )


def run(sandbox: Any, workdir: Path, *, patients: int = 500) -> tuple[list[RunRow], str]:
    """First report, an hourly run with nothing new, a second report with changes and bad rows."""
    from crm_sync.integrations.gpconnect.generator import mutate_rows

    rows = prepare(sandbox, workdir, patients=patients)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    out = [_run("1 first report", hour)]
    out.append(_run("2 nothing new", hour + timedelta(hours=1)))
    changed_rows, changed = mutate_rows(rows, fraction=0.05, seed=8)
    changed_rows[0] = {**changed_rows[0], "telephone_no": "12345", "patients_tested_positive": 1}
    changed_rows[1] = {
        **changed_rows[1],
        "telephone_no": changed_rows[2]["telephone_no"],
        "patients_tested_positive": 1,
    }
    upload(sandbox, workdir, "gpconnect-report-2.xlsx", changed_rows)
    out.append(_run(f"3 second report, {len(changed)} rows changed", hour + timedelta(hours=2)))
    note = (
        f"{patients} generated rows per report (about 90% tested positive), flows started by RapidPro's "
        "emulator; 'unchanged' = contacts whose fields already matched; "
        "'rejected' = a bad and a duplicate phone"
    )
    return out, note
