from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from crm_sync.exceptions import FatalError
from crm_sync.sync.diff import compute_diff, iter_changes
from crm_sync.sync.hashing import row_hash
from crm_sync.sync.ledger import (
    OutcomeCounts,
    apply_outcomes,
    check_reject_ratio,
    finish_run,
    run_summary,
    start_run,
)
from crm_sync.sync.records import Action, Outcome, Status
from crm_sync.sync.schema import sync_log, sync_state
from crm_sync.sync.staging import make_engine, stage_records

RUN = "scheduled__2024-05-03T00:00:00+00:00"


@pytest.fixture
def engine(staging_url):
    engine = make_engine(staging_url)
    yield engine
    engine.dispose()


def _stage_and_diff(engine, records):
    stage_records(engine, run_id=RUN, integration="crm", entity="contact", records=records, key_field="Id")
    compute_diff(engine, run_id=RUN, integration="crm", entity="contact")
    return {
        change.key: change
        for page in iter_changes(engine, run_id=RUN, integration="crm", entity="contact")
        for change in page
    }


def _apply(engine, outcomes, **kwargs):
    return apply_outcomes(
        engine, run_id=RUN, integration="crm", entity="contact", outcomes=outcomes, **kwargs
    )


def _state(engine):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(sync_state.c.key, sync_state.c.row_hash, sync_state.c.target_id, sync_state.c.run_id)
        ).all()
    return {key: (digest, target_id, run_id) for key, digest, target_id, run_id in rows}


def _log(engine):
    with engine.connect() as conn:
        return sorted(
            conn.execute(
                sa.select(
                    sync_log.c.key,
                    sync_log.c.action,
                    sync_log.c.status,
                    sync_log.c.error_code,
                    sync_log.c.field,
                )
            ).all()
        )


def test_success_and_rejection_in_one_chunk(engine):
    changes = _stage_and_diff(engine, [{"Id": "a", "v": 1}, {"Id": "b", "v": 2}])
    outcomes = [
        Outcome.ok(changes["a"], target_id="003A"),
        Outcome.rejected(changes["b"], "INVALID_EMAIL_ADDRESS", "Email: invalid address", field="Email"),
    ]
    counts = _apply(engine, outcomes)
    assert counts == OutcomeCounts(success=1, rejected=1)
    assert _log(engine) == [
        ("a", "create", "success", None, None),
        ("b", "create", "rejected", "INVALID_EMAIL_ADDRESS", "Email"),
    ]
    assert _state(engine) == {"a": (row_hash({"Id": "a", "v": 1}), "003A", RUN)}


def test_applying_the_same_outcomes_twice_is_idempotent(engine):
    changes = _stage_and_diff(engine, [{"Id": f"k{i}", "v": i} for i in range(5)])
    outcomes = [Outcome.ok(changes[f"k{i}"], target_id=f"T{i}") for i in range(4)]
    outcomes.append(Outcome.failed(changes["k4"], "UNABLE_TO_LOCK_ROW"))
    _apply(engine, outcomes, chunk_size=2)
    state, log = _state(engine), _log(engine)
    assert _apply(engine, outcomes, chunk_size=3) == OutcomeCounts(success=4, failed=1)
    assert _state(engine) == state
    assert _log(engine) == log
    assert len(log) == 5


def test_hash_is_looked_up_from_staging_when_the_hook_omits_it(engine):
    changes = _stage_and_diff(engine, [{"Id": "a", "v": 1}])
    bare = Outcome(key="a", action=Action.CREATE, status=Status.SUCCESS, target_id="003A")
    _apply(engine, [bare])
    assert _state(engine)["a"][0] == changes["a"].row_hash


def test_next_run_sees_only_what_failed(engine):
    changes = _stage_and_diff(engine, [{"Id": "a"}, {"Id": "b"}, {"Id": "c"}])
    _apply(
        engine,
        [
            Outcome.ok(changes["a"], "T-a"),
            Outcome.parked(changes["b"]),
            Outcome.rejected(
                changes["c"], "REQUIRED_FIELD_MISSING", "LastName is required", field="LastName"
            ),
        ],
    )
    # The next run stages the same records: only the ones that did not succeed are pending.
    stage_records(
        engine,
        run_id="next",
        integration="crm",
        entity="contact",
        records=[{"Id": "a"}, {"Id": "b"}, {"Id": "c"}],
        key_field="Id",
    )
    assert compute_diff(engine, run_id="next", integration="crm", entity="contact").as_dict() == {
        "create": 2,
        "update": 0,
        "delete": 0,
        "unchanged": 1,
        "skip": 0,
    }


