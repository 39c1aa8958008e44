from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from crm_sync.exceptions import RecordRejected
from crm_sync.sync.hashing import canonical, row_hash
from crm_sync.sync.ledger import start_run
from crm_sync.sync.progress import Progress
from crm_sync.sync.records import Record
from crm_sync.sync.schema import quarantine, snapshot_record, staged_record, sync_run
from crm_sync.sync.staging import MAX_ERRORS, make_engine, purge_staged, stage_records

RUN = "manual__2024-05-01T00:00:00+00:00"


@pytest.fixture
def engine(staging_url):
    engine = make_engine(staging_url)
    yield engine
    engine.dispose()


def _staged(engine, run_id=RUN, entity="contact"):
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(staged_record.c.key, staged_record.c.payload, staged_record.c.row_hash)
            .where(staged_record.c.run_id == run_id, staged_record.c.entity == entity)
            .order_by(staged_record.c.key)
        ).all()
    return {key: (json.loads(payload), digest) for key, payload, digest in rows}


def _quarantined(engine, run_id=RUN):
    with engine.connect() as conn:
        return conn.execute(
            sa.select(quarantine.c.key, quarantine.c.field, quarantine.c.code, quarantine.c.message)
            .where(quarantine.c.run_id == run_id)
            .order_by(quarantine.c.id)
        ).all()


def _stage(engine, records, **kwargs):
    kwargs.setdefault("key_field", "Id")
    return stage_records(engine, run_id=RUN, integration="crm", entity="contact", records=records, **kwargs)


def test_stages_canonical_payloads_and_hashes(engine):
    records = [
        {"Id": "C1", "Email": " a@example.org ", "Phone": None},
        {"Id": "C2", "Email": "b@example.org", "Score": 1.0},
    ]
    result = _stage(engine, records)
    assert (result.staged, result.rejected, result.errors) == (2, 0, [])
    staged = _staged(engine)
    assert staged == {
        "C1": ({"Id": "C1", "Email": "a@example.org"}, row_hash(records[0])),
        "C2": ({"Id": "C2", "Email": "b@example.org", "Score": 1}, row_hash(records[1])),
    }
    with engine.connect() as conn:
        payload = conn.execute(sa.select(staged_record.c.payload).where(staged_record.c.key == "C1")).scalar()
    assert payload == canonical(records[0])


def test_accepts_record_objects_and_integer_keys(engine):
    result = _stage(engine, [Record(key=" K1 ", payload={"a": 1}), {"Id": 42, "a": 2}])
    assert result.staged == 2
    assert set(_staged(engine)) == {"K1", "42"}


def test_restaging_a_run_replaces_what_it_staged(engine):
    _stage(engine, [{"Id": "C1"}, {"Id": "C2"}, {"Id": None}])
    result = _stage(engine, [{"Id": "C2", "v": 2}])
    assert result.staged == 1
    assert _staged(engine) == {"C2": ({"Id": "C2", "v": 2}, row_hash({"Id": "C2", "v": 2}))}
    assert _quarantined(engine) == []


def test_other_entities_and_runs_are_left_alone(engine):
    _stage(engine, [{"Id": "C1"}])
    stage_records(
        engine, run_id="other", integration="crm", entity="contact", records=[{"Id": "X"}], key_field="Id"
    )
    stage_records(
        engine, run_id=RUN, integration="crm", entity="account", records=[{"Id": "A"}], key_field="Id"
    )
    _stage(engine, [{"Id": "C9"}])
    assert set(_staged(engine)) == {"C9"}
    assert set(_staged(engine, run_id="other")) == {"X"}
    assert set(_staged(engine, entity="account")) == {"A"}


def test_bad_records_are_quarantined_and_the_batch_goes_on(engine):
    records = [
        {"Id": "C1", "v": 1},
        {"v": 2},  # no key field at all
        {"Id": "   ", "v": 3},  # blank key
        {"Id": "C1", "v": 4},  # duplicate within the chunk: the first wins
        {"Id": "C5", "address": {"lines": ["x", b"raw"]}},
        {"Id": "C6", "v": 6},
        {"Id": 4.5},  # not a usable key type
    ]
    result = _stage(engine, records)
    assert (result.staged, result.rejected) == (2, 5)
    assert _staged(engine) == {
        "C1": ({"Id": "C1", "v": 1}, row_hash(records[0])),
        "C6": ({"Id": "C6", "v": 6}, row_hash(records[5])),
    }
    assert [(e.key, e.code, e.field) for e in result.errors] == [
        (None, "MISSING_KEY", "Id"),
        (None, "MISSING_KEY", "Id"),
        ("C1", "DUPLICATE_KEY", "Id"),
        ("C5", "UNSERIALISABLE", "address.lines[1]"),
        (None, "INVALID_KEY", "Id"),
    ]
    assert all(isinstance(error, RecordRejected) for error in result.errors)
    assert "record #2" in str(result.errors[0])
    assert "record #3" in str(result.errors[1])
    stored = _quarantined(engine)
    assert [(key, field, code) for key, field, code, _ in stored] == [
        (e.key, e.field, e.code) for e in result.errors
    ]
    assert not any("raw" in message for *_, message in stored)  # no field values stored


