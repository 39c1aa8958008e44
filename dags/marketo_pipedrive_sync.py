"""
### Marketo ↔ Pipedrive two-way sync (seed 001)

Every 10 minutes, what changed in the window on each side is synced to the other:
Marketo leads → Pipedrive persons (and their organizations), deleted leads → persons
removed, a lead with a new interesting moment → a follow-up call; Pipedrive persons →
Marketo leads, organizations → companies, deals of the configured pipelines → opportunities
and the contact's opportunity role. Records left parked by a spent quota (Marketo 607,
Pipedrive's daily budget) are retried by every scheduled run until they go through.

**Steps**: `start` (ledger run row) → `marketo_to_pipedrive` (lead changes through the
activities paging token, Delete Lead activities, follow-ups once per lead and day through the
outbox) → `pipedrive_to_marketo` (v2 lists with `updated_since`) → `report`. Records are
matched by the original's cascades, only changed non-empty fields are written, cross-ids are
written back (`pipedriveId`, `marketoid`), and a write made by this sync coming back as a
change is skipped (`ECHO`). A field both sides changed since the last sync is settled by the
entity's rule (default: most recent change wins) and logged to `sync_log` with error_code
`CONFLICT`.

**Params**: `dry_run`; `full_refresh` (diff every record of the window against a fresh read
of the other side instead of skipping what the last sync left; still never echoes);
`keys` (ledger keys such as `person:2`, `lead:1001`, `activity:1001`: re-send exactly those
records, no window; the CRM Sync dashboard's "retry these"); for a manual run of one record
`entity` (lead, person, organization, deal), `entity_id`, `action` (`sync`, `delete` - a
deleted person marks its lead `toDelete` - or `activity`: a follow-up call in Pipedrive for a
lead, created once per lead and day through the outbox); `config` (`pipelines`: deal pipeline
names, `conflict_rules`: `{person|organization|deal: latest|marketo|pipedrive}`).

**Webhooks**: Pipedrive webhooks v2 posted to `/crm-sync-webhooks/pipedrive/events` (served
by the Airflow API server, basic auth = connection `pipedrive_webhook`) queue a run with
`{entity, entity_id, action}`; an identical run still queued makes the event a duplicate.

**Connections**: `marketo_default`, `pipedrive_default`, `crm_sync_staging`,
`pipedrive_webhook` (receiver only).
Runs are serialised (`max_active_runs=1`), as the original's one-task queue.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, DeltaDataIntervalTimetable, Param, get_current_context, task

from crm_sync.dag_support import POOLS, START_DATE, common_params, default_args, keys_param
from crm_sync.hooks.database import StagingHook
from crm_sync.integrations.marketo_pipedrive import runner
from crm_sync.operators.context import SyncRun
from crm_sync.operators.report import ReportSyncOperator
from crm_sync.sync.schema import ensure_schema

INTEGRATION = runner.INTEGRATION

with DAG(
    dag_id="marketo_pipedrive_sync",
    description="Two-way Marketo <-> Pipedrive sync of leads, persons, companies and deals",
    schedule=DeltaDataIntervalTimetable(timedelta(minutes=10)),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    doc_md=__doc__,
    tags=["crm_sync", "marketo", "pipedrive"],
    params=common_params(
        entity=Param(
            None,
            type=["null", "string"],
            enum=[None, *sorted(runner.ENTITIES)],
            title="Entity",
            description="Sync one record of this kind instead of the window.",
        ),
        entity_id=Param(None, type=["null", "integer"], minimum=1, title="Entity id"),
        action=Param(
            "sync",
            type="string",
            enum=["sync", "delete", "activity"],
            title="Action",
            description="sync or delete the record; activity: a follow-up call for a lead.",
        ),
        keys=keys_param("person:2, lead:1001, ..."),
        config=Param({}, type="object", title="Config", description="pipelines, conflict_rules."),
    ),
) as dag:

    @task(task_id="start")
    def start() -> dict:
        """Record the run in the ledger (a retried task resets it to running)."""
        run = SyncRun.from_context(get_current_context(), INTEGRATION)
        engine = StagingHook().get_engine()
        ensure_schema(engine)
        run.record_start(engine)
        return {"run_id": run.run_id}

    @task(task_id="marketo_to_pipedrive", pool=POOLS["pipedrive"])
    def marketo_to_pipedrive() -> dict:
        """Leads changed or deleted in Marketo -> Pipedrive (counts only in XCom)."""
        run = SyncRun.from_context(get_current_context(), INTEGRATION)
        return runner.marketo_to_pipedrive(run, StagingHook().get_engine())

    @task(task_id="pipedrive_to_marketo", pool=POOLS["marketo"])
    def pipedrive_to_marketo() -> dict:
        """Persons, organizations and deals changed in Pipedrive -> Marketo (counts only)."""
        run = SyncRun.from_context(get_current_context(), INTEGRATION)
        return runner.pipedrive_to_marketo(run, StagingHook().get_engine())

    report = ReportSyncOperator(
        task_id="report",
        integration=INTEGRATION,
        push_task_ids=["marketo_to_pipedrive", "pipedrive_to_marketo"],
        max_reject_ratio=0.05,
    )

    start() >> marketo_to_pipedrive() >> pipedrive_to_marketo() >> report
