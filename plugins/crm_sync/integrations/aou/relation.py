"""Staging-side tables of the AOU sync: the contact/journey relation and the seed's log views."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from crm_sync.sync.schema import begin_write, staged_record

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

metadata = sa.MetaData()

contact_journey_relation = sa.Table(
    "contact_journey_relation",
    metadata,
    sa.Column("Contact_Id", sa.String(18), nullable=False),
    sa.Column("PMI_Id", sa.String(64), primary_key=True),
    sa.Column("Journey_Id", sa.String(18), nullable=False),
)
"""The seed's table: which journey belongs to which participant, rebuilt from Salesforce each run."""

_KEY = "HP_PMI_ID__c"


def rebuild_relation(engine: Engine, rows: Iterable[tuple[str, str, str]], *, chunk_size: int = 5000) -> int:
    """Replace the relation with ``(contact_id, pmi_id, journey_id)`` rows; returns the row count.

    Runs in one transaction, so readers never see it half-built. A participant with several
    journeys keeps the first one Salesforce returned (the seed's merge did the same).
    """
    metadata.create_all(engine, checkfirst=True)
    seen: set[str] = set()
    count = 0
    with begin_write(engine) as conn:
        conn.execute(contact_journey_relation.delete())
        batch: list[dict[str, str]] = []
        for contact_id, pmi_id, journey_id in rows:
            if pmi_id in seen:
                continue
            seen.add(pmi_id)
            batch.append({"Contact_Id": contact_id, "PMI_Id": pmi_id, "Journey_Id": journey_id})
            if len(batch) >= chunk_size:
                conn.execute(contact_journey_relation.insert(), batch)
                count += len(batch)
                batch = []
        if batch:
            conn.execute(contact_journey_relation.insert(), batch)
            count += len(batch)
    return count


def journey_ids(engine: Engine) -> dict[str, str]:
    """PMI ID -> journey Id, from the relation."""
    metadata.create_all(engine, checkfirst=True)
    with engine.connect() as conn:
        relation = contact_journey_relation
        rows = conn.execute(sa.select(relation.c.PMI_Id, relation.c.Journey_Id))
        # Not dict(rows): a result has .keys(), so dict() would treat it as a mapping.
        return {pmi_id: journey_id for pmi_id, journey_id in rows}


def withdrawn_keys(engine: Engine, *, run_id: str, integration: str) -> set[str]:
    """PMI IDs whose staged journey in this run says the participant withdrew."""
    query = sa.select(staged_record.c.key, staged_record.c.payload).where(
        staged_record.c.run_id == run_id,
        staged_record.c.integration == integration,
        staged_record.c.entity == "journey",
        staged_record.c.payload.is_not(None),
    )
    withdrawn: set[str] = set()
    with engine.connect() as conn:
        for key, payload in conn.execute(query):
            status = json.loads(payload).get("HP_Withdrawal_Status__c")
            if str(status).strip() in {"1", "True", "true"}:
                withdrawn.add(key)
    return withdrawn


# ---- the seed's log tables, as views over the ledger ---------------------------------------------

_ACTION_LABELS = {"create": "Create", "update": "Update", "claim": "Claim", "delete": "Delete"}


def _json_text(engine: Engine, column: sa.ColumnElement[str], field: str) -> sa.ColumnElement[str]:
    dialect = engine.dialect.name
    if dialect == "postgresql":
        return sa.cast(column, sa.JSON)[field].as_string()
    if dialect == "mssql":
        return sa.func.JSON_VALUE(column, f"$.{field}")
    return sa.func.json_extract(column, f"$.{field}")


def _log_select(engine: Engine, entity: str, id_label: str, *, names: bool) -> sa.Select:
    from crm_sync.sync.schema import sync_log

    label = sa.case(
        *((sync_log.c.action == action, text) for action, text in _ACTION_LABELS.items()),
        else_=sync_log.c.action,
    )
    success = sa.case((sync_log.c.status == "success", 1), else_=0)
    error = sa.case(
        (
            sync_log.c.status != "success",
            sa.literal("Error message:") + sa.func.coalesce(sync_log.c.message, ""),
        ),
        else_=sa.null(),
    )
    key_column = sync_log.c.target_id if id_label == "Journey_Id" else sync_log.c.key
    columns: list[sa.ColumnElement] = [key_column.label(id_label)]
    source = sync_log
    if names:
        staged = staged_record.alias("staged")
        source = sync_log.outerjoin(
            staged,
            sa.and_(
                staged.c.run_id == sync_log.c.run_id,
                staged.c.integration == sync_log.c.integration,
                staged.c.entity == sync_log.c.entity,
                staged.c.key == sync_log.c.key,
            ),
        )
        columns += [
            _json_text(engine, staged.c.payload, "LastName").label("LastName"),
            _json_text(engine, staged.c.payload, "FirstName").label("FirstName"),
        ]
    else:
        columns.append(sync_log.c.key.label("PMI_Id"))
    columns += [
        label.label("Action"),
        success.label("Success"),
        error.label("Error"),
        sync_log.c.logged_at.label("Last_Modified_Time"),
        sync_log.c.run_id.label("Run_Id"),
    ]
    return (
        sa.select(*columns)
        .select_from(source)
        .where(sync_log.c.integration == "aou_salesforce_sync", sync_log.c.entity == entity)
    )


def create_log_views(engine: Engine) -> None:
    """Create ``contact_log`` and ``journey_log`` (the seed's columns) over ``sync_log``.

    Views, not tables: the ledger stays the one record of what happened, and the names in
    ``contact_log`` come from the staged payload rather than a second copy of personal data.
    """
    views = {
        "contact_log": _log_select(engine, "contact", "PMI_ID", names=True),
        "journey_log": _log_select(engine, "journey", "Journey_Id", names=False),
    }
    create = "CREATE OR ALTER VIEW" if engine.dialect.name == "mssql" else "CREATE VIEW"
    with begin_write(engine) as conn:
        for name, select in views.items():
            sql = select.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
            if engine.dialect.name != "mssql":
                conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")
            conn.exec_driver_sql(f"{create} {name} AS {sql}")
