"""The Pipedrive company the emulator holds: entities, fields, users, pipelines, webhooks.

Every public method is called under the backend's lock. Writes made through the API fire
webhooks with ``change_source: "api"``; the admin ``ui_change`` action makes the same writes as
a user of the web app would (``change_source: "app"``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sandbox.pipedrive.errors import bad_request, gone, not_found
from sandbox.pipedrive.models import (
    ENTITIES,
    FIELD_TYPES,
    HASH_RE,
    SEARCHABLE_TYPES,
    SINGULAR,
    STANDARD_FIELDS,
    FieldDef,
    Record,
    new_hash,
    parse_rfc3339,
)
from sandbox.pipedrive.validation import parse_write

OWNER_ID = 1001
BOT_ID = 208823
DEFAULT_USERS = (
    {"id": OWNER_ID, "name": "Sandbox Admin", "email": "admin@sandbox.example", "is_admin": True},
    {"id": BOT_ID, "name": "Sync Bot", "email": "bot@sandbox.example", "is_admin": False},
)
DEFAULT_PIPELINES = (
    {"name": "Default pipeline", "stages": ["Qualified", "Contact made", "Proposal made"]},
    {"name": "NX Subscription (New and Upsell)", "stages": ["Lead in", "Negotiation", "Contract sent"]},
)
#: Custom fields present after every reset (the cross-system ids of seed 001).
DEFAULT_CUSTOM_FIELDS = {
    "persons": (("marketoid", "varchar"),),
    "organizations": (("marketoid", "varchar"), ("email_domain", "varchar")),
    "deals": (),
    "activities": (),
}
SEARCH_FIELDS = {
    "persons": ("custom_fields", "email", "notes", "phone", "name"),
    "organizations": ("address", "custom_fields", "notes", "name"),
}
LABEL = {"persons": "Person", "organizations": "Organization", "deals": "Deal", "activities": "Activity"}
SORT_KEYS = ("id", "update_time", "add_time")
Event = tuple[Any, ...]
"""(action, entity, id, data, previous, change_source, user_id) of one webhook event."""


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _split_name(name: str) -> tuple[str, str | None]:
    first, _, last = name.strip().partition(" ")
    return first, (last.strip() or None)


class Company:
    """All data of one Pipedrive company."""

    def __init__(self, emit: Callable[[Event], None]) -> None:
        self.emit = emit
        self.records: dict[str, dict[int, Record]] = {entity: {} for entity in ENTITIES}
        self.next_id: dict[str, int] = dict.fromkeys(ENTITIES, 1)
        self.fields: dict[str, list[FieldDef]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.pipelines: dict[int, dict[str, Any]] = {}
        self.stages: dict[int, dict[str, Any]] = {}
        self._field_id = 9000
        # Exact-match search index: entity -> search field -> lowered text -> ids, and what each
        # record put there, so a sync matching 10,000 records by search is not quadratic.
        self._index: dict[str, dict[str, dict[str, set[int]]]] = {e: {} for e in SEARCH_FIELDS}
        self._indexed: dict[str, dict[int, dict[str, list[str]]]] = {e: {} for e in SEARCH_FIELDS}
        self._setup()

    # ---- set-up -------------------------------------------------------------------------------

    def _setup(self) -> None:
        now = _now()
        for entity in ENTITIES:
            self.fields[entity] = [
                FieldDef(
                    id=self._next_field_id(),
                    key=key,
                    name=name,
                    field_type=kind,
                    is_custom=False,
                    mandatory=mandatory,
                    add_time=now,
                )
                for key, name, kind, mandatory in STANDARD_FIELDS[entity]
            ]
            for name, kind in DEFAULT_CUSTOM_FIELDS[entity]:
                self.add_field(entity, {"name": name, "field_type": kind})
        for user in DEFAULT_USERS:
            self.add_user(dict(user))
        for pipeline in DEFAULT_PIPELINES:
            self.add_pipeline(dict(pipeline))

    def _next_field_id(self) -> int:
        self._field_id += 1
        return self._field_id

    def add_field(self, entity: str, raw: Mapping[str, Any]) -> FieldDef:
        """Add a custom field with a fresh random 40-hex key (or the ``key`` given)."""
        name, kind = raw.get("name"), raw.get("field_type", "varchar")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a custom field needs a name")
        if kind not in FIELD_TYPES:
            raise ValueError(f"field {name!r}: field_type {kind!r} not in {FIELD_TYPES}")
        key = raw.get("key") or new_hash()
        if not HASH_RE.match(str(key)):
            raise ValueError(f"field {name!r}: key must be 40 lowercase hex characters")
        if any(f.key == key for f in self.fields[entity]):
            raise ValueError(f"field key {key} already exists")
        options = [
            {"id": index + 1, "label": str(label)} for index, label in enumerate(raw.get("options") or [])
        ]
        definition = FieldDef(
            id=self._next_field_id(),
            key=key,
            name=name.strip(),
            field_type=kind,
            is_custom=True,
            options=options,
            add_time=_now(),
        )
        self.fields[entity].append(definition)
        return definition

    def add_user(self, raw: Mapping[str, Any]) -> int:
        """Add a user (``id`` optional)."""
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a user needs a name")
        user_id = int(raw.get("id") or max(self.users, default=OWNER_ID) + 1)
        self.users[user_id] = {
            "id": user_id,
            "name": name.strip(),
            "email": str(raw.get("email") or f"user{user_id}@sandbox.example"),
            "active_flag": bool(raw.get("active_flag", True)),
            "is_admin": 1 if raw.get("is_admin") else 0,
            "role_id": 1,
            "timezone_name": "UTC",
            "created": _now().strftime("%Y-%m-%d %H:%M:%S"),
        }
        return user_id

    def add_pipeline(self, raw: Mapping[str, Any]) -> int:
        """Add a pipeline with its stages (names, in order)."""
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a pipeline needs a name")
        pipeline_id = max(self.pipelines, default=0) + 1
        now = _now()
        self.pipelines[pipeline_id] = {"id": pipeline_id, "name": name.strip(), "order_nr": pipeline_id}
        self.pipelines[pipeline_id].update(
            {"is_deleted": False, "is_deal_probability_enabled": False, "add_time": now, "update_time": now}
        )
        for order, stage_name in enumerate(raw.get("stages") or ["Lead in"], start=1):
            stage_id = max(self.stages, default=0) + 1
            self.stages[stage_id] = {
                "id": stage_id,
                "name": str(stage_name),
                "pipeline_id": pipeline_id,
                "order_nr": order,
                "deal_probability": 100,
                "is_deleted": False,
                "add_time": now,
                "update_time": now,
            }
        return pipeline_id

    # ---- lookups --------------------------------------------------------------------------------

    def custom_fields(self, entity: str) -> dict[str, FieldDef]:
        """Custom fields of ``entity`` by key."""
        return {f.key: f for f in self.fields[entity] if f.is_custom}

    def custom_keys(self, entity: str) -> list[str]:
        """Custom field keys in creation order."""
        return [f.key for f in self.fields[entity] if f.is_custom]

    def exists(self, kind: str, item_id: int) -> bool:
        """Whether a live record, user, pipeline or stage has this id."""
        if kind == "users":
            return item_id in self.users
        if kind == "pipelines":
            return item_id in self.pipelines
        if kind == "stages":
            return item_id in self.stages
        record = self.records[kind].get(item_id)
        return record is not None and not record.deleted

    def render(self, entity: str, record: Record) -> dict[str, Any]:
        """The v2 JSON of a record."""
        return record.to_json(entity, self.custom_keys(entity))

    def live(self, entity: str, item_id: int) -> Record:
        """The record, or 404 (never existed) / 410 (deleted)."""
        record = self.records[entity].get(item_id)
        if record is None:
            raise not_found(LABEL[entity])
        if record.deleted:
            raise gone(LABEL[entity])
        return record

    # ---- writes ---------------------------------------------------------------------------------

    def create(
        self, entity: str, body: Any, *, source: str, user_id: int, at: datetime | None = None
    ) -> Record:
        """Validate and store a new record; fire ``create`` webhooks."""
        standard, custom = parse_write(entity, body, self.custom_fields(entity), self.exists, create=True)
        now = at or _now()
        record_id = self.next_id[entity]
        self.next_id[entity] += 1
        add_time = parse_rfc3339(standard.pop("add_time")) if standard.get("add_time") else now
        record = Record(id=record_id, values={}, custom={}, add_time=add_time, update_time=now)
        self._defaults(entity, standard, user_id)
        self._apply(entity, record, standard, custom, now)
        self.records[entity][record_id] = record
        self._reindex(entity, record)
        self.emit(("create", entity, record_id, self.render(entity, record), None, source, user_id))
        return record

    def update(self, entity: str, item_id: int, body: Any, *, source: str, user_id: int) -> Record:
        """Validate and apply a PATCH; fire ``change`` webhooks with the changed fields only."""
        record = self.live(entity, item_id)
        standard, custom = parse_write(entity, body, self.custom_fields(entity), self.exists, create=False)
        standard.pop("add_time", None)
        before = self.render(entity, record)
        self._apply(entity, record, standard, custom, _now())
        self._reindex(entity, record)
        after = self.render(entity, record)
        previous = _changed(before, after)
        if previous:
            self.emit(("change", entity, item_id, after, previous, source, user_id))
        return record

    def delete(self, entity: str, item_id: int, *, source: str, user_id: int) -> None:
        """Mark deleted (later GET/DELETE: 410); fire ``delete`` webhooks with the object in ``previous``."""
        record = self.live(entity, item_id)
        before = self.render(entity, record)
        record.deleted, record.deleted_time = True, _now()
        self._reindex(entity, record)
        record.update_time = record.deleted_time
        self.emit(("delete", entity, item_id, None, before, source, user_id))

    def _defaults(self, entity: str, values: dict[str, Any], user_id: int) -> None:
        values.setdefault("owner_id", user_id)
        values.setdefault("visible_to", 3)
        if entity == "persons":
            first, last = _split_name(values["name"])
            values.setdefault("first_name", first)
            values.setdefault("last_name", last)
        elif entity == "deals":
            values.setdefault("status", "open")
            values.setdefault("currency", "EUR")
            values.setdefault("value", 0)
            values.setdefault("is_archived", False)
            if values.get("pipeline_id") is None and values.get("stage_id") is None:
                values["pipeline_id"] = min(self.pipelines)
            if values.get("stage_id") is None:
                values["stage_id"] = min(
                    (s["id"] for s in self.stages.values() if s["pipeline_id"] == values["pipeline_id"]),
                    default=None,
                )
        elif entity == "activities":
            values.setdefault("type", "task")
            values.setdefault("subject", str(values["type"]).capitalize())
            values.setdefault("done", False)
            values.setdefault("busy", False)

    def _apply(
        self, entity: str, record: Record, standard: dict[str, Any], custom: dict[str, Any], now: datetime
    ) -> None:
        values = record.values
        if entity == "deals":
            self._deal_rules(values, standard, now)
        if entity == "activities" and standard.get("done") and not values.get("done"):
            values["marked_as_done_time"] = _fmt(now)
        if entity == "persons" and "name" in standard and record.values:
            first, last = _split_name(standard["name"])
            standard.setdefault("first_name", first)
            standard.setdefault("last_name", last)
        values.update(standard)
        for key, value in custom.items():
            if value is None:
                record.custom.pop(key, None)
            else:
                record.custom[key] = value
        record.update_time = now

    def _deal_rules(self, values: dict[str, Any], standard: dict[str, Any], now: datetime) -> None:
        stage_id = standard.get("stage_id")
        if stage_id is not None:
            stage_pipeline = self.stages[stage_id]["pipeline_id"]
            pipeline_id = standard.get("pipeline_id", values.get("pipeline_id"))
            if "pipeline_id" in standard and pipeline_id != stage_pipeline:
                raise bad_request(f"stage {stage_id} does not belong to pipeline {pipeline_id}")
            standard["pipeline_id"] = stage_pipeline
            if stage_id != values.get("stage_id"):
                standard["stage_change_time"] = _fmt(now)
        status = standard.get("status")
        if status and status != values.get("status"):
            if status in {"won", "lost"}:
                standard.setdefault(f"{status}_time", _fmt(now))
                standard.setdefault("close_time", standard[f"{status}_time"])
            else:
                standard.update(close_time=None, won_time=None, lost_time=None)

    # ---- reads ----------------------------------------------------------------------------------

    def query(self, entity: str, params: Mapping[str, str]) -> list[Record]:
        """Filter and sort for a v2 list.

        Filters: ``ids``, ``owner_id``, ``org_id``, ``person_id``, ``deal_id``, ``pipeline_id``,
        ``stage_id``, ``status``, ``done``, ``updated_since``/``updated_until``, ``sort_by``,
        ``sort_direction``.
        """
        status = params.get("status")
        deleted_deals = entity == "deals" and status == "deleted"
        items = [r for r in self.records[entity].values() if r.deleted == deleted_deals]
        if params.get("ids"):
            wanted = {_int_param("ids", part) for part in params["ids"].split(",") if part.strip()}
            items = [r for r in items if r.id in wanted]
        for name in ("owner_id", "org_id", "person_id", "deal_id", "pipeline_id", "stage_id"):
            if params.get(name):
                target = _int_param(name, params[name])
                items = [r for r in items if r.values.get(name) == target]
        if entity == "deals" and status and not deleted_deals:
            if status not in {"open", "won", "lost"}:
                raise bad_request("'status' must be one of open, won, lost, deleted")
            items = [r for r in items if r.values.get("status") == status]
        if entity == "activities" and params.get("done") is not None:
            if params["done"] not in {"true", "false"}:
                raise bad_request("'done' must be true or false")
            items = [r for r in items if bool(r.values.get("done")) == (params["done"] == "true")]
        for name, keep in (("updated_since", lambda t, b: t >= b), ("updated_until", lambda t, b: t < b)):
            if params.get(name):
                try:
                    bound = parse_rfc3339(params[name])
                except ValueError as exc:
                    raise bad_request(f"'{name}' must be an RFC 3339 timestamp") from exc
                items = [r for r in items if keep(r.update_time, bound)]
        sort_by = params.get("sort_by", "id")
        if sort_by not in SORT_KEYS:
            raise bad_request(f"'sort_by' must be one of {list(SORT_KEYS)}")
        direction = params.get("sort_direction", "asc")
        if direction not in {"asc", "desc"}:
            raise bad_request("'sort_direction' must be asc or desc")
        items.sort(key=record_key(sort_by), reverse=direction == "desc")
        return items

    def search(self, entity: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Search persons or organizations: ``term``, ``fields``, ``exact_match``, ``organization_id``."""
        term = (params.get("term") or "").strip()
        exact = params.get("exact_match") == "true"
        if len(term) < (1 if exact else 2):
            raise bad_request("'term' must be at least 2 characters long (1 with exact_match)")
        allowed = SEARCH_FIELDS[entity]
        fields = [f.strip() for f in (params.get("fields") or ",".join(allowed)).split(",") if f.strip()]
        bad = [f for f in fields if f not in allowed]
        if bad:
            raise bad_request(f"'fields' must be a list of {list(allowed)}; got {bad}")
        org_filter = (
            _int_param("organization_id", params["organization_id"])
            if params.get("organization_id")
            else None
        )
        needle = term.lower()
        hits: list[dict[str, Any]] = []
        searchable = [f.key for f in self.fields[entity] if f.is_custom and f.field_type in SEARCHABLE_TYPES]
        candidates: Iterable[Record] = self.records[entity].values()
        if exact:
            ids = set().union(*(self._index[entity].get(name, {}).get(needle, set()) for name in fields))
            candidates = [self.records[entity][i] for i in sorted(ids)]
        for record in candidates:
            if record.deleted or (org_filter is not None and record.values.get("org_id") != org_filter):
                continue
            score, matched_custom = 0.0, []
            for name in fields:
                for text in self._search_texts(entity, record, name, searchable):
                    lowered = text.lower()
                    if (exact and lowered == needle) or (not exact and needle in lowered):
                        score = max(score, 1.0 if lowered == needle else 0.5)
                        if name == "custom_fields":
                            matched_custom.append(text)
            if score:
                hits.append(
                    {"result_score": score, "item": self._search_item(entity, record, matched_custom)}
                )
        hits.sort(key=search_key)
        return hits

    def _reindex(self, entity: str, record: Record) -> None:
        """Refresh the record's entries in the exact-match index (none once deleted)."""
        if entity not in self._index:
            return
        index = self._index[entity]
        for name, texts in self._indexed[entity].pop(record.id, {}).items():
            for text in texts:
                index[name][text].discard(record.id)
        if record.deleted:
            return
        searchable = [f.key for f in self.fields[entity] if f.is_custom and f.field_type in SEARCHABLE_TYPES]
        entries: dict[str, list[str]] = {}
        for name in SEARCH_FIELDS[entity]:
            entries[name] = [t.lower() for t in self._search_texts(entity, record, name, searchable) if t]
            for text in entries[name]:
                index.setdefault(name, {}).setdefault(text, set()).add(record.id)
        self._indexed[entity][record.id] = entries

    def _search_texts(self, entity: str, record: Record, name: str, searchable: list[str]) -> list[str]:
        values = record.values
        if name == "name":
            return [str(values.get("name") or "")]
        if name in {"email", "phone"}:
            return [str(item["value"]) for item in values.get(f"{name}s") or []]
        if name == "address":
            address = values.get("address") or {}
            return [str(address.get("value") or "")]
        if name == "custom_fields":
            texts = []
            for key in searchable:
                value = record.custom.get(key)
                if isinstance(value, Mapping):
                    value = value.get("value")
                if value is not None:
                    texts.append(_text(value))
            return texts
        return []  # notes: the emulator stores none

    def _search_item(self, entity: str, record: Record, matched_custom: list[str]) -> dict[str, Any]:
        values = record.values
        item: dict[str, Any] = {
            "id": record.id,
            "type": SINGULAR[entity],
            "name": values.get("name"),
            "visible_to": values.get("visible_to"),
            "owner": {"id": values.get("owner_id")},
            "custom_fields": matched_custom,
            "notes": [],
        }
        if entity == "persons":
            org = self.records["organizations"].get(values.get("org_id") or -1)
            item["phones"] = [p["value"] for p in values.get("phones") or []]
            item["emails"] = [e["value"] for e in values.get("emails") or []]
            item["organization"] = (
                {
                    "id": org.id,
                    "name": org.values.get("name"),
                    "address": (org.values.get("address") or {}).get("value"),
                }
                if org is not None and not org.deleted
                else None
            )
        else:
            item["address"] = (values.get("address") or {}).get("value")
        return item


def record_key(sort_by: str) -> Callable[[Record], tuple[Any, ...]]:
    """The sort (and cursor) key of a v2 list: the sort field, then the id."""
    if sort_by == "id":
        return lambda r: (r.id,)
    # POSIX seconds: JSON-safe in a cursor and ordered like the times.
    return lambda r: (getattr(r, sort_by).timestamp(), r.id)


def search_key(hit: dict[str, Any]) -> tuple[Any, ...]:
    """Search results: best score first, then by id."""
    return (-hit["result_score"], hit["item"]["id"])


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _fmt(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_param(name: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError as exc:
        raise bad_request(f"'{name}' must be an integer") from exc


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The ``previous`` of a change webhook: old values of the changed fields only."""
    previous: dict[str, Any] = {}
    for key, old in before.items():
        if key in {"update_time"}:
            continue
        if key == "custom_fields":
            changed = {k: v for k, v in old.items() if after[key].get(k) != v}
            if changed:
                previous[key] = changed
        elif after.get(key) != old:
            previous[key] = old
    return previous
