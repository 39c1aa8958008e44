"""Source rows typed the way Salesforce stores them, so staged and snapshot hashes agree."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from crm_sync.exceptions import RecordRejected
from crm_sync.hooks.salesforce_query import coerce

if TYPE_CHECKING:
    from crm_sync.hooks.salesforce_types import SObjectDescription

_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n"}


def salesforce_payload(
    row: Mapping[str, Any], description: SObjectDescription, fields: Sequence[str]
) -> dict[str, Any]:
    """Return ``fields`` of ``row`` typed by the sObject's describe.

    Salesforce stores an empty text as null, so '' becomes None (a query returns null for
    it, and the snapshot hash must match). The source's flags (1/0, '1'/'0', '' for
    unanswered) become booleans. A field the sObject does not have is a configuration
    error of the view, reported for the record rather than sent to fail the whole call.
    """
    payload: dict[str, Any] = {}
    for name in fields:
        info = description.field(name)
        if info is None:
            raise RecordRejected(
                str(row.get("HP_PMI_ID__c")),
                "INVALID_FIELD",
                f"{description.name} has no field {name}",
                field=name,
            )
        value = row.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            payload[info.name] = None
        elif info.type == "boolean":
            payload[info.name] = _boolean(value, row, name)
        else:
            payload[info.name] = coerce(value, info.type)
    return payload


def _boolean(value: Any, row: Mapping[str, Any], name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RecordRejected(str(row.get("HP_PMI_ID__c")), "INVALID_BOOLEAN", "not a yes/no value", field=name)
