"""Which integrations exist and which DAG runs each one.

Integrations are read from the ledger (every ``sync_run.integration``), so a new one shows up
as soon as it has run once. The map below only names the DAG of integrations whose DAG id
differs from the integration name or that have not run yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from crm_sync.sync.schema import sync_run

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["KNOWN", "dag_id_for", "integrations"]

KNOWN: dict[str, str] = {
    "aou_salesforce_sync": "aou_salesforce_sync",
    "gpconnect_rapidpro_import": "gpconnect_rapidpro_import",
    "salesforce_maxio_billing": "salesforce_maxio_billing",
    "marketo_pipedrive": "marketo_pipedrive_sync",
    "salesforce_mobile_commons_nightly": "salesforce_mobile_commons_nightly",
    "mobile_commons_salesforce_optins": "mobile_commons_salesforce_optins",
}
"""Integration -> DAG id of the integrations this project ships."""


def integrations(engine: Engine) -> list[str]:
    """Return every integration that has at least one run in the ledger, sorted."""
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(sync_run.c.integration).distinct()).scalars())


def dag_id_for(engine: Engine, integration: str) -> str | None:
    """Return the DAG that runs ``integration``: the ledger's latest ``dag_id``, else the map."""
    with engine.connect() as conn:
        recorded = conn.execute(
            sa.select(sync_run.c.dag_id)
            .where(sync_run.c.integration == integration, sync_run.c.dag_id.is_not(None))
            .order_by(sync_run.c.started_at.desc())
            .limit(1)
        ).scalar()
    return recorded or KNOWN.get(integration)