def test_deletes_and_updates_move_the_state(engine):
    with engine.begin() as conn:
        conn.execute(
            sync_state.insert(),
            [
                {
                    "integration": "crm",
                    "entity": "contact",
                    "key": "u",
                    "row_hash": "old",
                    "target_id": "T-u",
                },
                {
                    "integration": "crm",
                    "entity": "contact",
                    "key": "d",
                    "row_hash": "old",
                    "target_id": "T-d",
                },
                {
                    "integration": "crm",
                    "entity": "contact",
                    "key": "kept",
                    "row_hash": "old",
                    "target_id": "T-k",
                },
            ],
        )
    changes = _stage_and_diff(engine, [{"Id": "u", "v": 2}, {"Id": "kept", "v": 2}])
    assert {key: change.action for key, change in changes.items()} == {
        "d": Action.DELETE,
        "kept": Action.UPDATE,
        "u": Action.UPDATE,
    }
    _apply(
        engine,
        [
            Outcome.ok(changes["d"]),
            Outcome(key="u", action=Action.UPDATE, status=Status.SUCCESS),  # the API returned no id
            Outcome.failed(changes["kept"], "SERVER_UNAVAILABLE"),
        ],
    )
    state = _state(engine)
    assert set(state) == {"u", "kept"}
    assert state["u"] == (row_hash({"Id": "u", "v": 2}), "T-u", RUN)
    assert state["kept"] == ("old", "T-k", None)


def test_run_summary_and_reject_ratio(engine):
    start_run(engine, integration="crm", run_id=RUN, dag_id="crm_sync", dry_run=False, full_refresh=True)
    records = [{"Id": f"k{i}"} for i in range(8)] + [{"Id": None}, {"Id": "bad", "x": {1}}]
    changes = _stage_and_diff(engine, records)
    outcomes = [Outcome.ok(changes[f"k{i}"], f"T{i}") for i in range(5)]
    outcomes += [
        Outcome.rejected(changes[f"k{i}"], "DUPLICATE_VALUE", "Email: duplicate", field="Email")
        for i in (5, 6)
    ]
    outcomes.append(Outcome.failed(changes["k7"], "UNABLE_TO_LOCK_ROW"))
    _apply(engine, outcomes)

    summary = finish_run(
        engine,
        integration="crm",
        run_id=RUN,
        state="success",
        api_calls={"salesforce": 3},
        budget_left={"salesforce": 4997},
    )
    assert json.loads(json.dumps(summary)) == summary  # JSON-ready, goes to XCom
    assert summary == run_summary(engine, integration="crm", run_id=RUN)
    assert summary["planned"] == {"create": 8, "update": 0, "delete": 0, "unchanged": 0, "skip": 0}
    assert summary["outcomes"] == {"create": {"success": 5, "rejected": 2, "failed": 1}}
    assert summary["by_status"] == {"success": 5, "rejected": 2, "skipped": 0, "failed": 1, "parked": 0}
    assert (summary["quarantined"], summary["attempted"], summary["rejected"]) == (2, 10, 4)
    assert summary["errors"][0] == {"code": "DUPLICATE_VALUE", "count": 2, "sample_keys": ["k5", "k6"]}
    assert {error["code"] for error in summary["errors"]} == {
        "DUPLICATE_VALUE",
        "UNABLE_TO_LOCK_ROW",
        "MISSING_KEY",
        "UNSERIALISABLE",
    }
    assert (summary["state"], summary["dry_run"], summary["full_refresh"]) == ("success", False, True)
    assert summary["api_calls"] == {"salesforce": 3}
    assert summary["budget_left"] == {"salesforce": 4997}

    check_reject_ratio(summary, 0.4)  # 4 of 10
    with pytest.raises(FatalError, match="4 of 10 records rejected"):
        check_reject_ratio(summary, 0.3)


def test_reject_ratio_ignores_runs_that_attempted_nothing():
    check_reject_ratio({"attempted": 0, "rejected": 0}, 0.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        check_reject_ratio({}, 1.5)


def test_a_retried_start_keeps_one_run_row(engine):
    start_run(engine, integration="crm", run_id=RUN, dag_id="d", dry_run=True, full_refresh=False)
    finish_run(
        engine, integration="crm", run_id=RUN, state="failed", api_calls={}, budget_left={}, error="boom"
    )
    start_run(engine, integration="crm", run_id=RUN, dag_id="d", dry_run=True, full_refresh=False)
    summary = run_summary(engine, integration="crm", run_id=RUN)
    assert (summary["state"], summary["error"], summary["finished_at"], summary["dry_run"]) == (
        "running",
        None,
        None,
        True,
    )
