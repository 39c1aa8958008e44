"""The aou_salesforce_sync part of the demo: a synthetic SQL source synced to Salesforce three times."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from demo.airflow_local import run_succeeding, xcom
from demo.report import RunRow

DAG_ID = "aou_salesforce_sync"
SERVICES = ["salesforce"]
ACCOUNT_ID = "0010a00001Qa6gPAAR"


def prepare(sandbox: Any, workdir: Path, *, participants: int) -> dict[str, Any]:
    """Seed Salesforce and write the synthetic participant source; set the connections."""
    from crm_sync.integrations.aou.config import AouConfig
    from crm_sync.integrations.aou.generator import PardotMix, generate_pardot_contacts, generate_source

    salesforce = sandbox.admin("salesforce")
    users = salesforce.seed(
        {
            "objects": {
                "Account": [{"Id": ACCOUNT_ID, "Name": "Columbia University Irving Medical Center"}],
                "User": [
                    {
                        "LastName": name,
                        "Username": f"{name.lower()}@aou.demo",
                        "Email": f"{name.lower()}@aou.demo",
                    }
                    for name in ("Owner", "PardotOne", "PardotTwo", "Sovereign")
                ],
            }
        }
    )["ids"]["User"]
    config = dict(zip(("owner_id", "pardot_user_1", "pardot_user_2", "sovereign_user"), users, strict=True))
    source_url = f"sqlite:///{workdir / 'aou_source.db'}"
    source = sa.create_engine(source_url)
    stats = generate_source(source, participants=participants, seed=7, day=_day(3).date())
    pardot = generate_pardot_contacts(source, mix=PardotMix(), config=AouConfig.from_mapping(config), seed=7)
    # Salesforce assigns the ids (the generator's are placeholders without a valid checksum).
    salesforce.seed({"objects": {"Contact": [{k: v for k, v in c.items() if k != "Id"} for c in pardot]}})
    os.environ["AIRFLOW_CONN_AOU_SOURCE"] = json.dumps(
        {"conn_type": "generic", "extra": {"sqlalchemy_url": source_url}}
    )
    os.environ["AIRFLOW_VAR_AOU_SALESFORCE_SYNC_CONFIG"] = json.dumps(config)
    return {"source": source, "stats": stats, "pardot": len(pardot)}


def _day(offset: int) -> datetime:
    today = datetime.now(UTC).replace(hour=6, minute=0, second=0, microsecond=0)
    return today - timedelta(days=3 - offset)


def _run(label: str, day: datetime) -> RunRow:
    dag_run, seconds = run_succeeding(DAG_ID, label, logical_date=day)
    return RunRow.from_summary(label, "success", xcom(dag_run, "report") or {}, seconds)


def run(sandbox: Any, workdir: Path, *, participants: int) -> tuple[list[RunRow], str]:
    """First load, a run after ~2% of the source changed, and a run with no change."""
    from crm_sync.integrations.aou.generator import mutate_source

    prepared = prepare(sandbox, workdir, participants=participants)
    rows = [_run("1 first load", _day(0))]
    changed = mutate_source(prepared["source"], fraction=0.02, seed=8, day=_day(3).date())
    rows.append(_run(f"2 after {changed} source changes", _day(1)))
    rows.append(_run("3 no change", _day(2)))
    note = (
        f"{participants} generated participants ({prepared['stats'].paired_organization} in the paired "
        f"organisation), {prepared['pardot']} Pardot contacts already in Salesforce"
    )
    return rows, note
