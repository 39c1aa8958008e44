"""Typed results and connection settings of :class:`crm_sync.hooks.pipedrive.PipedriveHook`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from crm_sync.exceptions import ConfigurationError
from crm_sync.timestamps import parse_instant

__all__ = [
    "DEFAULT_DAILY_WRITE_LIMIT",
    "PipedriveRecord",
    "PipedriveSettings",
    "Pipeline",
    "SearchHit",
    "User",
    "WebhookSubscription",
    "webhook_from_json",
]

#: Fair-use write requests per day when the connection does not say (pipedrive.readme.io, I).
DEFAULT_DAILY_WRITE_LIMIT = 10_000


@dataclass(frozen=True)
class PipedriveSettings:
    """What the hook reads from the connection."""

    base_url: str
    token: str = field(repr=False)
    verify: bool | str = True
    daily_write_limit: int = DEFAULT_DAILY_WRITE_LIMIT

    @classmethod
    def from_connection(cls, conn: Any) -> PipedriveSettings:
        """Read the company URL and the API token.

        ``host`` = the company's base URL (``https://acme.pipedrive.com``, or a host with
        ``schema``/``port``), ``password`` = API token; ``extra.verify``, ``extra.daily_write_limit``.

        Raises:
            ConfigurationError: no host or no token.
        """
        extra = conn.extra_dejson or {}
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise ConfigurationError(
                f"connection {conn.conn_id!r}: set host to https://<company>.pipedrive.com"
            )
        if not conn.password:
            raise ConfigurationError(f"connection {conn.conn_id!r}: put the Pipedrive API token in password")
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}{f':{conn.port}' if conn.port else ''}"
        return cls(
            base_url=host,
            token=conn.password,
            verify=extra.get("verify", True),
            daily_write_limit=int(extra.get("daily_write_limit", DEFAULT_DAILY_WRITE_LIMIT)),
        )


@dataclass(frozen=True)
class PipedriveRecord:
    """One v2 entity: standard values by key, custom values by hash key (personal data: not in repr)."""

    entity: str
    id: int
    update_time: datetime | None
    is_deleted: bool
    values: Mapping[str, Any] = field(repr=False, hash=False)
    custom_fields: Mapping[str, Any] = field(repr=False, hash=False)

    @classmethod
    def from_json(cls, entity: str, raw: Mapping[str, Any]) -> PipedriveRecord:
        """Parse a v2 object."""
        custom = raw.get("custom_fields") or {}
        values = {k: v for k, v in raw.items() if k != "custom_fields"}
        return cls(
            entity=entity,
            id=int(raw["id"]),
            update_time=parse_instant(raw.get("update_time")),
            is_deleted=bool(raw.get("is_deleted")),
            values=MappingProxyType(values),
            custom_fields=MappingProxyType(dict(custom)),
        )


@dataclass(frozen=True)
class SearchHit:
    """One search result: the record's id, the score and the item as the API returned it."""

    id: int
    result_score: float
    item: Mapping[str, Any] = field(repr=False, hash=False)


@dataclass(frozen=True)
class User:
    """A Pipedrive user (an owner)."""

    id: int
    name: str
    active: bool


@dataclass(frozen=True)
class Pipeline:
    """A deal pipeline."""

    id: int
    name: str


@dataclass(frozen=True)
class WebhookSubscription:
    """A registered webhook."""

    id: int
    subscription_url: str
    event_action: str
    event_object: str
    version: str


def webhook_from_json(raw: Mapping[str, Any]) -> WebhookSubscription:
    """Parse a v1 webhook object."""
    return WebhookSubscription(
        id=int(raw["id"]),
        subscription_url=str(raw["subscription_url"]),
        event_action=str(raw["event_action"]),
        event_object=str(raw["event_object"]),
        version=str(raw.get("version") or ""),
    )
