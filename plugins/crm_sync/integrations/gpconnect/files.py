"""Which report files to import: the S3 listing reconciled with ``file_import`` in staging.

One ``file_import`` row per file version (key + ETag): ``importing`` from the run that picks it
until every kept row has an outcome, then ``imported``; ``failed`` when the file itself cannot
be imported (bad headers, missing sheet, replaced before it finished). Resumable imports go
first, then the oldest new versions (by LastModified, then key). Each import has an
``import_id``; row keys and flow-start op keys derive from it, so a resumed import finds its
own rows and outbox entries, and a ``reprocess`` (a new id) imports the file afresh.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crm_sync.exceptions import ConfigurationError
from crm_sync.sync.schema import begin_write, file_import, quarantine, sync_log

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from crm_sync.integrations.gpconnect.config import GpConnectConfig

__all__ = ["FileCounts", "S3File", "Selected", "file_counts", "list_files", "mark", "row_key", "select_files"]

log = logging.getLogger(__name__)

IMPORTING, IMPORTED, FAILED = "importing", "imported", "failed"


@dataclass(frozen=True, slots=True)
class S3File:
    """One object in the bucket."""

    key: str
    etag: str
    size: int | None
    last_modified: datetime | None


@dataclass(frozen=True, slots=True)
class Selected:
    """A file version this run imports (what XCom carries: keys and ids, never contents)."""

    file_key: str
    etag: str
    import_id: str
    resumed: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FileCounts:
    """How far one import got: rows kept, rows with a final outcome, rows still open."""

    rows_ok: int
    rows_rejected: int
    rows_open: int


def row_key(import_id: str, row: int) -> str:
    """The ledger key of a sheet row: ``<import id>:<row number, zero-padded>`` (no personal data)."""
    return f"{import_id}:{row:07d}"


def _import_id(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def list_files(s3_hook: Any, config: GpConnectConfig) -> list[S3File]:
    """Every report under the prefix (S3Hook pages through ``ListObjectsV2``), oldest first.

    An empty prefix is an empty list (the seed's unpaginated ``list_objects`` raised KeyError).
    """
    found = []
    for item in s3_hook.iter_file_metadata(prefix=config.prefix, bucket_name=config.bucket):
        key = item.get("Key") or ""
        if not config.wants(key):
            continue
        modified = item.get("LastModified")
        found.append(
            S3File(
                key=key,
                etag=str(item.get("ETag") or "").strip('"'),
                size=item.get("Size"),
                last_modified=modified if isinstance(modified, datetime) else None,
            )
        )
    found.sort(key=lambda f: (f.last_modified or datetime.min.replace(tzinfo=UTC), f.key))
    return found


def _known(engine: Engine, integration: str) -> dict[tuple[str, str], Mapping[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(file_import).where(file_import.c.integration == integration)).mappings()
        return {(row["file_key"], row["etag"]): dict(row) for row in rows}


def select_files(
    engine: Engine,
    *,
    integration: str,
    listed: Sequence[S3File],
    limit: int,
    file_key: str | None = None,
    reprocess: bool = False,
    run_id: str,
) -> tuple[list[tuple[S3File, Selected]], list[str]]:
    """Choose what this run imports.

    Returns:
        The chosen files with their import ids, and notes for the log (e.g. an already
        imported ``file_key``, a version replaced before it finished).

    Raises:
        ConfigurationError: ``file_key`` is not a report under the prefix.
    """
    known = _known(engine, integration)
    current = {f.key: f for f in listed}
    notes: list[str] = []
    if file_key:
        wanted = current.get(file_key)
        if wanted is None:
            raise ConfigurationError(f"file_key {file_key!r} is not a report in the bucket under the prefix")
        row = known.get((wanted.key, wanted.etag))
        if row is not None and row["status"] == IMPORTED and not reprocess:
            notes.append(
                f"{file_key} (ETag {wanted.etag}) is already imported; set reprocess to import it again"
            )
            return [], notes
        return [(wanted, _selection(wanted, row, reprocess=reprocess, run_id=run_id))], notes
    chosen: list[tuple[S3File, Selected]] = []
    resumable = sorted(
        (row for row in known.values() if row["status"] == IMPORTING),
        key=lambda row: (row["started_at"] or datetime.min.replace(tzinfo=UTC), row["file_key"]),
    )
    for row in resumable:
        now = current.get(row["file_key"])
        if now is None or now.etag != row["etag"]:
            notes.append(
                f"{row['file_key']} (ETag {row['etag']}) was replaced or removed before its import finished"
            )
            continue
        if len(chosen) < limit:
            chosen.append((now, _selection(now, row, reprocess=False, run_id=run_id)))
    for item in listed:
        if len(chosen) >= limit:
            break
        if (item.key, item.etag) not in known:
            chosen.append((item, _selection(item, None, reprocess=False, run_id=run_id)))
    return chosen, notes


def _selection(item: S3File, row: Mapping[str, Any] | None, *, reprocess: bool, run_id: str) -> Selected:
    if row is not None and row.get("import_id") and not reprocess:
        return Selected(item.key, item.etag, row["import_id"], resumed=row["status"] == IMPORTING)
    salt = run_id if reprocess else ""
    return Selected(item.key, item.etag, _import_id(item.key, item.etag, salt), resumed=False)


def mark_replaced(engine: Engine, *, integration: str, listed: Sequence[S3File]) -> int:
    """Fail unfinished imports of versions no longer in the bucket (a newer upload replaced them)."""
    current = {(f.key, f.etag) for f in listed}
    stale = [
        (key, etag)
        for (key, etag), row in _known(engine, integration).items()
        if row["status"] == IMPORTING and (key, etag) not in current
    ]
    for key, etag in stale:
        mark(
            engine,
            integration=integration,
            file_key=key,
            etag=etag,
            status=FAILED,
            finished_at=datetime.now(UTC),
            error="replaced or removed from the bucket before its import finished",
        )
    return len(stale)


def start_import(
    engine: Engine,
    *,
    integration: str,
    item: S3File,
    selected: Selected,
    org: str,
    requested_by: str,
    run_id: str,
) -> None:
    """Record that this run imports ``item`` (a new row, or the existing one reset to importing)."""
    now = datetime.now(UTC)
    values = {
        "org": org,
        "size_bytes": item.size,
        "last_modified": item.last_modified,
        "status": IMPORTING,
        "requested_by": requested_by,
        "run_id": run_id,
        "import_id": selected.import_id,
        "finished_at": None,
        "error": None,
    }
    pk = (
        file_import.c.integration == integration,
        file_import.c.file_key == item.key,
        file_import.c.etag == item.etag,
    )
    with begin_write(engine) as conn:
        existing = conn.execute(sa.select(file_import.c.import_id).where(*pk)).first()
        if existing is None:
            conn.execute(
                file_import.insert().values(
                    integration=integration, file_key=item.key, etag=item.etag, started_at=now, **values
                )
            )
        else:
            if existing.import_id != selected.import_id:  # a reprocess starts over
                values.update(
                    started_at=now, rows_total=None, rows_kept=None, rows_ok=None, rows_rejected=None
                )
            conn.execute(file_import.update().where(*pk).values(**values))


def mark(engine: Engine, *, integration: str, file_key: str, etag: str, **values: Any) -> None:
    """Update one file_import row."""
    with begin_write(engine) as conn:
        conn.execute(
            file_import.update()
            .where(
                file_import.c.integration == integration,
                file_import.c.file_key == file_key,
                file_import.c.etag == etag,
            )
            .values(**values)
        )


def file_counts(engine: Engine, *, integration: str, import_id: str, rows_kept: int) -> FileCounts:
    """Count the outcomes of one import's rows (over every run that worked on it).

    A row's outcome is its latest ``sync_log`` entry: success or skipped is done, rejected is
    done and rejected, failed or parked is still open; a row quarantined by any parse of this
    file version is rejected (every parse of the same bytes rejects the same rows). Kept rows
    with neither are open (e.g. a crash before their outcome was written).
    """
    prefix = f"{import_id}:%"
    latest = (
        sa.select(sa.func.max(sync_log.c.id))
        .where(sync_log.c.integration == integration, sync_log.c.key.like(prefix))
        .group_by(sync_log.c.key)
    )
    with engine.connect() as conn:
        by_status = dict(
            conn.execute(
                sa.select(sync_log.c.status, sa.func.count())
                .where(sync_log.c.id.in_(latest))
                .group_by(sync_log.c.status)
            ).all()
        )
        quarantined = conn.execute(
            sa.select(sa.func.count(sa.distinct(quarantine.c.key))).where(
                quarantine.c.integration == integration,
                quarantine.c.key.like(prefix),
            )
        ).scalar_one()
    ok = int(by_status.get("success", 0)) + int(by_status.get("skipped", 0))
    rejected = int(by_status.get("rejected", 0)) + int(quarantined)
    return FileCounts(rows_ok=ok, rows_rejected=rejected, rows_open=max(rows_kept - ok - rejected, 0))


def imports_of_run(
    engine: Engine, *, integration: str, selections: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The file_import rows of the given selections (as dicts)."""
    wanted = {(s["file_key"], s["etag"]) for s in selections}
    return [dict(row) for key, row in _known(engine, integration).items() if key in wanted]
