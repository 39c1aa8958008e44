"""Typed settings, results and activity records of the Marketo hook, and the pure helpers behind them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crm_sync.exceptions import ConfigurationError
from crm_sync.redaction import safe_excerpt
from crm_sync.sync.records import Change, Outcome
from crm_sync.timestamps import parse_instant

__all__ = [
    "AUTH_CODES",
    "FAILED",
    "MAX_BATCH",
    "PARKED",
    "QUOTA_CODE",
    "QUOTA_ZONE",
    "RETRY_CODES",
    "SUCCESS_STATUSES",
    "SYSTEM",
    "CustomActivity",
    "FieldChange",
    "LeadActivity",
    "LeadField",
    "LeadSchema",
    "MarketoResult",
    "MarketoSettings",
    "Reason",
    "field_of",
    "mask_message",
]

SYSTEM = "marketo"
#: Writes and filter values per call (api-contracts.md section 2.2).
MAX_BATCH = 300
#: Response-level codes: 601 token invalid, 602 expired -> refresh the token and replay once.
AUTH_CODES = frozenset({"601", "602"})
#: 606 rate (100 calls / 20 s), 615 concurrency (10); 604/608/611/713 transient. Every 6xx means the
#: request was not executed (marketo-developer error-codes.md), so replaying even a write is safe.
RETRY_CODES = frozenset({"604", "606", "608", "611", "615", "713"})
#: 607: the daily quota is spent until 00:00 US Central.
QUOTA_CODE = "607"
QUOTA_ZONE = "America/Chicago"
#: Status of a record left unsent because the quota ran out (parked until the reset).
PARKED = "parked"
#: Status of a record left unsent because the API kept refusing (the next run retries it).
FAILED = "failed"
SUCCESS_STATUSES = frozenset({"created", "updated", "deleted", "added"})

_VALUE_IN_MESSAGE = re.compile(r"Invalid value '.*?'(?=\. Required)", re.DOTALL)
_FIELD_IN_MESSAGE = re.compile(r"(?:[Ff]ield|parameter) '([^']+)'")


def mask_message(message: str) -> str:
    """Marketo's message without the record's own value (1001 quotes it), redacted and shortened."""
    return safe_excerpt(_VALUE_IN_MESSAGE.sub("Invalid value '***'", message or ""), limit=300)


def field_of(message: str) -> str | None:
    """The field a record-level message names (``Field 'x' not found``), if any."""
    match = _FIELD_IN_MESSAGE.search(message or "")
    return match.group(1) if match else None


@dataclass(frozen=True)
class MarketoSettings:
    """Where and how to call Marketo, read from the connection."""

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    verify: bool | str = True
    daily_quota: int | None = None

    @classmethod
    def from_connection(cls, conn: Any) -> MarketoSettings:
        """Read ``host`` (the instance base URL, or a host with ``schema``/``port``), login, password.

        Without ``host``, ``extra.munchkin_id`` gives ``https://<munchkin_id>.mktorest.com``.

        Raises:
            ConfigurationError: no host and no munchkin id, or no client id / secret.
        """
        extra = conn.extra_dejson or {}
        if not conn.login or not conn.password:
            raise ConfigurationError(
                f"connection {conn.conn_id!r}: login must hold the Marketo client id, password the secret"
            )
        host = (conn.host or "").strip().rstrip("/")
        if not host and extra.get("munchkin_id"):
            host = f"https://{extra['munchkin_id']}.mktorest.com"
        if not host:
            raise ConfigurationError(
                f"connection {conn.conn_id!r}: set host to https://<munchkin-id>.mktorest.com"
            )
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}{f':{conn.port}' if conn.port else ''}"
        # The REST base is <host>/rest and identity <host>/identity; accept either as given.
        host = re.sub(r"/(rest|identity)$", "", host)
        quota = extra.get("daily_quota")
        return cls(
            base_url=host,
            client_id=conn.login,
            client_secret=conn.password,
            verify=extra.get("verify", True),
            daily_quota=int(quota) if quota not in (None, "") else None,
        )


@dataclass(frozen=True)
class Reason:
    """One record-level reason: Marketo's code and its (masked) message."""

    code: str
    message: str


