"""The aou_salesforce_sync world of the distributed test: Salesforce seed and a PostgreSQL source."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tests.distributed.stack import Databases

PARTICIPANTS = 1200
DAY = datetime(2026, 11, 20, 6, tzinfo=UTC)
LOAD_DAY = (DAY + timedelta(days=5)).date()


def build(sandbox: Any, databases: Databases) -> dict[str, Any]:
    """Seed the Salesforce emulator, generate the source; return the env the workers need."""
    from crm_sync.integrations.aou.generator import generate_source

    admin = sandbox.admin("salesforce")
    admin.reset()
    ids = admin.seed(
        {
            "objects": {
                "Account": [
                    {"Id": "0010a00001Qa6gPAAR", "Name": "Columbia University Irving Medical Center"}
                ],
                "User": [
                    {
                        "LastName": name,
                        "Username": f"{name.lower()}@aou.test",
                        "Email": f"{name.lower()}@aou.test",
                    }
                    for name in ("Owner", "PardotOne", "PardotTwo", "Sovereign")
                ],
            }
        }
    )["ids"]["User"]
    config = {
        "owner_id": ids[0],
        "pardot_user_1": ids[1],
        "pardot_user_2": ids[2],
        "sovereign_user": ids[3],
        "readiness_threshold": 100,
    }
    databases.recreate("source")
    source_url = databases.url("source")
    source = sa.create_engine(source_url)
    generate_source(source, participants=PARTICIPANTS, seed=11, day=LOAD_DAY)
    env = {
        "AIRFLOW_CONN_AOU_SOURCE": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": source_url}}
        ),
        "AIRFLOW_VAR_AOU_SALESFORCE_SYNC_CONFIG": json.dumps(config),
    }
    return {"env": env, "source": source, "config": config}


def expected_participants(world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """PMI ID -> the Contact the source says Salesforce should hold."""
    from crm_sync.integrations.aou.config import AouConfig
    from crm_sync.integrations.aou.source import extract_contacts

    rows = extract_contacts(world["source"], config=AouConfig.from_mapping(world["config"]))
    return {r["HP_PMI_ID__c"]: r for r in rows}
