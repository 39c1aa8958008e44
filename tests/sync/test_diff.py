from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm_sync.exceptions import FatalError
from crm_sync.sync.diff import DiffCounts, compute_diff, diff_counts, iter_changes, stage_snapshot
from crm_sync.sync.hashing import row_hash
from crm_sync.sync.records import Action, Change
from crm_sync.sync.schema import snapshot_record, staged_diff, staged_record, sync_state
from crm_sync.sync.staging import make_engine, stage_records

RUN = "scheduled__2024-05-02T00:00:00+00:00"
ALL_ACTIONS = ("create", "update", "delete", "unchanged", "skip")


@pytest.fixture
def engine(staging_url):
    engine = make_engine(staging_url)
    yield engine
    engine.dispose()


def payload(key: str, version: int) -> dict[str, object]:
    return {"Id": key, "Email": f"{key}@example.org", "version": version}


def seed_state(engine, state: dict[str, int], *, entity: str = "contact") -> None:
    with engine.begin() as conn:
        for key, version in state.items():
            conn.execute(
                sync_state.insert().values(
                    integration="crm",
                    entity=entity,
                    key=key,
                    row_hash=row_hash(payload(key, version)),
                    target_id=f"T-{key}",
                    run_id="earlier",
                )
            )


def stage(engine, batch: dict[str, int], *, entity: str = "contact") -> None:
    records = [payload(key, version) for key, version in batch.items()]
    stage_records(engine, run_id=RUN, integration="crm", entity=entity, records=records, key_field="Id")


def changes(engine, actions=ALL_ACTIONS, chunk_size: int = 2000) -> dict[str, Change]:
    found: dict[str, Change] = {}
    for page in iter_changes(
        engine, run_id=RUN, integration="crm", entity="contact", actions=actions, chunk_size=chunk_size
    ):
        assert len(page) <= chunk_size
        for change in page:
            assert change.key not in found
            found[change.key] = change
    return found


def by_action(found: dict[str, Change]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = {action: set() for action in ALL_ACTIONS}
    for change in found.values():
        grouped[change.action.value].add(change.key)
    return grouped


def diff(engine, **kwargs) -> DiffCounts:
    return compute_diff(engine, run_id=RUN, integration="crm", entity="contact", **kwargs)


def test_create_update_delete_unchanged(engine):
    seed_state(engine, {"a": 1, "b": 1, "d": 1})
    seed_state(engine, {"z": 1}, entity="account")  # another entity: never deleted by this diff
    stage(engine, {"a": 1, "b": 2, "c": 1})
    assert diff(engine) == DiffCounts(create=1, update=1, delete=1, unchanged=1)
    found = changes(engine)
    assert by_action(found) == {
        "create": {"c"},
        "update": {"b"},
        "delete": {"d"},
        "unchanged": {"a"},
        "skip": set(),
    }
    assert found["b"] == Change(
        key="b",
        action=Action.UPDATE,
        payload=payload("b", 2),
        row_hash=row_hash(payload("b", 2)),
        target_id="T-b",
    )
    assert found["c"].target_id is None
    assert found["d"] == Change(key="d", action=Action.DELETE, payload=None, row_hash=None, target_id="T-d")
    assert list(changes(engine, actions=("create", "update", "delete"))) == ["b", "c", "d"]


def test_recomputing_gives_the_same_result(engine):
    seed_state(engine, {"a": 1, "d": 1})
    stage(engine, {"a": 2, "c": 1})
    first = diff(engine)
    assert diff(engine) == first == DiffCounts(create=1, update=1, delete=1)
    assert by_action(changes(engine))["delete"] == {"d"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(staged_diff)).scalar_one() == 1


def test_without_delete_detection(engine):
    seed_state(engine, {"a": 1, "d": 1})
    stage(engine, {"a": 1})
    assert diff(engine, detect_deletes=False) == DiffCounts(unchanged=1)
    assert diff(engine) == DiffCounts(unchanged=1, delete=1)
    assert diff(engine, detect_deletes=False) == DiffCounts(unchanged=1)  # earlier deletes are withdrawn


def test_keys_restrict_the_diff_and_never_infer_deletes(engine):
    seed_state(engine, {"a": 1, "b": 1, "d": 1})
    stage(engine, {"a": 2, "b": 2, "c": 1})
    assert diff(engine, keys=["b", "c", "missing"]) == DiffCounts(create=1, update=1, skip=1)
    assert by_action(changes(engine)) == {
        "create": {"c"},
        "update": {"b"},
        "delete": set(),
        "unchanged": set(),
        "skip": {"a"},
    }
    assert diff(engine) == DiffCounts(create=1, update=2, delete=1)  # a full diff afterwards


def test_pages_are_keyset_paginated_in_key_order(engine):
    batch = {f"k{i:03d}": 1 for i in range(23)}
    stage(engine, batch)
    diff(engine)
    pages = list(iter_changes(engine, run_id=RUN, integration="crm", entity="contact", chunk_size=5))
    assert [len(page) for page in pages] == [5, 5, 5, 5, 3]
    assert [change.key for page in pages for change in page] == sorted(batch)


def test_snapshot_diff_repairs_drift(engine):
    seed_state(engine, {"a": 1, "b": 1, "c": 1})  # the state believes all is in sync
    stage(engine, {"a": 1, "b": 1, "c": 1})
    stored = stage_snapshot(
        engine,
        run_id=RUN,
        integration="crm",
        entity="contact",
        rows=[
            ("a", row_hash(payload("a", 1)), "S-a"),
            ("b", row_hash(payload("b", 9)), "S-b"),  # edited by hand in the target
            ("x", "f" * 64, "S-x"),  # created by hand in the target
            ("b", "0" * 64, "S-dup"),  # a duplicate in the target: the first row wins
        ],
    )
    assert stored == 3
    assert diff(engine) == DiffCounts(unchanged=3)
    assert diff(engine, against="snapshot") == DiffCounts(create=1, update=1, delete=1, unchanged=1)
    found = changes(engine)
    assert by_action(found) == {
        "create": {"c"},
        "update": {"b"},
        "delete": {"x"},
        "unchanged": {"a"},
        "skip": set(),
    }
    assert (found["b"].target_id, found["x"].target_id, found["c"].target_id) == ("S-b", "S-x", None)


def test_delete_guard_refuses_and_writes_nothing(engine):
    seed_state(engine, {f"k{i}": 1 for i in range(10)})
    stage(engine, {"k0": 1})
    with pytest.raises(FatalError, match="9 of 10"):
        diff(engine, max_delete_ratio=0.5)
    assert diff_counts(engine, run_id=RUN, integration="crm", entity="contact") is None
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(staged_record)).scalar_one() == 1
    assert diff(engine, max_delete_ratio=0.95).delete == 9