def test_duplicates_across_chunks_keep_the_first_record(engine):
    records = [{"Id": f"C{i}", "v": i} for i in range(7)] + [{"Id": "C1", "v": "late"}, {"Id": "C8", "v": 8}]
    result = _stage(engine, records, chunk_size=3)
    assert (result.staged, result.rejected) == (8, 1)
    staged = _staged(engine)
    assert staged["C1"][0] == {"Id": "C1", "v": 1}
    assert set(staged) == {f"C{i}" for i in (*range(7), 8)}
    assert [(e.key, e.code) for e in result.errors] == [("C1", "DUPLICATE_KEY")]
    assert [(key, code) for key, _field, code, _msg in _quarantined(engine)] == [("C1", "DUPLICATE_KEY")]


def test_errors_are_capped_but_all_rejections_counted(engine):
    records = [{"Id": None} for _ in range(MAX_ERRORS + 30)] + [{"Id": "ok"}]
    result = _stage(engine, records, chunk_size=50)
    assert result.staged == 1
    assert result.rejected == MAX_ERRORS + 30
    assert len(result.errors) == MAX_ERRORS
    assert len(_quarantined(engine)) == MAX_ERRORS + 30


def test_records_stream_in_committed_chunks(engine):
    seen_while_reading: list[int] = []

    def records():
        for i in range(25):
            if i == 21:  # two chunks of 10 should already be committed and visible
                with engine.connect() as conn:
                    seen_while_reading.append(
                        conn.execute(sa.select(sa.func.count()).select_from(staged_record)).scalar_one()
                    )
            yield {"Id": f"C{i:02d}"}

    result = _stage(engine, records(), chunk_size=10)
    assert result.staged == 25
    assert seen_while_reading == [20]


def test_progress_is_advanced_by_records_read(engine):
    progress = Progress(total=12, label="stage", clock=lambda: 0.0)
    _stage(engine, [{"Id": f"C{i}"} for i in range(11)] + [{"Id": None}], chunk_size=5, progress=progress)
    assert progress.done == 12


def test_mappings_need_a_key_field(engine):
    with pytest.raises(TypeError, match="key_field"):
        _stage(engine, [{"Id": "C1"}], key_field=None)


def test_purge_keeps_the_latest_runs(engine):
    for number, run_id in enumerate(["r1", "r2", "r3"]):
        start_run(engine, integration="crm", run_id=run_id, dag_id="d", dry_run=False, full_refresh=False)
        with engine.begin() as conn:
            conn.execute(
                sync_run.update()
                .where(sync_run.c.run_id == run_id)
                .values(started_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=number))
            )
            conn.execute(
                snapshot_record.insert().values(run_id=run_id, integration="crm", entity="contact", key="k")
            )
        stage_records(
            engine, run_id=run_id, integration="crm", entity="contact", records=[{"Id": "k"}], key_field="Id"
        )
    assert purge_staged(engine, integration="crm", older_than_runs=2) == 2
    assert [set(_staged(engine, run_id=r)) for r in ("r1", "r2", "r3")] == [set(), {"k"}, {"k"}]
    assert purge_staged(engine, integration="crm", before=datetime(2024, 1, 2, 12, tzinfo=UTC)) == 2
    assert [set(_staged(engine, run_id=r)) for r in ("r1", "r2", "r3")] == [set(), set(), {"k"}]
    with pytest.raises(ValueError, match="exactly one"):
        purge_staged(engine, integration="crm")


def test_make_engine_caches_per_url(staging_url):
    assert make_engine(staging_url) is make_engine(staging_url)


def test_make_engine_uses_psycopg3_for_plain_postgres_urls(pg_url):
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    engine = make_engine(plain)
    assert engine.dialect.driver == "psycopg"
    assert make_engine(plain.replace("postgresql://", "postgres://")).dialect.driver == "psycopg"


def test_default_is_a_sqlite_file_in_airflow_home_with_wal(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    engine = make_engine()
    assert engine.url.database == str(tmp_path / "home" / "crm_sync_staging.db")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def test_in_memory_sqlite_is_shared_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    engine = make_engine("sqlite://")
    _stage(engine, [{"Id": "C1"}])
    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(lambda: set(_staged(engine))).result() == {"C1"}