@dataclass(frozen=True)
class MarketoResult:
    """The outcome of writing one input record.

    ``status`` is Marketo's (``created``, ``updated``, ``deleted``, ``added``, ``skipped``) or
    ours for records not sent: ``parked`` (quota spent) or ``failed`` (the API kept refusing).
    """

    key: str
    id: str | None
    status: str
    reasons: tuple[Reason, ...] = ()

    @property
    def success(self) -> bool:
        """Whether Marketo applied the write."""
        return self.status in SUCCESS_STATUSES

    @property
    def error_code(self) -> str | None:
        """The first reason's code."""
        return self.reasons[0].code if self.reasons else None

    @property
    def message(self) -> str | None:
        """Every reason as ``code: message``."""
        return "; ".join(f"{r.code}: {r.message}" for r in self.reasons) or None

    @property
    def field(self) -> str | None:
        """The field the first reason names, if any."""
        return field_of(self.reasons[0].message) if self.reasons else None

    @classmethod
    def from_json(cls, key: str, raw: Mapping[str, Any]) -> MarketoResult:
        """Parse one ``result`` entry (``reasons`` for records, ``errors`` for custom activities)."""
        ident = raw.get("id", raw.get("marketoGUID"))
        reasons = tuple(
            Reason(str(r.get("code")), mask_message(str(r.get("message", ""))))
            for r in (raw.get("reasons") or raw.get("errors") or [])
            if isinstance(r, Mapping)
        )
        return cls(
            key=key, id=None if ident is None else str(ident), status=str(raw.get("status")), reasons=reasons
        )

    @classmethod
    def unsent(cls, key: str, status: str, code: str, message: str) -> MarketoResult:
        """A record that was not sent (``parked`` or ``failed``)."""
        return cls(key=key, id=None, status=status, reasons=(Reason(code, message),))

    def to_outcome(self, change: Change) -> Outcome:
        """The ledger outcome of ``change``: success, rejected (skipped with reasons), parked or failed."""
        if self.success:
            return Outcome.ok(change, target_id=self.id)
        code, message = self.error_code or "SKIPPED", self.message or "skipped by Marketo"
        if self.status == PARKED:
            return Outcome.parked(change, code, message)
        if self.status == FAILED:
            return Outcome.failed(change, code, message)
        if not self.reasons:
            return Outcome.skipped(change, message="Marketo skipped the record without a reason")
        return Outcome.rejected(change, code, message, field=self.field)


@dataclass(frozen=True)
class LeadField:
    """One lead field as describe2 reports it."""

    name: str
    data_type: str
    updateable: bool
    length: int | None = None


@dataclass(frozen=True)
class LeadSchema:
    """The instance's lead fields (REST names) and which can be searched or used as lookupField."""

    fields: Mapping[str, LeadField]
    searchable: frozenset[str]

    @classmethod
    def from_describe2(cls, result: Sequence[Mapping[str, Any]]) -> LeadSchema:
        """Build from ``leads/describe2.json`` results."""
        first = result[0] if result else {}
        fields = {
            f["name"]: LeadField(
                name=f["name"],
                data_type=str(f.get("dataType", "string")),
                updateable=bool(f.get("updateable", True)),
                length=f.get("length"),
            )
            for f in first.get("fields", [])
        }
        searchable = frozenset(group[0] for group in first.get("searchableFields", []) if len(group) == 1)
        return cls(fields=fields, searchable=searchable)

    def check(self, names: Sequence[str], *, writable: bool = False, where: str = "lead fields") -> None:
        """Refuse names the instance does not have (or cannot write, when ``writable``).

        Raises:
            ConfigurationError: naming every unknown or read-only field.
        """
        unknown = sorted({n for n in names if n not in self.fields})
        read_only = sorted(
            {n for n in names if writable and n in self.fields and not self.fields[n].updateable}
        )
        problems = []
        if unknown:
            problems.append(f"unknown Marketo lead fields {unknown}")
        if read_only:
            problems.append(f"read-only Marketo lead fields {read_only}")
        if problems:
            raise ConfigurationError(f"{where}: {'; '.join(problems)}")


@dataclass(frozen=True)
class FieldChange:
    """One field of a Change Data Value activity."""

    name: str
    new: Any
    old: Any


def _parse_dt(value: Any) -> datetime:
    moment = parse_instant(value)
    if moment is None:
        raise ValueError(f"not an ISO 8601 instant: {str(value)[:40]!r}")
    return moment


@dataclass(frozen=True)
class LeadActivity:
    """One lead activity: New Lead (12), Change Data Value (13), Delete Lead (37) or another type."""

    id: str
    lead_id: int
    date: datetime
    type_id: int
    changes: tuple[FieldChange, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict, repr=False)
    primary_value: Any = field(default=None, repr=False)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LeadActivity:
        """Parse an ``activities.json`` / ``leadchanges.json`` entry (marketoGUID replaces id)."""
        return cls(
            id=str(raw.get("marketoGUID") or raw.get("id")),
            lead_id=int(raw["leadId"]),
            date=_parse_dt(raw["activityDate"]),
            type_id=int(raw["activityTypeId"]),
            changes=tuple(
                FieldChange(str(f["name"]), f.get("newValue"), f.get("oldValue"))
                for f in raw.get("fields") or []
            ),
            attributes={str(a.get("name")): a.get("value") for a in raw.get("attributes") or []},
            primary_value=raw.get("primaryAttributeValue"),
        )


@dataclass(frozen=True)
class CustomActivity:
    """A custom activity to add; ``key`` names it in the results (e.g. the outbox key)."""

    key: str
    lead_id: int
    activity_type_id: int
    primary_value: str
    activity_date: datetime
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        """The ``input`` entry of ``activities/external.json``."""
        return {
            "leadId": self.lead_id,
            "activityDate": self.activity_date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "activityTypeId": self.activity_type_id,
            "primaryAttributeValue": self.primary_value,
            "attributes": [{"apiName": name, "value": value} for name, value in self.attributes.items()],
        }
