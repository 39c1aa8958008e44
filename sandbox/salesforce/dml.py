"""Record writes shared by REST, sObject Collections, Bulk 2.0 and seeding: validation + automation."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.salesforce.config import SfConfig
from sandbox.salesforce.errors import ApiError, SfError
from sandbox.salesforce.ids import IdFactory, to_18
from sandbox.salesforce.schema import FieldSchema, ObjectSchema
from sandbox.salesforce.store import Store
from sandbox.salesforce.values import FieldValueError, coerce, format_datetime

CSV_NULL = "#N/A"
DUPLICATE_EMAIL_MESSAGE = "A contact with this email address already exists."


class UnknownFieldError(ApiError):
    """A field name the object does not have: the whole call fails with 400 INVALID_FIELD."""

    def __init__(self, obj: ObjectSchema, name: str) -> None:
        super().__init__(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}")
        self.field_name = name


class NotExternalIdError(ApiError):
    """Upsert keyed by a field that is not an external id: 404 NOT_FOUND, as Salesforce answers."""

    def __init__(self) -> None:
        super().__init__(404, "NOT_FOUND", "The requested resource does not exist")


@dataclass
class Outcome:
    """The result of writing one record."""

    id: str | None
    success: bool
    created: bool = False
    errors: list[SfError] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)
    missing: bool = False

    @classmethod
    def fail(cls, *errors: SfError, record_id: str | None = None, missing: bool = False) -> Outcome:
        """A failed write."""
        return cls(id=record_id, success=False, errors=list(errors), missing=missing)


def now_utc() -> dt.datetime:
    """The emulator clock."""
    return dt.datetime.now(dt.UTC)


class Dml:
    """Validates and applies inserts, updates, upserts and deletes against the store."""

    def __init__(
        self,
        store: Store,
        ids: IdFactory,
        config: Callable[[], SfConfig],
        user_id: str,
        clock: Callable[[], dt.datetime] = now_utc,
    ) -> None:
        self.store = store
        self.ids = ids
        self.config = config
        self.user_id = user_id
        self.clock = clock
        self._auto_numbers: defaultdict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._exists: dict[str, str | None] = {}
        self.automation_enabled: bool | None = None

    # -- helpers ---------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget auto-number counters and caches."""
        self._auto_numbers.clear()
        self._exists.clear()

    def object(self, name: str) -> ObjectSchema:
        """Schema of ``name`` (any case) or 404 NOT_FOUND... as the REST API answers for bad types."""
        for obj in self.store.schemas.values():
            if obj.name.lower() == name.lower():
                return obj
        raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def resolve_fields(self, obj: ObjectSchema, names: Iterable[str]) -> dict[str, FieldSchema]:
        """Map given field names to fields, raising UnknownFieldError on the first unknown one."""
        resolved: dict[str, FieldSchema] = {}
        for name in names:
            if name == "attributes":
                continue
            f = obj.field(name)
            if f is None:
                raise UnknownFieldError(obj, name)
            resolved[name] = f
        return resolved

    def _automation_on(self) -> bool:
        return self.config().automation if self.automation_enabled is None else self.automation_enabled

    def _convert(
        self, obj: ObjectSchema, raw: Mapping[str, Any], fields: Mapping[str, FieldSchema], from_csv: bool
    ) -> tuple[dict[str, Any], list[SfError]]:
        values: dict[str, Any] = {}
        errors: list[SfError] = []
        for name, value in raw.items():
            if name == "attributes":
                continue
            f = fields[name]
            if from_csv:
                if value == "":
                    continue  # Bulk API: an empty value leaves the field unchanged
                if value == CSV_NULL:
                    value = None
            try:
                values[f.name] = coerce(f, value, from_csv=from_csv)
            except FieldValueError as exc:
                errors.append(exc.error)
        return values, errors

    def _parent_type(self, record_id: str) -> str | None:
        """The object a live record id belongs to (cached per id), or None."""
        if record_id in self._exists:
            return self._exists[record_id]
        found = None
        for obj in self.store.schemas.values():
            if record_id.startswith(obj.key_prefix):
                row = self.store.fetch(obj, record_id)
                found = obj.name if row is not None and not row["IsDeleted"] else None
                break
        if found is not None:
            self._exists[record_id] = found
        return found

    def _check_references(self, obj: ObjectSchema, values: Mapping[str, Any]) -> list[SfError]:
        errors = []
        for name, value in values.items():
            f = obj.fields[name]
            if f.type != "reference" or value is None:
                continue
            target = self.store.schemas[f.reference_to or ""]
            if not value.startswith(target.key_prefix):
                errors.append(
                    SfError(
                        "FIELD_INTEGRITY_EXCEPTION", f"{f.label}: id value of incorrect type: {value}", [name]
                    )
                )
            elif self._parent_type(value) is None:
                errors.append(SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name]))
        return errors

    def _check_unique(
        self, obj: ObjectSchema, values: Mapping[str, Any], record_id: str | None
    ) -> list[SfError]:
        errors = []
        for f in obj.unique_fields:
            value = values.get(f.name)
            if value is None:
                continue
            other = self.store.ids_where(obj, f.name, value, exclude_id=record_id, limit=1)
            if other:
                errors.append(
                    SfError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {f.name} duplicates value on record with id: {other[0]}",
                        [f.name],
                    )
                )
        return errors

    def _check_lock(
        self, obj: ObjectSchema, record_id: str | None, values: Mapping[str, Any]
    ) -> list[SfError]:
        locks = self.config().lock_rows
        if not locks:
            return []
        keys = [record_id] if record_id else []
        keys += [str(values[f.name]) for f in obj.external_ids if values.get(f.name) is not None]
        for key in keys:
            if locks.get(key, 0) > 0:
                locks[key] -= 1
                if locks[key] == 0:
                    del locks[key]
                return [
                    SfError(
                        "UNABLE_TO_LOCK_ROW",
                        f"unable to obtain exclusive access to this record or 1 records: {record_id or key}",
                        [],
                    )
                ]
        return []

    def _check_custom_rules(
        self, obj: ObjectSchema, values: Mapping[str, Any], record_id: str | None
    ) -> list[SfError]:
        if obj.name != "Contact" or not self.config().duplicate_email_rule:
            return []
        email = values.get("Email")
        if email and self.store.ids_where(obj, "Email", email, exclude_id=record_id, limit=1):
            return [SfError("FIELD_CUSTOM_VALIDATION_EXCEPTION", DUPLICATE_EMAIL_MESSAGE, [])]
        return []

    def _required_missing(self, obj: ObjectSchema, record: Mapping[str, Any]) -> list[SfError]:
        missing = [name for name in obj.required_fields if record.get(name) is None]
        if not missing:
            return []
        return [
            SfError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing)
        ]

    def _computed(self, obj: ObjectSchema, record: dict[str, Any]) -> None:
        for f in obj.computed_fields:
            if f.computed == "full_name":
                record[f.name] = " ".join(p for p in (record.get("FirstName"), record.get("LastName")) if p)
            elif f.computed == "product_code":
                product = record.get("Product2Id")
                row = self.store.fetch(self.store.schemas["Product2"], product) if product else None
                record[f.name] = row["ProductCode"] if row else None

    # -- writes ----------------------------------------------------------------------------

    def insert(
        self,
        obj: ObjectSchema,
        raw: Mapping[str, Any],
        *,
        from_csv: bool = False,
        allow_id: bool = False,
        fields: Mapping[str, FieldSchema] | None = None,
    ) -> Outcome:
        """Create one record (raises UnknownFieldError for unknown field names)."""
        fields = fields if fields is not None else self.resolve_fields(obj, raw)
        given_id = None
        errors: list[SfError] = []
        body = dict(raw)
        id_key = next((k for k in body if k.lower() == "id"), None)
        if id_key is not None:
            given_id = body.pop(id_key)
            if from_csv and given_id == "":
                given_id = None
            if given_id is not None and not allow_id:
                return Outcome.fail(SfError("INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]))
        read_only = [fields[k].name for k in body if k != "attributes" and not fields[k].createable]
        if read_only:
            errors.append(_read_only_error(read_only, "create"))
        values, type_errors = self._convert(obj, body, fields, from_csv)
        errors += type_errors
        record: dict[str, Any] = {**obj.defaults, **values}
        if "OwnerId" in obj.fields and record.get("OwnerId") is None:
            record["OwnerId"] = self.user_id
        errors += self._required_missing(obj, record)
        if errors:
            return Outcome.fail(*errors)
        record_id: str | None = None
        if given_id is not None:
            record_id = to_18(str(given_id))
            if record_id is None or not record_id.startswith(obj.key_prefix):
                return Outcome.fail(
                    SfError("MALFORMED_ID", f"Record ID: id value of incorrect type: {given_id}", ["Id"])
                )
            if self.store.fetch(obj, record_id) is not None:
                return Outcome.fail(
                    SfError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: Id duplicates value on record with id: {record_id}",
                        ["Id"],
                    )
                )
        errors += self._check_references(obj, values)
        errors += self._check_unique(obj, record, None)
        errors += self._check_custom_rules(obj, record, None)
        if not errors:
            errors += self._check_lock(obj, None, record)
        if errors:
            return Outcome.fail(*errors)
        record_id = record_id or self.ids.new(obj.key_prefix)
        self._write_new(obj, record_id, record)
        if obj.name == "Contact" and record.get("HP_PMI_ID__c") and self._automation_on():
            self._create_journey(record_id, record)
        return Outcome(id=record_id, success=True, created=True)

    def _write_new(self, obj: ObjectSchema, record_id: str, record: dict[str, Any]) -> None:
        stamp = format_datetime(self.clock())
        for f in obj.auto_number_fields:
            if record.get(f.name) is None:
                record[f.name] = f.auto_number.format(next(self._auto_numbers[f"{obj.name}.{f.name}"]))
        self._computed(obj, record)
        record.update(
            Id=record_id,
            IsDeleted=0,
            CreatedDate=stamp,
            LastModifiedDate=stamp,
            SystemModstamp=stamp,
            CreatedById=self.user_id,
            LastModifiedById=self.user_id,
        )
        self.store.insert(obj, record)
        self._exists[record_id] = obj.name

    def _create_journey(self, contact_id: str, contact: Mapping[str, Any]) -> None:
        """Salesforce-side automation of seed 000: every participant Contact gets a journey."""
        opportunity = self.store.schemas["Opportunity"]
        pmi = contact["HP_PMI_ID__c"]
        journey = {
            "Name": f"{pmi} Journey"[:120],
            "StageName": self.config().journey_stage,
            "CloseDate": self.clock().date().isoformat(),
            "Contact__c": contact_id,
            "ContactId": contact_id,
            "HP_PMI_ID__c": pmi,
            "AccountId": contact.get("AccountId"),
            "OwnerId": contact.get("OwnerId") or self.user_id,
            "HP_Samples_for_DNA_Received__c": 0,
        }
        self._write_new(opportunity, self.ids.new(opportunity.key_prefix), journey)

    def update(
        self,
        obj: ObjectSchema,
        record_id: str,
        raw: Mapping[str, Any],
        *,
        from_csv: bool = False,
        fields: Mapping[str, FieldSchema] | None = None,
    ) -> Outcome:
        """Change one record by id (raises UnknownFieldError for unknown field names)."""
        fields = fields if fields is not None else self.resolve_fields(obj, raw)
        body = {k: v for k, v in raw.items() if k.lower() != "id"}
        normalised = to_18(record_id) if isinstance(record_id, str) else None
        if normalised is None:
            return Outcome.fail(
                SfError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {record_id}", ["Id"])
            )
        if not normalised.startswith(obj.key_prefix):
            return Outcome.fail(
                SfError("MALFORMED_ID", f"{obj.label} ID: id value of incorrect type: {record_id}", ["Id"]),
                missing=True,
            )
        existing = self.store.fetch(obj, normalised)
        if existing is None:
            return Outcome.fail(
                SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []),
                record_id=normalised,
                missing=True,
            )
        if existing["IsDeleted"]:
            return Outcome.fail(
                SfError("ENTITY_IS_DELETED", "entity is deleted", []), record_id=normalised, missing=True
            )
        return self._apply_update(obj, existing, body, fields, from_csv)

    def _apply_update(
        self,
        obj: ObjectSchema,
        existing: dict[str, Any],
        body: Mapping[str, Any],
        fields: Mapping[str, FieldSchema],
        from_csv: bool,
    ) -> Outcome:
        record_id = existing["Id"]
        errors: list[SfError] = []
        read_only = [fields[k].name for k in body if k != "attributes" and not fields[k].updateable]
        if read_only:
            errors.append(_read_only_error(read_only, "update"))
        values, type_errors = self._convert(obj, body, fields, from_csv)
        errors += type_errors
        merged = {**existing, **values}
        for name, value in values.items():
            if value is None and obj.fields[name].type == "boolean":
                values[name] = merged[name] = 0
        nulled = [name for name in obj.required_fields if name in values and values[name] is None]
        if nulled:
            errors.append(
                SfError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(nulled)}]", nulled
                )
            )
        if errors:
            return Outcome.fail(*errors, record_id=record_id)
        errors += self._check_references(obj, values)
        errors += self._check_unique(obj, values, record_id)
        errors += self._check_custom_rules(obj, values, record_id)
        if not errors:
            errors += self._check_lock(obj, record_id, merged)
        if errors:
            return Outcome.fail(*errors, record_id=record_id)
        self._computed(obj, merged)
        changes = {k: merged[k] for k in merged if merged[k] != existing.get(k)}
        stamp = format_datetime(self.clock())
        changes.update(LastModifiedDate=stamp, SystemModstamp=stamp, LastModifiedById=self.user_id)
        self.store.update(obj, record_id, changes)
        if (
            obj.name == "Contact"
            and merged.get("HP_PMI_ID__c")
            and not existing.get("HP_PMI_ID__c")
            and self._automation_on()
            and not self.store.ids_where(self.store.schemas["Opportunity"], "Contact__c", record_id, limit=1)
        ):
            self._create_journey(record_id, merged)
        return Outcome(id=record_id, success=True, created=False)

    def external_field(self, obj: ObjectSchema, name: str) -> FieldSchema:
        """The upsert key field, or NotExternalIdError (404) when it is not an external id."""
        f = obj.field(name)
        if f is None or not (f.external_id or f.name == "Id"):
            raise NotExternalIdError()
        return f

    def find_by_external(self, obj: ObjectSchema, key: FieldSchema, value: Any) -> list[str]:
        """Ids of live records whose external id ``key`` equals ``value`` (invalid values match none)."""
        try:
            stored = coerce(key, value, from_csv=False)
        except FieldValueError:
            return []
        if stored is None:
            return []
        return self.store.ids_where(obj, key.name, stored)

    def upsert(
        self,
        obj: ObjectSchema,
        key: FieldSchema,
        value: Any,
        raw: Mapping[str, Any],
        *,
        from_csv: bool = False,
        update_only: bool = False,
        fields: Mapping[str, FieldSchema] | None = None,
    ) -> Outcome:
        """Insert or update the record whose external id ``key`` is ``value``."""
        fields = fields if fields is not None else self.resolve_fields(obj, raw)
        if value is None or value == "":
            return Outcome.fail(SfError("MISSING_ARGUMENT", f"{key.name} not specified", [key.name]))
        body = dict(raw)
        given_key = next((k for k in body if k.lower() == key.name.lower()), None)
        if given_key is not None:
            in_body = body.pop(given_key)
            if str(in_body).lower() != str(value).lower():
                return Outcome.fail(
                    SfError(
                        "INVALID_FIELD",
                        f"{key.name}: the body value does not match the key value",
                        [key.name],
                    )
                )
        try:
            stored_key = coerce(key, value, from_csv=from_csv)
        except FieldValueError as exc:
            return Outcome.fail(exc.error)
        matches = self.store.ids_where(obj, key.name, stored_key)
        if len(matches) > 1:
            outcome = Outcome.fail(
                SfError(
                    "DUPLICATE_EXTERNAL_ID",
                    f"{key.label}: more than one record found for external id field: {matches}",
                    [key.name],
                )
            )
            outcome.matches = matches
            return outcome
        if matches:
            existing = self.store.fetch(obj, matches[0])
            assert existing is not None
            return self._apply_update(obj, existing, body, fields, from_csv)
        if update_only or key.name == "Id":
            return Outcome.fail(
                SfError("NOT_FOUND", "The requested resource does not exist", []), missing=True
            )
        body[key.name] = value
        insert_fields = dict(fields)
        insert_fields[key.name] = key
        return self.insert(obj, body, from_csv=from_csv, fields=insert_fields)

    def delete(self, obj: ObjectSchema, record_id: str, *, hard: bool = False) -> Outcome:
        """Move a record to the recycle bin (``hard``: erase it)."""
        normalised = to_18(record_id) if isinstance(record_id, str) else None
        if normalised is None or not normalised.startswith(obj.key_prefix):
            return Outcome.fail(SfError("MALFORMED_ID", f"malformed id {record_id}", []), missing=True)
        existing = self.store.fetch(obj, normalised)
        if existing is None:
            return Outcome.fail(
                SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []), missing=True
            )
        if existing["IsDeleted"]:
            return Outcome.fail(
                SfError("ENTITY_IS_DELETED", "entity is deleted", []), record_id=normalised, missing=True
            )
        errors = self._check_lock(obj, normalised, existing)
        if errors:
            return Outcome.fail(*errors, record_id=normalised)
        if hard:
            with self.store.lock:
                self.store.db.execute(f'DELETE FROM "{obj.name}" WHERE Id = ?', [normalised])
        else:
            stamp = format_datetime(self.clock())
            self.store.update(obj, normalised, {"IsDeleted": 1, "SystemModstamp": stamp})
        self._exists.pop(normalised, None)
        return Outcome(id=normalised, success=True)


def _read_only_error(names: list[str], verb: str) -> SfError:
    return SfError(
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"Unable to {verb} fields: {', '.join(names)}. Please check the security settings of this field "
        "and verify that it is read/write for your profile or permission set.",
        names,
    )
