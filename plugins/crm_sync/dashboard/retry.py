"""'Retry these': re-send exactly the selected records by triggering the integration's DAG.

The convention every crm_sync DAG honours: a Param named ``keys`` (a list of record keys);
a run given keys diffs only those keys (never inferring deletes), so it re-sends them and
nothing else. Each request is written to ``action_audit`` (who, when, which records, which
DAG run) before the run is queued, and updated with the run id or the error after.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crm_sync.sync.schema import KEY, action_audit, begin_write, quarantine, sync_log
from crm_sync.sync.staging import IN_CHUNK

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["ACTION", "KEYS_PARAM", "MAX_KEYS", "RetryRefused", "RetryRequest", "audit_log", "retry_records"]

ACTION = "retry_records"
KEYS_PARAM = "keys"
MAX_KEYS = 1000
"""More than this is a re-run, not a retry: trigger the DAG itself."""


class RetryRefused(Exception):
    """A retry that cannot go ahead; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RetryRequest:
    """Which records of which integration a user asked to re-send."""

    integration: str
    keys: tuple[str, ...]

    @classmethod
    def build(cls, integration: Any, keys: Any) -> RetryRequest:
        """Validate raw input (JSON body or form) into a request.

        Raises:
            RetryRefused: 422 naming what is wrong.
        """
        if not isinstance(integration, str) or not integration.strip():
            raise RetryRefused(422, "integration is required")
        if not isinstance(keys, Sequence) or isinstance(keys, str) or not keys:
            raise RetryRefused(422, "keys must be a non-empty list of record keys")
        cleaned: list[str] = []
        for index, key in enumerate(keys):
            if not isinstance(key, str) or not key.strip() or len(key) > KEY:
                raise RetryRefused(422, f"keys[{index}] is not a record key (a non-empty string of <= {KEY})")
            if key not in cleaned:
                cleaned.append(key)
        if len(cleaned) > MAX_KEYS:
            raise RetryRefused(422, f"at most {MAX_KEYS} keys per retry, got {len(cleaned)}")
        return cls(integration=integration.strip(), keys=tuple(cleaned))


def _unknown_keys(engine: Engine, request: RetryRequest) -> list[str]:
    """Keys the ledger has never seen for this integration (neither outcome nor quarantine)."""
    known: set[str] = set()
    keys = list(request.keys)
    with engine.connect() as conn:
        for start in range(0, len(keys), IN_CHUNK):
            part = keys[start : start + IN_CHUNK]
            known.update(
                conn.execute(
                    sa.select(sync_log.c.key).where(
                        sync_log.c.integration == request.integration, sync_log.c.key.in_(part)
                    )
                ).scalars()
            )
            known.update(
                conn.execute(
                    sa.select(quarantine.c.key).where(
                        quarantine.c.integration == request.integration, quarantine.c.key.in_(part)
                    )
                ).scalars()
            )
    return [key for key in keys if key not in known]


def retry_records(
    engine: Engine,
    request: RetryRequest,
    *,
    dag_id: str | None,
    user_name: str,
    dag_params: Callable[[str], dict[str, Any] | None],
    trigger: Callable[..., str],
) -> dict[str, Any]:
    """Audit the request, then queue a run of ``dag_id`` with ``{"keys": [...]}``.

    Args:
        engine: the staging database (ledger and audit).
        request: the validated request.
        dag_id: the integration's DAG.
        user_name: the logged-in user (already authorised to trigger ``dag_id``).
        dag_params: returns the DAG's Params, None for a DAG Airflow does not know.
        trigger: queues the run: ``trigger(dag_id, conf=..., user_name=...)`` -> run id.

    Returns:
        ``{"audit_id", "dag_id", "dag_run_id", "keys"}``.

    Raises:
        RetryRefused: 404 unknown DAG, 409 DAG without a ``keys`` Param, 422 keys the
            ledger does not know for this integration.
    """
    if not dag_id:
        raise RetryRefused(404, f"no DAG is known for integration {request.integration!r}")
    params = dag_params(dag_id)
    if params is None:
        raise RetryRefused(404, f"Airflow does not know DAG {dag_id!r} (not parsed yet?)")
    if KEYS_PARAM not in params:
        raise RetryRefused(
            409, f"DAG {dag_id!r} has no {KEYS_PARAM!r} Param: it cannot re-send selected records"
        )
    unknown = _unknown_keys(engine, request)
    if unknown:
        raise RetryRefused(
            422, f"{len(unknown)} key(s) never synced by {request.integration}: {', '.join(unknown[:10])}"
        )
    detail: dict[str, Any] = {"dag_id": dag_id, "keys": list(request.keys)}
    with begin_write(engine) as conn:
        audit_id = conn.execute(
            action_audit.insert().values(
                at=datetime.now(UTC),
                username=user_name,
                action=ACTION,
                integration=request.integration,
                detail=json.dumps(detail),
            )
        ).inserted_primary_key[0]
    try:
        run_id = trigger(dag_id, conf={KEYS_PARAM: list(request.keys)}, user_name=user_name)
    except Exception as exc:
        with begin_write(engine) as conn:
            conn.execute(
                action_audit.update()
                .where(action_audit.c.id == audit_id)
                .values(detail=json.dumps({**detail, "error": f"{type(exc).__name__}: {exc}"[:500]}))
            )
        raise
    with begin_write(engine) as conn:
        conn.execute(action_audit.update().where(action_audit.c.id == audit_id).values(dag_run_id=run_id))
    return {"audit_id": int(audit_id), "dag_id": dag_id, "dag_run_id": run_id, "keys": list(request.keys)}


def audit_log(engine: Engine, *, limit: int = 100) -> list[dict[str, Any]]:
    """Return the latest audited actions, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(action_audit).order_by(action_audit.c.at.desc(), action_audit.c.id.desc()).limit(limit)
        ).all()
    return [
        {
            "id": int(r.id),
            "at": (r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)).isoformat(),
            "username": r.username,
            "action": r.action,
            "integration": r.integration,
            "dag_run_id": r.dag_run_id,
            "detail": json.loads(r.detail) if r.detail else None,
        }
        for r in rows
    ]
