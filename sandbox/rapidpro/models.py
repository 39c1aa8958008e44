"""The objects of one RapidPro workspace and their API renderings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.rapidpro.values import LEGACY_TYPE_OUT, format_datetime


class Clock:
    """Strictly increasing UTC timestamps, so ``modified_on`` orders every change."""

    def __init__(self) -> None:
        self._last = datetime(2000, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current time, at least one microsecond after the previous answer."""
        with self._lock:
            current = datetime.now(UTC)
            if current <= self._last:
                current = self._last + timedelta(microseconds=1)
            self._last = current
            return current


@dataclass
class ContactField:
    """A workspace's contact field."""

    key: str
    name: str
    type: str
    created_on: datetime
    id: int

    def to_json(self, *, legacy: bool) -> dict[str, Any]:
        """The ``fields.json`` rendering.

        Current names plus the deprecated ``label``/``value_type``; only the latter when
        ``legacy`` (2019-era servers).
        """
        if legacy:
            return {
                "key": self.key,
                "label": self.name,
                "value_type": LEGACY_TYPE_OUT.get(self.type, self.type),
            }
        return {
            "key": self.key,
            "name": self.name,
            "type": self.type,
            "featured": False,
            "priority": 0,
            "usages": {"campaign_events": 0, "flows": 0, "groups": 0},
            "agent_access": "view",
            "label": self.name,
            "value_type": LEGACY_TYPE_OUT.get(self.type, self.type),
        }


@dataclass
class Group:
    """A contact group (manual: the emulator has no query groups)."""

    uuid: str
    name: str
    created_on: datetime
    id: int

    def to_json(self, count: int) -> dict[str, Any]:
        """The ``groups.json`` rendering."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "query": None,
            "status": "ready",
            "system": False,
            "count": count,
        }


@dataclass
class Flow:
    """A flow; ``sets_fields_from_params`` emulates a flow that saves ``@trigger.params`` to fields."""

    uuid: str
    name: str
    type: str
    archived: bool
    sets_fields_from_params: bool
    created_on: datetime
    id: int

    def ref(self) -> dict[str, Any]:
        """``{uuid, name}``."""
        return {"uuid": self.uuid, "name": self.name}


@dataclass
class Contact:
    """A contact; deleted contacts stay (``is_active`` false) for ``?deleted=true``."""

    uuid: str
    id: int
    name: str | None
    language: str | None
    status: str
    urns: list[str]
    groups: list[str]
    fields: dict[str, str | None]
    created_on: datetime
    modified_on: datetime
    last_seen_on: datetime | None = None
    is_active: bool = True

    def ref(self) -> dict[str, Any]:
        """``{uuid, name}``."""
        return {"uuid": self.uuid, "name": self.name}


@dataclass
class FlowStart:
    """A flow start: created ``pending``, executed once its ``execute_at`` has passed."""

    uuid: str
    id: int
    flow: str
    contacts: list[str]
    groups: list[str]
    urns: list[str]
    restart_participants: bool
    exclude_active: bool
    params: dict[str, Any]
    status: str
    created_on: datetime
    modified_on: datetime
    execute_at: datetime


@dataclass
class Run:
    """One contact's run through a flow, created when a start executes."""

    uuid: str
    id: int
    flow: str
    contact: str
    start: str | None
    status: str
    created_on: datetime
    modified_on: datetime
    exited_on: datetime | None


