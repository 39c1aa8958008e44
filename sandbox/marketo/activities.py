"""The activity log: standard lead activities, custom activities, paging tokens."""

from __future__ import annotations

import base64
import binascii
import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.marketo.errors import MarketoError
from sandbox.marketo.schema import format_datetime

NEW_LEAD = 12
CHANGE_DATA_VALUE = 13
DELETE_LEAD = 37
STANDARD_TYPES: list[dict[str, Any]] = [
    {
        "id": NEW_LEAD,
        "name": "New Lead",
        "description": "New person/record is added to the lead database",
        "primaryAttribute": {"name": "Lead ID", "dataType": "integer"},
        "attributes": [{"name": "Source Type", "dataType": "string"}],
    },
    {
        "id": CHANGE_DATA_VALUE,
        "name": "Change Data Value",
        "description": "Changed attribute value for a person",
        "primaryAttribute": {"name": "Attribute Name", "dataType": "integer"},
        "attributes": [
            {"name": "New Value", "dataType": "string"},
            {"name": "Old Value", "dataType": "string"},
            {"name": "Reason", "dataType": "string"},
            {"name": "Source", "dataType": "string"},
        ],
    },
    {
        "id": DELETE_LEAD,
        "name": "Delete Lead",
        "description": "Delete lead from the lead database",
        "primaryAttribute": {"name": "Lead ID", "dataType": "integer"},
        "attributes": [],
    },
]
_TOKEN_PREFIX = b"mkto-sandbox:"


@dataclass
class Activity:
    """One activity record; ``changes`` holds ``(field_id, name, new, old)`` for Change Data Value."""

    id: int
    lead_id: int
    date: datetime
    type_id: int
    primary_value: Any
    primary_value_id: int | None = None
    attributes: list[dict[str, Any]] = field(default_factory=list)
    changes: list[tuple[int, str, Any, Any]] = field(default_factory=list)
    logged_at: datetime | None = None
    """When the activity entered the log (paging position); ``date`` may be historical."""

    def to_json(self) -> dict[str, Any]:
        """The shape ``activities.json`` returns."""
        body: dict[str, Any] = {
            "id": self.id,
            "marketoGUID": str(self.id),
            "leadId": self.lead_id,
            "activityDate": format_datetime(self.date),
            "activityTypeId": self.type_id,
        }
        if self.primary_value_id is not None:
            body["primaryAttributeValueId"] = self.primary_value_id
        body["primaryAttributeValue"] = self.primary_value
        body["attributes"] = list(self.attributes)
        return body

    def lead_change_json(self, wanted: set[str]) -> dict[str, Any] | None:
        """The shape ``leadchanges.json`` returns (None when no wanted field changed)."""
        fields = [
            {"id": fid, "name": name, "newValue": new, "oldValue": old}
            for fid, name, new, old in self.changes
            if name in wanted
        ]
        if self.type_id == CHANGE_DATA_VALUE and not fields:
            return None
        body = self.to_json()
        body.pop("primaryAttributeValueId", None)
        body.pop("primaryAttributeValue", None)
        body["fields"] = fields
        return body


def encode_token(after_id: int) -> str:
    """A paging token pointing just after activity ``after_id`` (base32 with padding, as Marketo's)."""
    return base64.b32encode(_TOKEN_PREFIX + str(after_id).encode()).decode()


def decode_token(token: str | None) -> int:
    """The activity id a paging token points after.

    Raises:
        MarketoError: 701 when missing, 1003 when it is not a token this instance issued.
    """
    if not token:
        raise MarketoError("701", "nextPageToken cannot be blank")
    try:
        raw = base64.b32decode(token.strip().encode(), casefold=True)
    except (binascii.Error, ValueError):
        raise MarketoError("1003", "Invalid value for nextPageToken") from None
    if not raw.startswith(_TOKEN_PREFIX) or not raw[len(_TOKEN_PREFIX) :].isdigit():
        raise MarketoError("1003", "Invalid value for nextPageToken")
    return int(raw[len(_TOKEN_PREFIX) :])


class ActivityLog:
    """Activities in id order; ``logged_at`` never goes backwards, so a since-date is a position."""

    def __init__(self) -> None:
        self.items: list[Activity] = []

    def add(self, activity: Activity) -> Activity:
        """Append ``activity`` (its id is assigned here)."""
        logged = activity.logged_at or activity.date
        if self.items and self.items[-1].logged_at and logged < self.items[-1].logged_at:
            logged = self.items[-1].logged_at
        activity.logged_at = logged
        activity.id = len(self.items) + 1
        self.items.append(activity)
        return activity

    def position_since(self, since: datetime) -> int:
        """The id after which every activity is at or after ``since``."""
        # logged_at never decreases along the list, so it can be bisected.
        return bisect.bisect_left(self.items, since, key=lambda item: item.logged_at or since)

    def page(self, after_id: int, keep: Any, batch_size: int) -> tuple[list[Activity], int, bool]:
        """Activities after ``after_id`` for which ``keep(activity)`` is true.

        Returns:
            ``(page, next_after_id, more)``: up to ``batch_size`` activities, where the next page
            starts, and whether activities remain after it.
        """
        found: list[Activity] = []
        position = after_id
        for index in range(after_id, len(self.items)):
            item = self.items[index]
            position = item.id
            if keep(item):
                found.append(item)
                if len(found) >= batch_size:
                    break
        return found, position, position < len(self.items)