def test_changes_of_an_undiffed_run_are_refused(engine):
    stage(engine, {"a": 1})
    with pytest.raises(FatalError, match="not diffed"):
        changes(engine)


def test_restaging_requires_a_new_diff(engine):
    stage(engine, {"a": 1})
    diff(engine)
    assert diff_counts(engine, run_id=RUN, integration="crm") == DiffCounts(create=1)
    stage(engine, {"a": 1})
    assert diff_counts(engine, run_id=RUN, integration="crm") is None


versions = st.dictionaries(st.sampled_from([f"k{i:02d}" for i in range(12)]), st.integers(0, 2), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prior=versions,
    batch=versions,
    noise=versions,
    detect_deletes=st.booleans(),
    against=st.sampled_from(["state", "snapshot"]),
)
def test_diff_matches_a_python_oracle(engine, prior, batch, noise, detect_deletes, against):
    with engine.begin() as conn:
        for table in (staged_record, staged_diff, sync_state, snapshot_record):
            conn.execute(table.delete())
    if against == "state":
        seed_state(engine, prior)
        baseline_ids = {key: f"T-{key}" for key in prior}
    else:
        seed_state(engine, noise)  # the state must not matter for a snapshot diff
        stage_snapshot(
            engine,
            run_id=RUN,
            integration="crm",
            entity="contact",
            rows=[(key, row_hash(payload(key, version)), f"S-{key}") for key, version in prior.items()],
        )
        baseline_ids = {key: f"S-{key}" for key in prior}
    stage(engine, batch)

    counts = diff(engine, against=against, detect_deletes=detect_deletes)

    expected = {
        "create": set(batch) - set(prior),
        "update": {key for key in set(batch) & set(prior) if batch[key] != prior[key]},
        "unchanged": {key for key in set(batch) & set(prior) if batch[key] == prior[key]},
        "delete": set(prior) - set(batch) if detect_deletes else set(),
        "skip": set(),
    }
    found = changes(engine, chunk_size=4)
    assert by_action(found) == expected
    assert counts.as_dict() == {action: len(keys) for action, keys in expected.items()}
    for change in found.values():
        wanted_id = None if change.action == Action.CREATE else baseline_ids.get(change.key)
        assert change.target_id == wanted_id
        if change.action == Action.DELETE:
            assert change.payload is None
        else:
            assert change.payload == payload(change.key, batch[change.key])
