"""What every crm_sync DAG shares: default task arguments, the common Params, pool names."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param

START_DATE = datetime(2026, 1, 1)  # noqa: DTZ001 - the timetable carries the zone

OWNER = "data-engineering"

POOLS = {
    "salesforce": "salesforce_api",
    "rapidpro": "rapidpro_api",
    "whatsapp": "whatsapp_api",
    "maxio": "maxio_api",
    "marketo": "marketo_api",
    "pipedrive": "pipedrive_api",
    "mobile_commons": "mobile_commons_api",
}
"""One Airflow pool per external API: bounds concurrent calls whatever the worker count."""


def default_args(**overrides: Any) -> dict[str, Any]:
    """Task defaults: retries with exponential backoff, a real owner, a sane timeout."""
    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=15),
        "execution_timeout": timedelta(hours=3),
    }
    args.update(overrides)
    return args


def common_params(**extra: Param) -> dict[str, Param]:
    """``dry_run`` and ``full_refresh``, which every DAG has, plus the DAG's own Params."""
    return {
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Read, stage and diff, and report what would change; write nothing to any target.",
        ),
        "full_refresh": Param(
            False,
            type="boolean",
            title="Full refresh",
            description="Diff against a fresh read of the target instead of the last synced state, "
            "repairing records edited by hand in the target.",
        ),
        **extra,
    }


def keys_param(what: str, *, pattern: str | None = None) -> Param:
    """The ``keys`` Param every DAG declares: re-send exactly these records (the dashboard's retry).

    Args:
        what: what a key is in this DAG, e.g. "Salesforce record ids".
        pattern: a JSON-schema pattern each key must match, checked before the run starts.
    """
    items: dict[str, Any] = {"type": "string"}
    if pattern:
        items["pattern"] = pattern
    return Param(
        [],
        type="array",
        items=items,
        title="Record keys",
        description=f"Re-send only these records ({what}); set by the CRM Sync dashboard's retry.",
    )
