"""Leads, companies, opportunities and roles as Marketo stores and validates them."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sandbox.marketo.activities import (
    CHANGE_DATA_VALUE,
    DELETE_LEAD,
    NEW_LEAD,
    STANDARD_TYPES,
    Activity,
    ActivityLog,
)
from sandbox.marketo.errors import MarketoError, RecordError, reason
from sandbox.marketo.schema import (
    LEAD_DEFAULT_FIELDS,
    LEAD_FIELDS,
    OBJECT_TYPES,
    OPPORTUNITY,
    FieldDef,
    ObjectType,
    coerce,
    format_datetime,
    parse_datetime,
)

MAX_BATCH = 300
MAX_MATCHES = 1000
LEAD_ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")
OBJECT_ACTIONS = ("createOrUpdate", "createOnly", "updateOnly")
API_SOURCE = "Web service API"
DEFAULT_CUSTOM_TYPE: dict[str, Any] = {
    "id": 100001,
    "apiName": "pipedriveFollowUp",
    "name": "Pipedrive Follow-up",
    "description": "A follow-up activity was created in Pipedrive",
    "triggerName": "Gets Pipedrive Follow-up",
    "filterName": "Got Pipedrive Follow-up",
    "status": "approved",
    "primaryAttribute": {"apiName": "subject", "name": "Subject", "dataType": "string"},
    "attributes": [
        {"apiName": "pipedriveActivityId", "name": "Pipedrive Activity Id", "dataType": "integer"},
        {"apiName": "dueDate", "name": "Due Date", "dataType": "date"},
        {"apiName": "activityType", "name": "Activity Type", "dataType": "string"},
    ],
}


def _now() -> datetime:
    return datetime.now(UTC)


def check_batch(records: Any, name: str = "input") -> list[Any]:
    """The ``input`` array of a write: a list of at most 300 entries.

    Raises:
        MarketoError: 701 when missing or empty, 1003 when not a list or over 300.
    """
    if records is None or records == []:
        raise MarketoError("701", f"{name} cannot be blank")
    if not isinstance(records, list):
        raise MarketoError("1003", f"Invalid value for '{name}': expected a JSON array")
    if len(records) > MAX_BATCH:
        raise MarketoError("1003", f"Batch size of {len(records)} exceeds the maximum of {MAX_BATCH}")
    return records


def batch_size(raw: Any) -> int:
    """``batchSize`` (default and maximum 300)."""
    if raw in (None, ""):
        return MAX_BATCH
    try:
        size = int(raw)
    except (TypeError, ValueError):
        raise MarketoError("1003", "Invalid value for batchSize") from None
    if not 1 <= size <= MAX_BATCH:
        raise MarketoError("1003", f"batchSize must be between 1 and {MAX_BATCH}")
    return size


def split_list(raw: Any) -> list[str]:
    """A comma-separated parameter (or a JSON list) as stripped, non-empty strings."""
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else str(raw).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _offset_token(offset: int) -> str:
    return base64.b32encode(f"mkto-query:{offset}".encode()).decode()


def _offset_of(token: str | None) -> int:
    if not token:
        return 0
    try:
        raw = base64.b32decode(token.encode(), casefold=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise MarketoError("1003", "Invalid value for nextPageToken") from None
    prefix, _, number = raw.partition(":")
    if prefix != "mkto-query" or not number.isdigit():
        raise MarketoError("1003", "Invalid value for nextPageToken")
    return int(number)


def _paged(
    rows: list[dict[str, Any]], size: int, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    start = _offset_of(token)
    page = rows[start : start + size]
    more = start + size < len(rows)
    return page, _offset_token(start + size) if more else None


def _norm(value: Any) -> str:
    return str(value).strip().lower()


class Store:
    """The instance's data. Not thread-safe: the backend serialises calls."""

    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self.clock = clock
        self.lead_fields: dict[str, FieldDef] = {}
        for spec in LEAD_FIELDS:
            self.add_lead_field(spec)
        self.leads: dict[int, dict[str, Any]] = {}
        self.last_lead_id = 1000
        self.objects: dict[str, dict[Any, dict[str, Any]]] = {path: {} for path in OBJECT_TYPES}
        self.last_company_id = 500
        self.activities = ActivityLog()
        self.custom_types: dict[int, dict[str, Any]] = {DEFAULT_CUSTOM_TYPE["id"]: dict(DEFAULT_CUSTOM_TYPE)}

    # ---- lead schema ---------------------------------------------------------------------------

    def add_lead_field(self, spec: FieldDef) -> FieldDef:
        """Add (or replace) a lead field, giving it a field id."""
        existing = self.lead_fields.get(spec.name)
        spec = replace(spec, field_id=existing.field_id if existing else len(self.lead_fields) + 1)
        self.lead_fields[spec.name] = spec
        return spec

    def describe_leads(self) -> list[dict[str, Any]]:
        """``leads/describe.json`` results."""
        return [
            {
                "id": spec.field_id,
                "displayName": spec.label,
                "dataType": spec.data_type,
                **({"length": spec.length} if spec.length else {}),
                "rest": {"name": spec.name, "readOnly": spec.read_only},
                "soap": {"name": spec.name[0].upper() + spec.name[1:], "readOnly": spec.read_only},
            }
            for spec in self.lead_fields.values()
        ]

    def describe2_leads(self) -> list[dict[str, Any]]:
        """``leads/describe2.json`` results."""
        return [
            {
                "name": "API Lead",
                "searchableFields": [[s.name] for s in self.lead_fields.values() if s.searchable],
                "fields": [
                    {
                        "name": s.name,
                        "displayName": s.label,
                        "dataType": s.data_type,
                        "length": s.length,
                        "updateable": not s.read_only,
                        "crmManaged": False,
                    }
                    for s in self.lead_fields.values()
                ],
            }
        ]

    def _lead_field(self, name: str) -> FieldDef:
        spec = self.lead_fields.get(name)
        if spec is None:
            raise RecordError("1006", f"Field '{name}' not found")
        return spec

    def _wanted_fields(self, raw: Any, default: Sequence[str], known: Mapping[str, FieldDef]) -> list[str]:
        names = split_list(raw) or list(default)
        for name in names:
            if name not in known:
                raise MarketoError("1006", f"Field '{name}' not found")
        return names

    # ---- leads ---------------------------------------------------------------------------------

    def lead_view(self, lead: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
        """The requested fields of a lead (always with ``id``; unset fields are null)."""
        return {"id": lead["id"], **{name: lead.get(name) for name in names if name != "id"}}

    def get_lead(self, lead_id: str, fields: Any) -> list[dict[str, Any]]:
        """``lead/{id}.json``: ``[lead]`` or ``[]``."""
        names = self._wanted_fields(fields, LEAD_DEFAULT_FIELDS, self.lead_fields)
        lead = self.leads.get(int(lead_id)) if lead_id.isdigit() else None
        return [self.lead_view(lead, names)] if lead else []

    def query_leads(
        self, filter_type: Any, filter_values: Any, fields: Any, size: Any, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """``GET leads.json``: leads whose ``filterType`` field is one of ``filterValues``."""
        if not filter_type:
            raise MarketoError("701", "filterType cannot be blank")
        values = split_list(filter_values)
        if not values:
            raise MarketoError("701", "filterValues cannot be blank")
        if len(values) > MAX_BATCH:
            raise MarketoError("1003", f"filterValues may hold at most {MAX_BATCH} values")
        spec = self.lead_fields.get(str(filter_type))
        if spec is None or not spec.searchable:
            raise MarketoError("1011", f"Field '{filter_type}' not supported")
        names = self._wanted_fields(fields, LEAD_DEFAULT_FIELDS, self.lead_fields)
        wanted = {_norm(v) for v in values}
        matches = [
            lead
            for lead in self.leads.values()
            if lead.get(spec.name) is not None and _norm(lead[spec.name]) in wanted
        ]
        if len(matches) > MAX_MATCHES:
            raise MarketoError("1003", "Too many results")
        rows = [self.lead_view(lead, names) for lead in sorted(matches, key=lambda lead: lead["id"])]
        return _paged(rows, batch_size(size), token)

    def _lead_values(self, record: Mapping[str, Any], lookup: str, action: str) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, raw in record.items():
            spec = self._lead_field(name)
            if name == "id":
                if action != "updateOnly":
                    raise RecordError("1003", "Invalid data: 'id' is only allowed with action updateOnly")
                continue
            if spec.read_only:
                continue  # Marketo ignores read-only fields on sync
            values[name] = coerce(spec, raw)
        if lookup == "id" and "id" in record:
            coerce(self.lead_fields["id"], record["id"])
        return values

    def sync_leads(self, body: Mapping[str, Any], source: str = API_SOURCE) -> list[dict[str, Any]]:
        """``POST leads.json``: one result per input record, in input order."""
        action = body.get("action") or "createOrUpdate"
        if action not in LEAD_ACTIONS:
            raise MarketoError("1003", f"Invalid action '{action}'")
        lookup = body.get("lookupField") or "email"
        spec = self.lead_fields.get(str(lookup))
        if spec is None or not spec.searchable:
            raise MarketoError("1011", f"Field '{lookup}' not supported")
        if lookup == "id" and action != "updateOnly":
            raise MarketoError("1003", "lookupField 'id' is only allowed with action updateOnly")
        records = check_batch(body.get("input"))
        index: dict[str, list[int]] = {}
        for lead in self.leads.values():
            if lead.get(lookup) is not None:
                index.setdefault(_norm(lead[lookup]), []).append(lead["id"])
        return [self._sync_lead(record, action, lookup, index, source) for record in records]

    def _sync_lead(
        self, record: Any, action: str, lookup: str, index: dict[str, list[int]], source: str
    ) -> dict[str, Any]:
        try:
            return self._write_lead(record, action, lookup, index, source)
        except RecordError as exc:
            return {"status": "skipped", "reasons": [reason(exc.code, exc.message)]}

    def _write_lead(
        self, record: Any, action: str, lookup: str, index: dict[str, list[int]], source: str
    ) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise RecordError("1003", "Invalid data")
        values = self._lead_values(record, lookup, action)
        key = record.get(lookup)
        matches = index.get(_norm(key), []) if key not in (None, "") else []
        if action == "createDuplicate" or not matches:
            if action == "updateOnly":
                raise RecordError("1004", "Lead not found")
            lead = self.create_lead(values, source)
            if lead.get(lookup) is not None:
                index.setdefault(_norm(lead[lookup]), []).append(lead["id"])
            return {"id": lead["id"], "status": "created"}
        if len(matches) > 1:
            raise RecordError("1007", "Multiple leads match the lookup criteria")
        if action == "createOnly":
            raise RecordError("1005", "Lead already exists")
        lead = self.leads[matches[0]]
        self.update_lead(lead, values, source)
        return {"id": lead["id"], "status": "updated"}

    def create_lead(
        self, values: Mapping[str, Any], source: str = API_SOURCE, *, lead_id: int | None = None
    ) -> dict[str, Any]:
        """Store a new lead and log its New Lead activity."""
        now = self.clock()
        if lead_id is None:
            self.last_lead_id += 1
            lead_id = self.last_lead_id
        new_id = lead_id
        lead = {"id": new_id, **values, "createdAt": format_datetime(now), "updatedAt": format_datetime(now)}
        self.leads[new_id] = lead
        name = " ".join(str(lead[n]) for n in ("firstName", "lastName") if lead.get(n)) or None
        self.activities.add(
            Activity(
                id=0,
                lead_id=new_id,
                date=now,
                type_id=NEW_LEAD,
                primary_value=name,
                primary_value_id=new_id,
                attributes=[{"name": "Source Type", "value": source}],
            )
        )
        return lead

    def update_lead(self, lead: dict[str, Any], values: Mapping[str, Any], source: str = API_SOURCE) -> int:
        """Apply ``values``; log one Change Data Value activity per changed field."""
        now = self.clock()
        changed = 0
        for name, new in values.items():
            old = lead.get(name)
            if old == new:
                continue
            spec = self.lead_fields[name]
            lead[name] = new
            changed += 1
            self.activities.add(
                Activity(
                    id=0,
                    lead_id=lead["id"],
                    date=now,
                    type_id=CHANGE_DATA_VALUE,
                    primary_value=spec.label,
                    primary_value_id=spec.field_id,
                    attributes=[
                        {"name": "New Value", "value": new},
                        {"name": "Old Value", "value": old},
                        {"name": "Reason", "value": source},
                        {"name": "Source", "value": source},
                    ],
                    changes=[(spec.field_id, name, new, old)],
                )
            )
        if changed:
            lead["updatedAt"] = format_datetime(now)
        return changed

    def delete_leads(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``POST leads/delete.json``: ``{id, status: deleted}`` or skipped 1004."""
        out = []
        for record in check_batch(body.get("input")):
            raw = record.get("id") if isinstance(record, dict) else None
            lead_id = int(raw) if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()) else None
            lead = self.leads.pop(lead_id, None) if lead_id is not None else None
            if lead is None:
                out.append({"id": raw, "status": "skipped", "reasons": [reason("1004", "Lead not found")]})
                continue
            name = " ".join(str(lead[n]) for n in ("firstName", "lastName") if lead.get(n)) or None
            self.activities.add(
                Activity(
                    id=0,
                    lead_id=lead["id"],
                    date=self.clock(),
                    type_id=DELETE_LEAD,
                    primary_value=name,
                    primary_value_id=lead["id"],
                )
            )
            out.append({"id": lead["id"], "status": "deleted"})
        return out

    # ---- companies, opportunities, roles -----------------------------------------------------

    def _key(self, otype: ObjectType, fields: Sequence[str], record: Mapping[str, Any]) -> tuple[Any, ...]:
        key = []
        for name in fields:
            raw = record.get(name)
            if raw in (None, ""):
                raise RecordError("1003", f"Value for required field '{name}' not specified")
            key.append(_norm(coerce(otype.by_name[name], raw)))
        return tuple(key)

    def _index(self, otype: ObjectType, fields: Sequence[str]) -> dict[tuple[Any, ...], Any]:
        return {
            tuple(_norm(obj.get(f)) for f in fields): oid for oid, obj in self.objects[otype.path].items()
        }

    def sync_objects(self, otype: ObjectType, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``POST <objects>.json``: ``{seq, status, <idField>}`` or skipped with reasons."""
        action = body.get("action") or "createOrUpdate"
        if action not in OBJECT_ACTIONS:
            raise MarketoError("1003", f"Invalid action '{action}'")
        dedupe_by = body.get("dedupeBy") or "dedupeFields"
        if dedupe_by not in ("dedupeFields", "idField"):
            raise MarketoError("1003", f"Invalid dedupeBy '{dedupe_by}'")
        if dedupe_by == "idField" and action != "updateOnly":
            raise MarketoError("1003", "dedupeBy idField is only allowed with action updateOnly")
        key_fields = otype.dedupe_fields if dedupe_by == "dedupeFields" else (otype.id_field,)
        records = check_batch(body.get("input"))
        index = self._index(otype, key_fields)
        seen: set[tuple[Any, ...]] = set()
        out = []
        for seq, record in enumerate(records):
            try:
                out.append({"seq": seq, **self._sync_object(otype, record, action, key_fields, index, seen)})
            except RecordError as exc:
                out.append({"seq": seq, "status": "skipped", "reasons": [reason(exc.code, exc.message)]})
        return out

    def _sync_object(
        self,
        otype: ObjectType,
        record: Any,
        action: str,
        key_fields: Sequence[str],
        index: dict[tuple[Any, ...], Any],
        seen: set[tuple[Any, ...]],
    ) -> dict[str, Any]:
        if not isinstance(record, dict):
            raise RecordError("1003", "Invalid data")
        for name in record:
            if name not in otype.by_name:
                raise RecordError("1006", f"Field '{name}' not found")
        key = self._key(otype, key_fields, record)
        if key in seen:
            raise RecordError("1036", "Duplicate value for dedupe fields in input")
        seen.add(key)
        existing = index.get(key)
        if existing is not None and action == "createOnly":
            raise RecordError("1005", "Record already exists")
        if existing is None and action == "updateOnly":
            raise RecordError("1013", "Record not found")
        writable = {
            name: coerce(otype.by_name[name], raw)
            for name, raw in record.items()
            if not otype.by_name[name].read_only
        }
        now = format_datetime(self.clock())
        if existing is not None:
            obj = self.objects[otype.path][existing]
            changed = {k: v for k, v in writable.items() if obj.get(k) != v}
            obj.update(changed)
            if changed:
                obj["updatedAt"] = now
            return {"status": "updated", otype.id_field: existing}
        for name in otype.required:
            if writable.get(name) is None:
                raise RecordError("1003", f"Value for required field '{name}' not specified")
        dedupe = {name: coerce(otype.by_name[name], record[name]) for name in otype.dedupe_fields}
        self._check_references(otype, dedupe)
        new_id: Any = str(uuid.uuid4())
        if not otype.guid_ids:
            self.last_company_id += 1
            new_id = self.last_company_id
        self.objects[otype.path][new_id] = {
            otype.id_field: new_id,
            **dedupe,
            **writable,
            "createdAt": now,
            "updatedAt": now,
        }
        index[key] = new_id
        return {"status": "created", otype.id_field: new_id}

    def _check_references(self, otype: ObjectType, dedupe: Mapping[str, Any]) -> None:
        """A role's opportunity and lead must exist (api-contracts.md section 2.2)."""
        if otype.path != "opportunities/roles":
            return
        wanted = _norm(dedupe["externalOpportunityId"])
        if not any(
            _norm(o.get("externalOpportunityId")) == wanted for o in self.objects[OPPORTUNITY.path].values()
        ):
            raise RecordError("1013", "Opportunity not found")
        if dedupe["leadId"] not in self.leads:
            raise RecordError("1004", "Lead not found")

    def query_objects(
        self, otype: ObjectType, params: Mapping[str, Any]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """``GET <objects>.json``: by a searchable field, or by compound dedupe fields (``input``)."""
        filter_type = params.get("filterType")
        if not filter_type:
            raise MarketoError("701", "filterType cannot be blank")
        names = self._wanted_fields(
            params.get("fields"),
            (otype.id_field, *otype.dedupe_fields, "updatedAt", "createdAt"),
            otype.by_name,
        )
        if filter_type == "dedupeFields" and len(otype.dedupe_fields) > 1:
            keys = {self._compound(otype, item) for item in check_batch(params.get("input"))}
            match: Callable[[dict[str, Any]], bool] = lambda obj: (  # noqa: E731
                tuple(_norm(obj.get(f)) for f in otype.dedupe_fields) in keys
            )
        else:
            field_name = otype.dedupe_fields[0] if filter_type == "dedupeFields" else str(filter_type)
            if [field_name] not in [list(g) for g in otype.searchable]:
                raise MarketoError("1003", f"Invalid filterType '{filter_type}'")
            values = split_list(params.get("filterValues"))
            if not values:
                raise MarketoError("701", "filterValues cannot be blank")
            if len(values) > MAX_BATCH:
                raise MarketoError("1003", f"filterValues may hold at most {MAX_BATCH} values")
            wanted = {_norm(v) for v in values}
            match = lambda obj: obj.get(field_name) is not None and _norm(obj[field_name]) in wanted  # noqa: E731
        rows = [obj for obj in self.objects[otype.path].values() if match(obj)]
        if len(rows) > MAX_MATCHES:
            raise MarketoError("1003", "Too many results")
        page, token = _paged(
            [{name: obj.get(name) for name in names} for obj in rows],
            batch_size(params.get("batchSize")),
            params.get("nextPageToken"),
        )
        return [{"seq": seq, **row} for seq, row in enumerate(page)], token

    def _compound(self, otype: ObjectType, item: Any) -> tuple[Any, ...]:
        if not isinstance(item, dict):
            raise MarketoError("1003", "Invalid data in input")
        try:
            return self._key(otype, otype.dedupe_fields, item)
        except RecordError as exc:
            raise MarketoError(exc.code, exc.message) from None

    def delete_objects(self, otype: ObjectType, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``POST <objects>/delete.json``: ``{seq, <idField>, status: deleted}`` or skipped 1013."""
        delete_by = body.get("deleteBy") or "dedupeFields"
        if delete_by not in ("dedupeFields", "idField"):
            raise MarketoError("1003", f"Invalid deleteBy '{delete_by}'")
        key_fields = otype.dedupe_fields if delete_by == "dedupeFields" else (otype.id_field,)
        index = self._index(otype, key_fields)
        out = []
        for seq, record in enumerate(check_batch(body.get("input"))):
            try:
                oid = self._delete_object(otype, key_fields, index, record)
                out.append({"seq": seq, otype.id_field: oid, "status": "deleted"})
            except RecordError as exc:
                out.append({"seq": seq, "status": "skipped", "reasons": [reason(exc.code, exc.message)]})
        return out

    def _delete_object(
        self, otype: ObjectType, key_fields: Sequence[str], index: dict[tuple[Any, ...], Any], record: Any
    ) -> Any:
        if not isinstance(record, dict):
            raise RecordError("1003", "Invalid data")
        oid = index.pop(self._key(otype, key_fields, record), None)
        if oid is None:
            raise RecordError("1013", "Record not found")
        del self.objects[otype.path][oid]
        return oid

    # ---- activities ----------------------------------------------------------------------------

    def activity_types(self) -> list[dict[str, Any]]:
        """Standard and custom activity types (``activities/types.json``)."""
        custom = [
            {
                "id": t["id"],
                "name": t["name"],
                "description": t.get("description", ""),
                "primaryAttribute": {k: t["primaryAttribute"][k] for k in ("name", "dataType")},
                "attributes": [{"name": a["name"], "dataType": a["dataType"]} for a in t["attributes"]],
            }
            for t in self.custom_types.values()
        ]
        return [*STANDARD_TYPES, *custom]

    def add_custom_activities(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``POST activities/external.json``: ``{id, marketoGUID, status: added}`` or skipped ``errors``."""
        out = []
        for record in check_batch(body.get("input")):
            try:
                activity = self._custom_activity(record)
            except RecordError as exc:
                out.append({"status": "skipped", "errors": [reason(exc.code, exc.message)]})
                continue
            self.activities.add(activity)
            out.append({"id": activity.id, "marketoGUID": str(activity.id), "status": "added"})
        return out

    def _custom_activity(self, record: Any) -> Activity:
        if not isinstance(record, dict):
            raise RecordError("1003", "Invalid data")
        for name in ("leadId", "activityDate", "activityTypeId", "primaryAttributeValue"):
            if record.get(name) in (None, ""):
                raise RecordError("1002", f"Missing value for the required parameter '{name}'")
        type_def = self.custom_types.get(_int_or_none(record["activityTypeId"]) or -1)
        if type_def is None or type_def.get("status") != "approved":
            raise RecordError("1003", f"Invalid activityTypeId '{record['activityTypeId']}'")
        lead_id = _int_or_none(record["leadId"])
        if lead_id is None or lead_id not in self.leads:
            raise RecordError("1004", "Lead not found")
        when = parse_datetime(record["activityDate"], RecordError("1001", "Invalid value for 'activityDate'"))
        known = {a["apiName"]: a for a in type_def["attributes"]}
        known |= {a["name"]: a for a in type_def["attributes"]}
        attributes = []
        for item in record.get("attributes") or []:
            name = item.get("apiName") or item.get("name") if isinstance(item, dict) else None
            if name not in known:
                raise RecordError("1006", f"Field '{name}' not found")
            attributes.append({"name": known[name]["name"], "value": item.get("value")})
        return Activity(
            id=0,
            lead_id=lead_id,
            date=when,
            type_id=type_def["id"],
            primary_value=record["primaryAttributeValue"],
            attributes=attributes,
            logged_at=self.clock(),
        )


def _int_or_none(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    return None
