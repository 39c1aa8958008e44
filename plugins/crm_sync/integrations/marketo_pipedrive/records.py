"""Pipedrive records as the mappings see them, and mapped payloads as v2 request bodies.

A v2 record keeps custom values under ``custom_fields`` by 40-hex hash key and lists
addresses as ``emails``/``phones``; the mappings name fields by their human names. The sync
flattens a record once (custom fields by snake_case name, the primary e-mail and phone, an
``active_flag``) and turns a payload back into a body with :meth:`FieldMap.write`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_sync.hooks.pipedrive import PipedriveRecord
from crm_sync.hooks.pipedrive_fields import FieldMap, snake_case

__all__ = ["flatten", "to_body", "values_of"]

# Standard person fields that v2 writes as lists of {value, primary, label}.
_LISTS = {"email": "emails", "phone": "phones"}


def _primary(items: Any) -> Any:
    """The primary (else the first) value of a v2 ``emails``/``phones`` list."""
    if not isinstance(items, list) or not items:
        return None
    chosen = next((i for i in items if isinstance(i, Mapping) and i.get("primary")), items[0])
    return chosen.get("value") if isinstance(chosen, Mapping) else None


def flatten(record: PipedriveRecord, fields: FieldMap, **extra: Any) -> dict[str, Any]:
    """The record as one flat dict: standard keys, custom fields by snake_case name, plus ``extra``.

    Args:
        record: a v2 record.
        fields: the entity's fields (hash keys -> names).
        **extra: values the sync adds (``org_name``, ``stage_name``, ``run_date``...).
    """
    flat: dict[str, Any] = {k: v for k, v in record.values.items() if k not in ("emails", "phones")}
    for key, plural in _LISTS.items():
        if plural in record.values:
            flat[key] = _primary(record.values.get(plural))
    for definition in fields.fields:
        if definition.is_custom:
            value = fields.decode(definition, record.custom_fields.get(definition.key))
            flat[snake_case(definition.name)] = value.get("value") if isinstance(value, Mapping) else value
    flat["id"] = record.id
    flat["active_flag"] = not record.is_deleted
    flat.update(extra)
    return flat


def values_of(flat: Mapping[str, Any], names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The current values of ``names`` in a flattened record (what a diff compares against)."""
    return {name: flat.get(snake_case(name), flat.get(name)) for name in names}


def to_body(entity: str, payload: Mapping[str, Any], fields: FieldMap) -> dict[str, Any]:
    """A v2 body from a payload keyed by field name (custom names -> hash keys).

    A person's ``email``/``phone`` become a one-item primary ``emails``/``phones`` list.
    """
    plain = dict(payload)
    lists: dict[str, Any] = {}
    if entity == "persons":
        for key, plural in _LISTS.items():
            if key in plain:
                value = plain.pop(key)
                lists[plural] = [{"value": value, "primary": True, "label": "work"}]
    return {**fields.write(plain), **lists}
