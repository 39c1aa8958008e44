"""Object schemas loaded from ``schema/*.yaml`` and validated at load."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIR = Path(__file__).parent / "schema"

FIELD_TYPES = {
    "id",
    "string",
    "textarea",
    "email",
    "phone",
    "url",
    "date",
    "datetime",
    "boolean",
    "double",
    "currency",
    "percent",
    "int",
    "picklist",
    "reference",
}
TEXT_TYPES = {"id", "string", "textarea", "email", "phone", "url", "picklist", "reference"}
NUMBER_TYPES = {"double", "currency", "percent", "int"}
FIELD_KEYS = {
    "name",
    "label",
    "type",
    "length",
    "required",
    "unique",
    "externalId",
    "values",
    "restricted",
    "referenceTo",
    "relationshipName",
    "createable",
    "updateable",
    "default",
    "computed",
    "autoNumber",
    "precision",
    "scale",
}
SYSTEM_FIELDS: list[dict[str, Any]] = [
    {
        "name": "Id",
        "label": "Record ID",
        "type": "id",
        "length": 18,
        "createable": False,
        "updateable": False,
    },
    {"name": "IsDeleted", "label": "Deleted", "type": "boolean", "createable": False, "updateable": False},
    {
        "name": "CreatedDate",
        "label": "Created Date",
        "type": "datetime",
        "createable": False,
        "updateable": False,
    },
    {
        "name": "CreatedById",
        "label": "Created By ID",
        "type": "reference",
        "referenceTo": "User",
        "relationshipName": "CreatedBy",
        "createable": False,
        "updateable": False,
    },
    {
        "name": "LastModifiedDate",
        "label": "Last Modified Date",
        "type": "datetime",
        "createable": False,
        "updateable": False,
    },
    {
        "name": "LastModifiedById",
        "label": "Last Modified By ID",
        "type": "reference",
        "referenceTo": "User",
        "relationshipName": "LastModifiedBy",
        "createable": False,
        "updateable": False,
    },
    {
        "name": "SystemModstamp",
        "label": "System Modstamp",
        "type": "datetime",
        "createable": False,
        "updateable": False,
    },
]


class SchemaError(ValueError):
    """A schema file that does not describe a valid object."""


@dataclass(frozen=True)
class FieldSchema:
    """One field of an sObject."""

    name: str
    label: str
    type: str
    length: int = 0
    required: bool = False
    unique: bool = False
    external_id: bool = False
    values: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: str | None = None
    relationship_name: str | None = None
    createable: bool = True
    updateable: bool = True
    default: Any = None
    computed: str | None = None
    auto_number: str | None = None
    custom: bool = False

    @property
    def nillable(self) -> bool:
        """Whether the field accepts null (booleans and required fields do not)."""
        return not self.required and self.type != "boolean" and self.name != "Id"

    @property
    def is_text(self) -> bool:
        """Stored and compared as text."""
        return self.type in TEXT_TYPES


@dataclass
class ObjectSchema:
    """An sObject: name, key prefix and fields (case-insensitive lookup)."""

    name: str
    label: str
    key_prefix: str
    fields: dict[str, FieldSchema]
    custom: bool = False
    _lower: dict[str, str] = field(default_factory=dict, repr=False)
    _relationships: dict[str, FieldSchema] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lower = {name.lower(): name for name in self.fields}
        self._relationships = {
            f.relationship_name.lower(): f for f in self.fields.values() if f.relationship_name
        }

    def field(self, name: str) -> FieldSchema | None:
        """The field called ``name`` (any case), or None."""
        canonical = self._lower.get(name.lower())
        return self.fields[canonical] if canonical else None

    def relationship(self, name: str) -> FieldSchema | None:
        """The reference field whose relationship name is ``name`` (e.g. ``Account``), or None."""
        return self._relationships.get(name.lower())

    @functools.cached_property
    def external_ids(self) -> list[FieldSchema]:
        """Fields flagged as external ids."""
        return [f for f in self.fields.values() if f.external_id]

    @functools.cached_property
    def unique_fields(self) -> list[FieldSchema]:
        """Fields with a uniqueness constraint."""
        return [f for f in self.fields.values() if f.unique]

    @functools.cached_property
    def required_fields(self) -> list[str]:
        """Names of fields that must not be null."""
        return [f.name for f in self.fields.values() if f.required]

    @functools.cached_property
    def defaults(self) -> dict[str, Any]:
        """Values fields take when an insert leaves them out."""
        return {f.name: f.default for f in self.fields.values() if f.default is not None}

    @functools.cached_property
    def computed_fields(self) -> list[FieldSchema]:
        """Read-only fields derived from others (``computed``)."""
        return [f for f in self.fields.values() if f.computed]

    @functools.cached_property
    def auto_number_fields(self) -> list[FieldSchema]:
        """Fields numbered by Salesforce on insert."""
        return [f for f in self.fields.values() if f.auto_number]


def _default_relationship(name: str) -> str:
    if name.endswith("__c"):
        return name[:-3] + "__r"
    if name.endswith("Id"):
        return name[:-2]
    raise SchemaError(f"reference field {name} needs a relationshipName")


def _parse_field(obj: str, raw: dict[str, Any]) -> FieldSchema:
    unknown = set(raw) - FIELD_KEYS
    if unknown:
        raise SchemaError(f"{obj}.{raw.get('name')}: unknown keys {sorted(unknown)}")
    name = raw["name"]
    ftype = raw.get("type")
    if ftype not in FIELD_TYPES:
        raise SchemaError(f"{obj}.{name}: type {ftype!r} is not one of {sorted(FIELD_TYPES)}")
    if ftype in {"string", "textarea", "email", "phone", "url", "picklist"} and not raw.get("length"):
        raise SchemaError(f"{obj}.{name}: text fields need a length")
    if ftype == "picklist" and not raw.get("values"):
        raise SchemaError(f"{obj}.{name}: picklists need values")
    if ftype == "reference" and not raw.get("referenceTo"):
        raise SchemaError(f"{obj}.{name}: references need referenceTo")
    computed = raw.get("computed") or None
    read_only = bool(computed or raw.get("autoNumber"))
    length = int(raw.get("length") or (18 if ftype in {"id", "reference"} else 0))
    return FieldSchema(
        name=name,
        label=raw.get("label", name.removesuffix("__c").replace("_", " ")),
        type=ftype,
        length=length,
        required=bool(raw.get("required", False)),
        unique=bool(raw.get("unique", False)),
        external_id=bool(raw.get("externalId", False)),
        values=tuple(str(v) for v in raw.get("values", ())),
        restricted=bool(raw.get("restricted", False)),
        reference_to=raw.get("referenceTo"),
        relationship_name=(raw.get("relationshipName") or _default_relationship(name))
        if ftype == "reference"
        else None,
        createable=bool(raw.get("createable", not read_only)),
        updateable=bool(raw.get("updateable", not read_only)),
        default=raw.get("default", False if ftype == "boolean" else None),
        computed=computed,
        auto_number=raw.get("autoNumber"),
        custom=name.endswith("__c"),
    )


def load_object(path: Path) -> ObjectSchema:
    """Parse one ``schema/<Object>.yaml``."""
    raw = yaml.safe_load(path.read_text())
    name = raw["name"]
    prefix = str(raw["keyPrefix"])
    if len(prefix) != 3:
        raise SchemaError(f"{name}: keyPrefix must be 3 characters")
    fields: dict[str, FieldSchema] = {}
    for entry in [*SYSTEM_FIELDS, *raw["fields"]]:
        parsed = _parse_field(name, entry)
        if parsed.name.lower() in {f.lower() for f in fields}:
            raise SchemaError(f"{name}: field {parsed.name} declared twice")
        fields[parsed.name] = parsed
    return ObjectSchema(
        name=name, label=raw.get("label", name), key_prefix=prefix, fields=fields, custom=name.endswith("__c")
    )


@functools.cache
def load_schemas(directory: Path = SCHEMA_DIR) -> dict[str, ObjectSchema]:
    """All object schemas by name, with references checked."""
    objects = {obj.name: obj for obj in (load_object(path) for path in sorted(directory.glob("*.yaml")))}
    prefixes: dict[str, str] = {}
    for obj in objects.values():
        if obj.key_prefix in prefixes:
            raise SchemaError(f"{obj.name} and {prefixes[obj.key_prefix]} share keyPrefix {obj.key_prefix}")
        prefixes[obj.key_prefix] = obj.name
        for f in obj.fields.values():
            if f.reference_to and f.reference_to not in objects:
                raise SchemaError(f"{obj.name}.{f.name} references unknown object {f.reference_to}")
    return objects
