"""The Salesforce <-> Mobile Commons part of the demo: a night, a window of opt-ins, another night.

Seeds generated Contacts in the Salesforce emulator and two campaigns in the Mobile Commons
emulator, runs ``salesforce_mobile_commons_nightly``, then lets a few subscribers text STOP
and a new one opt in on the web, runs ``mobile_commons_salesforce_optins`` for the current
5-minute window, and runs the nightly sync again. Each row's counts come from the
synchronization report of the last 24 hours, so later rows include earlier activity.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from demo.airflow_local import run_succeeding, xcom
from demo.report import RunRow

SERVICES = ["salesforce", "mobile_commons"]
NIGHTLY = "salesforce_mobile_commons_nightly"
OPTINS = "mobile_commons_salesforce_optins"


def _row(label: str, dag_id: str, when: datetime) -> RunRow:
    dag_run, seconds = run_succeeding(dag_id, label, logical_date=when)
    state = str(dag_run.state)
    counts = (xcom(dag_run, "synchronization_report") or {}).get("counts", {})
    summary = xcom(dag_run, "report") or {}
    return RunRow(
        label=label,
        state=state,
        created=int(counts.get("created", 0)),
        updated=int(counts.get("updated", 0)),
        claimed=0,
        unchanged=int(counts.get("no_new_changes", 0)),
        rejected=int(summary.get("rejected", 0)),
        skipped=sum(int(v) for k, v in counts.items() if k not in {"created", "updated", "no_new_changes"}),
        api_calls=sum(int(v) for v in (summary.get("api_calls") or {}).values()),
        seconds=seconds,
    )


def run(sandbox: Any, workdir: Path, *, contacts: int = 300, **_: Any) -> tuple[list[RunRow], str]:
    """Three runs; returns the rows and a one-line note."""
    from crm_sync.integrations.mobile_commons.generator import contacts as generate

    sf, mc = sandbox.admin("salesforce"), sandbox.admin("mobile_commons")
    mc.seed(
        {
            "campaigns": [
                {"id": 1, "name": "News", "opt_in_paths": [{"id": 101, "name": "Web"}]},
                {"id": 2, "name": "Volunteers", "opt_in_paths": [{"id": 202, "name": "Volunteers"}]},
            ]
        }
    )
    sf.seed({"objects": {"Contact": generate(contacts, seed=9)}})
    config = {"default_opt_in_path_id": 101, "group_paths": {"Volunteers": 202}, "report_dir": str(workdir)}
    os.environ["AIRFLOW_VAR_MOBILE_COMMONS_SYNC_CONFIG"] = json.dumps(config)
    now = datetime.now(UTC)
    night = now.replace(hour=3, minute=0, second=0, microsecond=0) - timedelta(days=1)
    rows = [_row("1 nightly: first sync", NIGHTLY, night)]

    stopped = [p["phone_number"] for p in mc.state(kind="profiles")[:5]]
    for phone in stopped:
        mc.action("opt_out", {"phone_number": phone})
    conn = sandbox.connection("mobile_commons_default")
    requests.post(
        f"{sandbox.url('mobile_commons')}/api/profile_update",
        data={"phone_number": "+14155550123", "email": "web.signup@example.org", "opt_in_path_id": "101"},
        auth=(conn["login"], conn["password"]),
        timeout=30,
    )
    window_end = datetime.now(UTC).replace(second=0, microsecond=0)
    window_end += timedelta(minutes=5 - window_end.minute % 5)  # the window holding "now"
    rows.append(_row("2 opt-ins: 5 STOPs, 1 web sign-up", OPTINS, window_end))
    rows.append(_row("3 nightly: next night", NIGHTLY, night + timedelta(days=1)))
    note = (
        f"{contacts} generated Salesforce Contacts; counts are the synchronization report's last "
        f"24 hours (reports under {workdir})"
    )
    return rows, note
