"""
### Mobile Commons → Salesforce: opt-ins and opt-outs every 5 minutes

Reads the window's opt-in changes from Mobile Commons (`mobile_commons_default`): profiles
updated in `[data_interval_start, data_interval_end)` whose subscriptions were activated or
opted out in it, and `campaign_subscribers` with `activated_at`/`opted_out_at` in it, plus
profiles an earlier run deferred (quota) or failed. For each, in Salesforce
(`salesforce_default`):

- an **opt-in** with an email creates or updates the matching record with the opt-in field
  (default `Mobile_Subscriber__c`) true; a new record is an upsert on
  `Mobile_Commons_Profile_Id__c`, so a retry never duplicates it;
- an **opt-out** sets the field false on the matching record;
- the Salesforce id goes back to the profile as its Constituent ID.

Matching: the profile's Constituent ID, else its email; several matches are reported
(Skipped Members), never guessed; no email and no Constituent ID is No Export. Every change is
one `sync_log` row (profile id, Salesforce id, the value written).

**Steps**: `stage_optins` → `diff_optins` → `classify_optins` → `push_optins` (within the daily
quota shared with `salesforce_mobile_commons_nightly`) → `synchronization_report` → `report`.

**Params**: `dry_run`, `full_refresh`, `keys` (Mobile Commons profile ids, set by the CRM Sync
dashboard's "retry these": only those profiles are read, by their staged phone, and their
current opt-in state re-sent, whatever the window), `config` (overrides of
`mobile_commons_sync_config`).
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task

from crm_sync.dag_support import POOLS, START_DATE, common_params, default_args, keys_param
from crm_sync.hooks.database import StagingHook
from crm_sync.integrations.mobile_commons import nightly, optins
from crm_sync.integrations.mobile_commons.tasks import add_reports
from crm_sync.operators.context import SyncRun
from crm_sync.operators.diff import DiffRecordsOperator
from crm_sync.operators.push import PushChangesOperator
from crm_sync.operators.stage import StageRecordsOperator

INTEGRATION = optins.INTEGRATION

with DAG(
    dag_id="mobile_commons_salesforce_optins",
    description="Mobile Commons opt-ins / opt-outs -> Salesforce opt-in field, every 5 minutes",
    schedule=CronDataIntervalTimetable("*/5 * * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    doc_md=__doc__,
    tags=["crm_sync", "salesforce", "mobile_commons"],
    params=common_params(
        keys=keys_param("Mobile Commons profile ids"),
        config=Param({}, type="object", title="Config overrides", description="Keys of MobileCommonsConfig."),
    ),
) as dag:
    common = {"integration": INTEGRATION, "entity": optins.ENTITY}

    stage_optins = StageRecordsOperator(
        task_id="stage_optins",
        extract=optins.optin_records,
        key_field=optins.KEY,
        pool=POOLS["mobile_commons"],
        **common,
    )
    diff_optins = DiffRecordsOperator(task_id="diff_optins", detect_deletes=False, **common)

    @task(task_id="classify_optins")
    def classify_optins() -> dict:
        """Mark profiles whose opt-in state is unchanged since the last push (No New Changes)."""
        run = SyncRun.from_context(get_current_context(), INTEGRATION)
        return nightly.classify(run, StagingHook().get_engine(), optins.ENTITY)

    push_optins = PushChangesOperator(
        task_id="push_optins",
        pusher=optins.optin_pusher,
        actions=("create", "update"),
        chunk_size=200,
        pool=POOLS["salesforce"],
        **common,
    )
    stage_optins >> diff_optins >> classify_optins() >> push_optins
    add_reports(push_optins, INTEGRATION)
