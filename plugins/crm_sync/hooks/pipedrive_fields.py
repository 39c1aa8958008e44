"""Pipedrive field definitions and name -> key resolution (no hash key is ever hard-coded).

Custom fields are keyed by a random 40-character hex hash per company (api-contracts.md 3.3);
mappings name them by their display name. :class:`FieldMap` reads the ``/v1/<entity>Fields``
answer once per run and resolves names to keys: exact key, then exact name, then the name
case-insensitively, then its snake_case form (what the original app exposed, e.g.
``lead_score`` for "Lead score"). Enum and set values travel as option ids; labels are
translated both ways.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from crm_sync.exceptions import ConfigurationError

__all__ = ["FIELDS_ENDPOINTS", "FieldDef", "FieldMap", "snake_case"]

#: The v1 endpoint listing each entity's fields.
FIELDS_ENDPOINTS = {
    "persons": "personFields",
    "organizations": "organizationFields",
    "deals": "dealFields",
    "activities": "activityFields",
}

_NON_WORD = re.compile(r"[^0-9a-z]+")
_HASH = re.compile(r"^[0-9a-f]{40}$")


def snake_case(name: str) -> str:
    """``"Lead score"`` -> ``"lead_score"``."""
    return _NON_WORD.sub("_", name.strip().lower()).strip("_")


@dataclass(frozen=True)
class FieldDef:
    """One field of an entity: ``key`` is what records use (a hash for custom fields)."""

    key: str
    name: str
    field_type: str
    is_custom: bool
    options: tuple[tuple[int, str], ...] = ()

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FieldDef:
        """Parse one item of a v1 ``*Fields`` answer."""
        options = tuple((int(o["id"]), str(o["label"])) for o in raw.get("options") or [] if "id" in o)
        key = str(raw["key"])
        return cls(
            key=key,
            name=str(raw.get("name") or key),
            field_type=str(raw.get("field_type") or "varchar"),
            # edit_flag marks custom fields; the hash shape is the fallback for older answers.
            is_custom=bool(raw.get("edit_flag")) or bool(_HASH.match(key)),
            options=options,
        )


class FieldMap:
    """The fields of one entity, resolvable by human name."""

    def __init__(self, entity: str, fields: Iterable[FieldDef]) -> None:
        self.entity = entity
        self.fields = tuple(fields)
        self._by_key = {f.key: f for f in self.fields}

    def find(self, name: str) -> FieldDef | None:
        """The field called ``name`` (see the module docstring for the order), or None.

        Raises:
            ConfigurationError: ``name`` matches several fields only case-insensitively.
        """
        if name in self._by_key:
            return self._by_key[name]
        for matcher in (
            lambda f: f.name == name,
            lambda f: f.name.lower() == name.lower(),
            lambda f: snake_case(f.name) == snake_case(name),
        ):
            found = [f for f in self.fields if matcher(f)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise ConfigurationError(
                    f"pipedrive {self.entity}: field name {name!r} is ambiguous ({len(found)} fields match)"
                )
        return None

    def resolve(self, names: Iterable[str]) -> dict[str, FieldDef]:
        """``{name: field}`` for every name.

        Raises:
            ConfigurationError: naming every name that matches no field of the entity.
        """
        resolved: dict[str, FieldDef] = {}
        missing: list[str] = []
        for name in names:
            found = self.find(name)
            if found is None:
                missing.append(name)
            else:
                resolved[name] = found
        if missing:
            raise ConfigurationError(
                f"pipedrive {self.entity}: no field named {', '.join(repr(n) for n in missing)} "
                f"(see /v1/{FIELDS_ENDPOINTS.get(self.entity, self.entity)})"
            )
        return resolved

    def key(self, name: str) -> str:
        """The key of the field called ``name``."""
        return self.resolve([name])[name].key

    def read(
        self, record_values: Mapping[str, Any], custom: Mapping[str, Any], names: Iterable[str]
    ) -> dict[str, Any]:
        """Values of ``names`` from a record (standard keys or ``custom_fields``), option ids as labels."""
        values: dict[str, Any] = {}
        for name, field in self.resolve(names).items():
            raw = custom.get(field.key) if field.is_custom else record_values.get(field.key)
            values[name] = self.decode(field, raw)
        return values

    def write(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A v2 body from ``{name: value}``: standard keys at the top, custom ones under ``custom_fields``."""
        body: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for name, field in self.resolve(values).items():
            encoded = self.encode(field, values[name])
            if field.is_custom:
                custom[field.key] = encoded
            else:
                body[field.key] = encoded
        if custom:
            body["custom_fields"] = custom
        return body

    @staticmethod
    def encode(field: FieldDef, value: Any) -> Any:
        """An enum/set label (or list of labels) as option ids; other values as given.

        Raises:
            ConfigurationError: a label that is not an option of the field.
        """
        if field.field_type not in {"enum", "set"} or value is None or not field.options:
            return value
        by_label = {label.lower(): option_id for option_id, label in field.options}
        ids = {option_id for option_id, _ in field.options}

        def one(item: Any) -> int:
            if isinstance(item, int) and not isinstance(item, bool) and item in ids:
                return item
            option = by_label.get(str(item).lower())
            if option is None:
                raise ConfigurationError(f"pipedrive field {field.name!r}: no option {item!r}")
            return option

        return [one(item) for item in value] if field.field_type == "set" else one(value)

    @staticmethod
    def decode(field: FieldDef, value: Any) -> Any:
        """Option ids as labels (enum/set); other values as given."""
        if field.field_type not in {"enum", "set"} or value is None or not field.options:
            return value
        labels = dict(field.options)
        if isinstance(value, list):
            return [labels.get(item, item) for item in value]
        return labels.get(value, value)
