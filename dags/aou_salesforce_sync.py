"""
### AOU participants → Salesforce Contacts and journeys

Daily sync of the All of Us participant views in SQL Server (`aou_source`) to Salesforce
(`salesforce_default`): Contacts upserted on `HP_PMI_ID__c`, journeys (Opportunity) updated,
Pardot-created Contacts claimed instead of duplicated, withdrawals carried to the journey.

**Steps**: `wait_for_source` (the day's load has more rows than the readiness threshold) →
`stage_contacts` / `stage_journeys` (source views, typed as Salesforce stores them) →
`diff_contacts` / `diff_journeys` (row hashes against the last synced state, or against a
fresh Salesforce snapshot with `full_refresh`) → `claim_pardot_contacts` (a new participant
matching one Pardot Contact by email or phone plus SOUNDEX-equal names updates it; several
matches are reported, never guessed) → `push_contacts` (Collections or Bulk API 2.0) →
`rebuild_journey_relation` (Salesforce creates journeys; map PMI ID → journey Id) →
`push_journeys` (withdrawn participants: only the two withdrawal fields) → `report`.

**Params**: `dry_run`, `full_refresh`, `limit` (at most N participants), `pmi_ids` (re-sync only
these participants), `keys` (the same, as set by the CRM Sync dashboard's "retry these"),
`config` (overrides of the Variable `aou_salesforce_sync_config`:
`account_id`, `paired_organization`, `readiness_threshold`, owner ids).

**Outputs**: the ledger (`sync_log`, `sync_run`) in `crm_sync_staging`, with the seed's
`contact_log` and `journey_log` views and the `contact_journey_relation` table.

Backfills: `airflow backfill create --dag-id aou_salesforce_sync --from-date ... --to-date ...`;
each day's window gates on that day's load.
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task

from crm_sync.dag_support import POOLS, START_DATE, common_params, default_args, keys_param
from crm_sync.hooks.database import StagingHook
from crm_sync.integrations.aou import salesforce_sync as aou
from crm_sync.operators.context import SyncRun
from crm_sync.operators.diff import DiffRecordsOperator
from crm_sync.operators.push import PushChangesOperator
from crm_sync.operators.report import ReportSyncOperator
from crm_sync.operators.sensors import SourceReadySensor
from crm_sync.operators.stage import StageRecordsOperator

INTEGRATION = aou.INTEGRATION
SF = POOLS["salesforce"]

with DAG(
    dag_id="aou_salesforce_sync",
    description="AOU participant views (SQL Server) -> Salesforce Contacts and journeys",
    schedule=CronDataIntervalTimetable("0 6 * * *", timezone="UTC"),
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    doc_md=__doc__,
    tags=["crm_sync", "salesforce", "aou"],
    params=common_params(
        limit=Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Limit",
            description="Sync at most N participants.",
        ),
        pmi_ids=Param(
            [],
            type="array",
            items={"type": "string"},
            title="PMI IDs",
            description="Re-sync only these participants (one per line). Deletes are never inferred.",
        ),
        keys=keys_param("PMI IDs"),
        config=Param({}, type="object", title="Config overrides", description="Keys of AouConfig."),
    ),
) as dag:
    common = {"integration": INTEGRATION}

    wait_for_source = SourceReadySensor(task_id="wait_for_source", ready=aou.source_ready, **common)

    stage_contacts = StageRecordsOperator(
        task_id="stage_contacts",
        entity="contact",
        extract=aou.contact_records,
        key_field=aou.KEY,
        pool=SF,
        **common,
    )
    stage_journeys = StageRecordsOperator(
        task_id="stage_journeys",
        entity="journey",
        extract=aou.journey_records,
        key_field=aou.KEY,
        pool=SF,
        **common,
    )
    diff_contacts = DiffRecordsOperator(
        task_id="diff_contacts",
        entity="contact",
        snapshot=aou.contact_snapshot,
        keys_param="pmi_ids",
        detect_deletes=False,
        pool=SF,
        **common,
    )
    diff_journeys = DiffRecordsOperator(
        task_id="diff_journeys",
        entity="journey",
        snapshot=aou.journey_snapshot,
        keys_param="pmi_ids",
        detect_deletes=False,
        pool=SF,
        **common,
    )

    @task(task_id="claim_pardot_contacts", pool=SF)
    def claim_pardot_contacts() -> dict:
        """Claim matching Pardot Contacts for new participants (reported, never guessed)."""
        run = SyncRun.from_context(get_current_context(), INTEGRATION)
        return aou.run_claim(run, StagingHook().get_engine())

    push_contacts = PushChangesOperator(
        task_id="push_contacts",
        entity="contact",
        pusher=aou.contact_pusher,
        actions=("create", "update"),
        pool=SF,
        **common,
    )

    @task(task_id="rebuild_journey_relation", pool=SF)
    def rebuild_journey_relation() -> dict:
        """Map PMI ID -> journey Id from Salesforce (it creates journeys with the Contact)."""
        run = SyncRun.from_context(get_current_context(), INTEGRATION)
        return aou.run_relation(run, StagingHook().get_engine())

    push_journeys = PushChangesOperator(
        task_id="push_journeys",
        entity="journey",
        pusher=aou.journey_pusher,
        actions=("create", "update"),
        pool=SF,
        **common,
    )
    report = ReportSyncOperator(
        task_id="report",
        push_task_ids=["claim_pardot_contacts", "push_contacts", "rebuild_journey_relation", "push_journeys"],
        max_reject_ratio=0.05,
        **common,
    )

    claim = claim_pardot_contacts()
    relation = rebuild_journey_relation()
    wait_for_source >> [stage_contacts, stage_journeys]
    stage_contacts >> diff_contacts >> claim >> push_contacts >> relation
    stage_journeys >> diff_journeys
    [relation, diff_journeys] >> push_journeys >> report
