"""The marketo_pipedrive_sync part of the demo: one change on each side, synced across, no echo.

Run 1: a lead created in Marketo becomes a Pipedrive person (with its organization), and a
person added in Pipedrive's app becomes a Marketo lead; the cross-ids are written back.
Run 2: a title edited in Pipedrive reaches the lead. Run 3: nothing changed since; every
record the earlier runs wrote comes back as a change and is recognised as this sync's own
(skipped, ``ECHO``), so nothing is written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from demo.airflow_local import run_succeeding, xcom
from demo.report import RunRow

DAG_ID = "marketo_pipedrive_sync"
SERVICES = ["marketo", "pipedrive"]


def prepare(sandbox: Any) -> dict[str, int]:
    """A lead in Marketo (logged as New Lead) and a person added in Pipedrive's web app."""
    marketo, pipedrive = sandbox.admin("marketo"), sandbox.admin("pipedrive")
    # The person field the lead mapping writes besides the emulator's own `marketoid`.
    if not any(f["name"] == "Inferred country" for f in pipedrive.state(fields="persons")):
        pipedrive.seed({"fields": {"persons": [{"name": "Inferred country", "field_type": "varchar"}]}})
    lead = {
        "email": "jo.doe@example.com",
        "firstName": "Jo",
        "lastName": "Doe",
        "title": "CTO",
        "company": "Example Ltd",
        "website": "https://www.example.com",
        "leadCountry": "fr",
        "leadOwnerFirstName": "Sandbox",
        "leadOwnerLastName": "Admin",
        "toDelete": False,
    }
    lead_id = marketo.seed({"leads": [lead], "log_activities": True})["leads"][0]
    person = {"name": "Ann Lee", "emails": [{"value": "ann.lee@example.com", "primary": True}]}
    pipedrive.action("ui_change", {"entity": "persons", "action": "create", "changes": person})
    return {"lead_id": lead_id}


def _run(label: str) -> RunRow:
    # The window ends just after now, so it holds the changes just made.
    when = datetime.now(UTC) + timedelta(seconds=2)
    dag_run, seconds = run_succeeding(DAG_ID, label, logical_date=when)
    return RunRow.from_summary(label, "success", xcom(dag_run, "report") or {}, seconds)


def run(sandbox: Any, workdir: Path) -> tuple[list[RunRow], str]:
    """A change on each side, a title edited in Pipedrive, then a run that writes nothing."""
    del workdir  # nothing to write locally: both systems are emulators
    prepare(sandbox)
    rows = [_run("1 a lead and a person, one on each side")]
    pipedrive = sandbox.admin("pipedrive")
    ann = next(p for p in pipedrive.state(entity="persons") if p["name"] == "Ann Lee")
    pipedrive.action(
        "ui_change",
        {"entity": "persons", "action": "change", "id": ann["id"], "changes": {"job_title": "CFO"}},
    )
    rows.append(_run("2 a title edited in Pipedrive"))
    rows.append(_run("3 no change: echoes only"))
    note = (
        "two-way: 'skipped' counts the echoes of this sync's own writes (nothing travels back); "
        "cross-ids pipedriveId/marketoid written back"
    )
    return rows, note
