"""The dashboard's "retry these" for GP Connect: row keys -> their imports, file versions and rows.

A ledger key is ``<import id>:<row number>`` (:func:`files.row_key`). A retry re-reads the very
file version of each import (its key and ETag in ``file_import``), keeps only the requested
rows and sends them through the same stage, diff and push, so the outbox keeps any flow from
starting twice. A row rejected while reading (a bad phone) is rejected again: the file
version is the same. A file replaced since is not retried: its new version is a new import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crm_sync.exceptions import ConfigurationError
from crm_sync.integrations.gpconnect.files import S3File, Selected
from crm_sync.operators.context import SyncRun
from crm_sync.sync.schema import file_import

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Engine

__all__ = ["ROW_KEY_PATTERN", "import_org", "requested_rows", "retry_selections"]

ROW_KEY_PATTERN = re.compile(r"[0-9a-f]{16}:[0-9]{7}")
"""A GP Connect ledger key: the import id, a colon, the zero-padded sheet row number."""


def requested_rows(run: SyncRun) -> dict[str, set[str]]:
    """Import id -> the row keys the ``keys`` Param asks for; empty when it asks for none.

    Raises:
        ConfigurationError: naming the key that is not ``<import id>:<row number>``.
    """
    by_import: dict[str, set[str]] = {}
    for key in run.requested_keys():
        if not ROW_KEY_PATTERN.fullmatch(key):
            raise ConfigurationError(
                f"Param 'keys': {key[:40]!r} is not a GP Connect row key (<import id>:<7-digit row number>)"
            )
        by_import.setdefault(key.split(":", 1)[0], set()).add(key)
    return by_import


def _imports(engine: Engine, integration: str, by_import: Mapping[str, set[str]]) -> list[dict[str, Any]]:
    """The ``file_import`` rows of the requested imports.

    Raises:
        ConfigurationError: naming the keys whose import is unknown.
    """
    query = sa.select(file_import).where(
        file_import.c.integration == integration, file_import.c.import_id.in_(sorted(by_import))
    )
    with engine.connect() as conn:
        found = [dict(row) for row in conn.execute(query).mappings()]
    known = {row["import_id"] for row in found}
    unknown = sorted(key for import_id, keys in by_import.items() if import_id not in known for key in keys)
    if unknown:
        raise ConfigurationError(f"Param 'keys': no import of this integration for {', '.join(unknown[:10])}")
    return found


def import_org(engine: Engine, integration: str, by_import: Mapping[str, set[str]]) -> str:
    """The org the requested rows were imported for (a retry goes to that org's workspace).

    Raises:
        ConfigurationError: the keys belong to imports of several orgs.
    """
    orgs = sorted({str(row["org"]) for row in _imports(engine, integration, by_import)})
    if len(orgs) != 1:
        raise ConfigurationError(
            f"Param 'keys': rows of several orgs ({', '.join(orgs)}); retry one org at a time"
        )
    return orgs[0]


def retry_selections(
    engine: Engine, integration: str, by_import: Mapping[str, set[str]], listed: Sequence[S3File]
) -> list[Selected]:
    """The file versions to re-read: each requested import's file, if still the same version.

    Raises:
        ConfigurationError: naming the file (and a key of it) that was replaced or removed since.
    """
    current = {f.key: f.etag for f in listed}
    chosen = []
    for row in _imports(engine, integration, by_import):
        if current.get(row["file_key"]) != row["etag"]:
            example = min(by_import[row["import_id"]])
            raise ConfigurationError(
                f"Param 'keys': {example}: {row['file_key']} was replaced or removed since import "
                f"{row['import_id']}; a new version is imported as a new file, not retried"
            )
        chosen.append(Selected(row["file_key"], row["etag"], row["import_id"], resumed=True))
    return chosen
