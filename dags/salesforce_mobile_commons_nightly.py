"""
### Salesforce → Mobile Commons: nightly profile sync

Every night (hour from `CRM_SYNC_MOBILE_COMMONS_NIGHTLY_HOUR`, default 03:00 UTC) the
Salesforce records of the configured source (a SOQL query of `salesforce_object`, or the
report's CSV export URL, through `salesforce_default`) are mapped with the field-mapping table
`include/mappings/mobile_commons_profile.yaml` and sent to Mobile Commons `profile_update`
(`mobile_commons_default`), an upsert by phone (E.164). New subscribers join the default
opt-in path or their Salesforce group's path; a number that opted out is never re-subscribed.
The Salesforce id is written to the profile as its Constituent ID.

**Steps**: `stage_profiles` (source → mapped payloads; Conservative syncs keep opted-in
records only) → `diff_profiles` (row hashes against the last synced state) →
`classify_profiles` (records sharing a phone: Skipped Members; unchanged: No New Changes) →
`push_profiles` (one `profile_update` per record in parallel, within the daily quota shared
with `mobile_commons_salesforce_optins`; the rest waits for the next day) →
`synchronization_report` (last 24 h by the vendor's categories: task log + Markdown/HTML file)
→ `report` (the run's summary; fails the run when a step failed or too many were rejected).

**Params**: `dry_run`, `full_refresh`, `keys` (Salesforce ids, set by the CRM Sync dashboard's
"retry these": only those records are read and re-sent), `config` (overrides of the Variable
`mobile_commons_sync_config`: `sync_type`, `source`, `report_url`, `default_opt_in_path_id`,
`group_paths`, `default_first_name`, `daily_quota`, ...).

Activation: unpausing the DAG activates the sync; the first run is the next night's.
"""

from __future__ import annotations

import os

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task

from crm_sync.dag_support import POOLS, START_DATE, common_params, default_args, keys_param
from crm_sync.hooks.database import StagingHook
from crm_sync.integrations.mobile_commons import nightly
from crm_sync.integrations.mobile_commons.tasks import add_reports
from crm_sync.operators.context import SyncRun
from crm_sync.operators.diff import DiffRecordsOperator
from crm_sync.operators.push import PushChangesOperator
from crm_sync.operators.stage import StageRecordsOperator

INTEGRATION = nightly.INTEGRATION
NIGHTLY_HOUR = int(os.environ.get("CRM_SYNC_MOBILE_COMMONS_NIGHTLY_HOUR", "3"))

with DAG(
    dag_id="salesforce_mobile_commons_nightly",
    description="Salesforce records -> Mobile Commons profiles (opt-in paths, Constituent ID)",
    schedule=CronDataIntervalTimetable(f"0 {NIGHTLY_HOUR} * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    doc_md=__doc__,
    tags=["crm_sync", "salesforce", "mobile_commons"],
    params=common_params(
        keys=keys_param("Salesforce record ids"),
        config=Param({}, type="object", title="Config overrides", description="Keys of MobileCommonsConfig."),
    ),
) as dag:
    common = {"integration": INTEGRATION, "entity": nightly.ENTITY}

    stage_profiles = StageRecordsOperator(
        task_id="stage_profiles",
        extract=nightly.profile_records,
        key_field=nightly.KEY,
        pool=POOLS["salesforce"],
        **common,
    )
    diff_profiles = DiffRecordsOperator(task_id="diff_profiles", detect_deletes=False, **common)

    @task(task_id="classify_profiles")
    def classify_profiles() -> dict:
        """Mark records sharing a phone (Skipped Members) and unchanged ones (No New Changes)."""
        run = SyncRun.from_context(get_current_context(), INTEGRATION)
        return nightly.classify(run, StagingHook().get_engine())

    push_profiles = PushChangesOperator(
        task_id="push_profiles",
        pusher=nightly.profile_pusher,
        actions=("create", "update"),
        chunk_size=500,
        pool=POOLS["mobile_commons"],
        **common,
    )
    stage_profiles >> diff_profiles >> classify_profiles() >> push_profiles
    add_reports(push_profiles, INTEGRATION)