@dataclass
class Workspace:
    """One org: its API tokens, settings and every object it owns."""

    name: str
    uuid: str
    tokens: list[str]
    country: str
    timezone: str
    fields: dict[str, ContactField] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    contacts: dict[str, Contact] = field(default_factory=dict)
    urn_owner: dict[str, str] = field(default_factory=dict)
    starts: dict[str, FlowStart] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)
    participants: dict[str, set[str]] = field(default_factory=dict)
    next_id: int = 1

    def new_id(self) -> int:
        """The next numeric id (shared by every object type; ids only need to be unique)."""
        value = self.next_id
        self.next_id += 1
        return value

    def to_json(self) -> dict[str, Any]:
        """The ``workspace.json`` (formerly ``org.json``) rendering."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "country": self.country,
            "languages": ["eng"],
            "primary_language": "eng",
            "timezone": self.timezone,
            "date_style": "day_first",
            "credits": {"used": -1, "remaining": -1},
            "anon": False,
        }

    def group_by_ref(self, ref: object) -> Group | None:
        """A group by UUID or by name (case-insensitive), as the API accepts both."""
        if not isinstance(ref, str):
            return None
        if ref in self.groups:
            return self.groups[ref]
        lowered = ref.strip().lower()
        return next((g for g in self.groups.values() if g.name.lower() == lowered), None)

    def active_contact(self, uuid: object) -> Contact | None:
        """A contact that exists and is not deleted."""
        contact = self.contacts.get(uuid) if isinstance(uuid, str) else None
        return contact if contact is not None and contact.is_active else None

    def contact_json(self, contact: Contact) -> dict[str, Any]:
        """The ``contacts.json`` rendering; every workspace field appears, null when unset."""
        if not contact.is_active:
            return {
                "uuid": contact.uuid,
                "name": None,
                "status": None,
                "language": None,
                "urns": [],
                "groups": [],
                "notes": [],
                "fields": {},
                "flow": None,
                "created_on": format_datetime(contact.created_on),
                "modified_on": format_datetime(contact.modified_on),
                "last_seen_on": None,
                "blocked": None,
                "stopped": None,
            }
        return {
            "uuid": contact.uuid,
            "name": contact.name,
            "status": contact.status,
            "language": contact.language,
            "urns": list(contact.urns),
            "groups": [
                {"uuid": uuid, "name": self.groups[uuid].name}
                for uuid in contact.groups
                if uuid in self.groups
            ],
            "notes": [],
            "fields": {key: contact.fields.get(key) for key in self.fields},
            "flow": None,
            "created_on": format_datetime(contact.created_on),
            "modified_on": format_datetime(contact.modified_on),
            "last_seen_on": format_datetime(contact.last_seen_on),
            "blocked": contact.status == "blocked",
            "stopped": contact.status == "stopped",
        }

    def flow_json(self, flow: Flow) -> dict[str, Any]:
        """The ``flows.json`` rendering, with run counts."""
        counts = {"active": 0, "waiting": 0, "completed": 0, "interrupted": 0, "expired": 0, "failed": 0}
        for run in self.runs.values():
            if run.flow == flow.uuid:
                counts[run.status] = counts.get(run.status, 0) + 1
        return {
            "uuid": flow.uuid,
            "name": flow.name,
            "type": flow.type,
            "archived": flow.archived,
            "labels": [],
            "expires": 10080,
            "runs": counts,
            "results": [],
            "parent_refs": [],
            "created_on": format_datetime(flow.created_on),
            "modified_on": format_datetime(flow.created_on),
        }

    def start_json(self, start: FlowStart, *, legacy: bool) -> dict[str, Any]:
        """The ``flow_starts.json`` rendering (``id`` and ``extra`` kept for older clients).

        A ``legacy`` (2019-era) server has no ``params`` and no ``progress``.
        """
        flow = self.flows.get(start.flow)
        body = {
            "uuid": start.uuid,
            "flow": flow.ref() if flow else {"uuid": start.flow, "name": None},
            "contacts": [self.contacts[uuid].ref() for uuid in start.contacts if uuid in self.contacts],
            "groups": [
                {"uuid": uuid, "name": self.groups[uuid].name} for uuid in start.groups if uuid in self.groups
            ],
            "status": start.status,
            "progress": {"total": -1, "started": 0},
            "params": start.params,
            "created_on": format_datetime(start.created_on),
            "modified_on": format_datetime(start.modified_on),
            "id": start.id,
            "extra": start.params,
            "restart_participants": start.restart_participants,
            "exclude_active": start.exclude_active,
        }
        if legacy:
            del body["params"], body["progress"]
        return body

    def run_json(self, run: Run) -> dict[str, Any]:
        """The ``runs.json`` rendering."""
        flow = self.flows.get(run.flow)
        contact = self.contacts.get(run.contact)
        return {
            "id": run.id,
            "uuid": run.uuid,
            "flow": flow.ref() if flow else None,
            "contact": contact.ref() if contact else None,
            "start": {"uuid": run.start} if run.start else None,
            "responded": False,
            "path": [],
            "values": {},
            "created_on": format_datetime(run.created_on),
            "modified_on": format_datetime(run.modified_on),
            "exited_on": format_datetime(run.exited_on),
            "exit_type": run.status if run.exited_on else None,
            "status": run.status,
        }
