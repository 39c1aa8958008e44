"""
### GP Connect reports (S3) → WhatsApp check → RapidPro contacts and flow starts

Hourly import of the GP Connect daily report: the oldest `.xlsx` (or `.csv`) under
`s3://<bucket>/uploads/` not yet imported (one file per run by default, as the original).
Rows with `patients_tested_positive` = 1 become RapidPro contacts of the org's workspace;
a new contact is started on the org's `new_contact` flow, an existing one on `contact_update`
only when the row differs from its fields, with the row as the flow's params.

**Steps**: `discover_files` (S3 listing reconciled with the `file_import` table; resumes an
unfinished import first; checks the org's flows exist before anything is written) →
`stage_rows` (openpyxl read-only, values not formulas; sheet `GP Connect daily report` or the
first sheet; phones to E.164, dates to ISO 8601; headers must be contact fields; bad rows are
rejected on their own with the reason) → `diff_rows` (rows already done by an earlier run of
this import are skipped) → `push_rows` (WhatsApp contacts check in batches, contact lookup by
`tel:` then `whatsapp:` URN, create or add URNs, flow starts through the outbox: never twice
for one row) → `finish_imports` (a file is `imported` only when every kept row has an
outcome) → `report`.

**Params**: `dry_run` (read and stage, write nothing), `full_refresh` (re-check every row of
the file against RapidPro, even rows done by an earlier run of the import), `file_key`
(import this file now), `reprocess` (import it again although it was imported), `org`
(default `GP Connect`), `keys` (row keys `<import id>:<row number>`, set by the CRM Sync
dashboard's "retry these": the very file version of each import is read again and only those
rows go through stage, diff and push, in the import's org; a row rejected while reading, such
as a bad phone, is rejected again, a row that failed on a transient API error is re-sent, a
flow already started is never started again; a file replaced since is refused, its new version
being a new import; `file_import` keeps the import's own record), `config` (overrides of the
Variable `gpconnect_rapidpro_import_config`).

**Connections**: `aws_default`, `rapidpro_default`, `whatsapp_default` (per org in the
config), `crm_sync_staging`. Flows per org: `include/config/gpconnect.yaml` or the Variable.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from crm_sync.dag_support import POOLS, START_DATE, common_params, default_args, keys_param
from crm_sync.exceptions import FatalError
from crm_sync.integrations.gpconnect import importer as gpconnect
from crm_sync.integrations.gpconnect.retry import ROW_KEY_PATTERN
from crm_sync.operators.context import SyncRun
from crm_sync.operators.diff import DiffRecordsOperator
from crm_sync.operators.push import PushChangesOperator
from crm_sync.operators.report import ReportSyncOperator
from crm_sync.operators.stage import StageRecordsOperator

INTEGRATION = gpconnect.INTEGRATION
RAPIDPRO = POOLS["rapidpro"]

with DAG(
    dag_id="gpconnect_rapidpro_import",
    description="GP Connect reports in S3 -> WhatsApp check -> RapidPro contacts and flow starts",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    doc_md=__doc__,
    tags=["crm_sync", "rapidpro", "whatsapp", "gpconnect"],
    params=common_params(
        file_key=Param(
            "",
            type=["null", "string"],
            title="File key",
            description="Import this S3 key now (e.g. uploads/report-2026-11-25.xlsx) "
            "instead of the oldest new file.",
        ),
        reprocess=Param(
            False,
            type="boolean",
            title="Reprocess",
            description="Import the file again even though it was imported "
            "(flows start only where contacts differ).",
        ),
        org=Param(
            "", type=["null", "string"], title="Org", description="The organisation (default: GP Connect)."
        ),
        keys=keys_param("rows as <import id>:<row number>", pattern=f"^{ROW_KEY_PATTERN.pattern}$"),
        config=Param({}, type="object", title="Config overrides", description="Keys of GpConnectConfig."),
    ),
) as dag:
    common = {"integration": INTEGRATION}

    @task(task_id=gpconnect.DISCOVER_TASK, pool=RAPIDPRO)
    def discover_files() -> dict:
        """Pick this run's files (resumed imports first, then the oldest new one)."""
        try:
            return gpconnect.discover(SyncRun.from_context(get_current_context(), INTEGRATION))
        except FatalError as exc:
            raise AirflowFailException(str(exc)) from exc  # retrying cannot fix configuration

    stage_rows = StageRecordsOperator(
        task_id="stage_rows",
        entity=gpconnect.ENTITY,
        extract=gpconnect.row_records,
        key_field=gpconnect.KEY,
        pool=RAPIDPRO,
        **common,
    )
    diff_rows = DiffRecordsOperator(
        task_id="diff_rows",
        entity=gpconnect.ENTITY,
        snapshot=gpconnect.no_snapshot,
        detect_deletes=False,
        pool=RAPIDPRO,
        **common,
    )
    push_rows = PushChangesOperator(
        task_id="push_rows",
        entity=gpconnect.ENTITY,
        pusher=gpconnect.row_pusher,
        actions=("create", "update"),
        chunk_size=500,
        pool=RAPIDPRO,
        **common,
    )

    @task(task_id="finish_imports", pool=RAPIDPRO)
    def finish_imports() -> dict:
        """Mark files imported when every kept row has an outcome; fail on a rejected file."""
        result = gpconnect.finish(SyncRun.from_context(get_current_context(), INTEGRATION))
        failed = [f"{f['file_key']}: {f['error']}" for f in result["files"] if f["status"] == "failed"]
        if failed:
            raise AirflowFailException("file(s) not imported: " + "; ".join(failed))
        return result

    report = ReportSyncOperator(task_id="report", push_task_ids=["push_rows"], max_reject_ratio=0.2, **common)

    discover_files() >> stage_rows >> diff_rows >> push_rows >> finish_imports() >> report
