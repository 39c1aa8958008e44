"""Which records a run syncs besides its window: the ``keys`` Param, and records left parked.

Keys are the ledger's (``sync_log.key`` of this integration): ``lead:<id>`` and
``activity:<lead id>`` are Marketo leads; ``person:<id>``, ``organization:<id>``,
``deal:<id>`` and ``role:<deal id>`` (re-sent with its deal) are Pipedrive records.

A record parked by Marketo's 607 or Pipedrive's spent budget keeps ``parked`` as its latest
outcome until a run syncs it: every scheduled run picks those up again, so once the quota has
reset nothing is lost (and while it has not, they are parked again, still not lost).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from crm_sync.exceptions import ConfigurationError
from crm_sync.sync.records import Status
from crm_sync.sync.schema import sync_log

__all__ = ["KINDS", "KeySet", "parked_keys", "parse_keys"]

INTEGRATION = "marketo_pipedrive"
KINDS = ("lead", "activity", "person", "organization", "deal")
_ALIASES = {"role": "deal"}


@dataclass(frozen=True)
class KeySet:
    """Record ids by kind, each in first-seen order."""

    ids: dict[str, list[int]] = field(default_factory=dict)

    def of(self, kind: str) -> list[int]:
        """The ids of ``kind`` (``lead``, ``activity``, ``person``, ``organization``, ``deal``)."""
        return list(self.ids.get(kind, []))

    def __bool__(self) -> bool:
        return any(self.ids.values())


def parse_keys(keys: Iterable[str], *, strict: bool = True) -> KeySet:
    """Group ledger keys by kind.

    Args:
        keys: keys such as ``person:2`` or ``lead:1001``.
        strict: raise for a key that is not one of this integration's; otherwise skip it.

    Raises:
        ConfigurationError: a key that names no record of this sync (all such keys named).
    """
    ids: dict[str, list[int]] = {}
    bad: list[str] = []
    for key in keys:
        kind, _, raw = str(key).partition(":")
        kind = _ALIASES.get(kind, kind)
        if kind not in KINDS or not raw.isdigit() or int(raw) < 1:
            bad.append(str(key))
            continue
        bucket = ids.setdefault(kind, [])
        if int(raw) not in bucket:
            bucket.append(int(raw))
    if bad and strict:
        raise ConfigurationError(
            f"not record keys of {INTEGRATION} (<{'|'.join(KINDS)}|role>:<id>): {', '.join(bad[:10])}"
        )
    return KeySet(ids)


def parked_keys(engine: Engine) -> list[str]:
    """Keys of this integration whose latest outcome is ``parked``, oldest first."""
    ours = sync_log.c.integration == INTEGRATION
    ever_parked = sa.select(sync_log.c.key).where(ours, sync_log.c.status == Status.PARKED.value)
    latest = (
        sa.select(sa.func.max(sync_log.c.id).label("id"))
        .where(ours, sync_log.c.key.in_(ever_parked))
        .group_by(sync_log.c.key)
        .subquery()
    )
    query = (
        sa.select(sync_log.c.key)
        .join(latest, sync_log.c.id == latest.c.id)
        .where(sync_log.c.status == Status.PARKED.value)
        .order_by(sync_log.c.id)
    )
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())
