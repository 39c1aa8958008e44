"""Flow starts (validation, storage), their execution into runs, and contact field creation."""

from __future__ import annotations

import re
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.rapidpro.contacts import (
    CURRENT,
    LEGACY,
    ContactChanges,
    body_object,
    create_contact,
    too_many,
    urn_list,
)
from sandbox.rapidpro.errors import Errors
from sandbox.rapidpro.models import ContactField, FlowStart, Run, Workspace
from sandbox.rapidpro.values import (
    FIELD_TYPES,
    LEGACY_TYPE_NAMES,
    field_value,
    normalize_params,
    params_too_long,
    parse_bool,
    zone,
)

# Keys RapidPro refuses for contact fields (ContactField.RESERVED_KEYS, abridged).
RESERVED_KEYS = frozenset(
    {
        "id",
        "uuid",
        "name",
        "language",
        "created_on",
        "modified_on",
        "last_seen_on",
        "groups",
        "urns",
        "status",
        "tel",
        "whatsapp",
        "mailto",
        "twitter",
        "facebook",
        "telegram",
        "has",
        "is",
        "contact",
    }
)
_KEY_CHARS = re.compile(r"[^a-z0-9]+")
MAX_FIELD_NAME = 36


@dataclass
class StartRequest:
    """A validated flow start body."""

    flow: str
    contacts: list[str]
    groups: list[str]
    urns: list[str]
    restart_participants: bool
    exclude_active: bool
    params: dict[str, Any]


def parse_flow_start(ws: Workspace, raw: Any, *, style: str = CURRENT) -> StartRequest:
    """Validate a ``flow_starts.json`` POST body as FlowStartWriteSerializer does.

    Raises:
        ApiError: 400 with every field error.
    """
    body = body_object(raw)
    errors = Errors()
    flow_ref = body.get("flow")
    flow = ws.flows.get(flow_ref) if isinstance(flow_ref, str) else None
    if flow_ref is None:
        errors.add("flow", "This field is required.")
    elif flow is None or flow.archived:
        errors.add("flow", f"No such object: {flow_ref}")
    contacts = _contacts(ws, body.get("contacts", []), errors)
    groups = _groups(ws, body.get("groups", []), errors)
    start_urns = urn_list(ws, body.get("urns", []), errors, style=style, owner=None, check_owner=False)
    restart = _boolean(body, "restart_participants", default=True, errors=errors)
    exclude = _boolean(body, "exclude_active", default=False, errors=errors)
    params: dict[str, Any] = {}
    # Older servers took only `extra` (and ignored unknown keys such as `params`); current ones
    # take both and prefer `params` when both are sent.
    for name in ("extra",) if style == LEGACY else ("extra", "params"):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, dict):
            errors.add(name, "Must be a valid JSON object")
        elif params_too_long(value):
            errors.add(name, "Cannot exceed 10,000 characters encoded.")
        else:
            params = normalize_params(value)
    if not errors and not (contacts or groups or start_urns):
        errors.add("non_field_errors", "Must specify at least one group, contact or URN")
    errors.raise_if_any()
    assert flow is not None
    return StartRequest(flow.uuid, contacts, groups, start_urns, restart, exclude, params)


def _contacts(ws: Workspace, raw: Any, errors: Errors) -> list[str]:
    if not isinstance(raw, list):
        errors.add("contacts", f'Expected a list of items but got type "{type(raw).__name__}".')
        return []
    if too_many(errors, "contacts", raw):
        return []
    found: list[str] = []
    for ref in raw:
        contact = ws.active_contact(ref)
        if contact is None:
            errors.add("contacts", f"No such object: {ref}")
        elif contact.uuid not in found:
            found.append(contact.uuid)
    return found


def _groups(ws: Workspace, raw: Any, errors: Errors) -> list[str]:
    if not isinstance(raw, list):
        errors.add("groups", f'Expected a list of items but got type "{type(raw).__name__}".')
        return []
    if too_many(errors, "groups", raw):
        return []
    found: list[str] = []
    for ref in raw:
        group = ws.groups.get(ref) if isinstance(ref, str) else None
        if group is None:
            errors.add("groups", f"No such object: {ref}")
        elif group.uuid not in found:
            found.append(group.uuid)
    return found


def _boolean(body: dict[str, Any], name: str, *, default: bool, errors: Errors) -> bool:
    if name not in body or body[name] is None:
        return default
    value = parse_bool(body[name])
    if value is None:
        errors.add(name, "Must be a valid boolean.")
        return default
    return value


def create_start(ws: Workspace, request: StartRequest, now: datetime, delay_s: float) -> FlowStart:
    """Store a ``pending`` start that executes ``delay_s`` seconds from ``now``."""
    start = FlowStart(
        uuid=str(uuidlib.uuid4()),
        id=ws.new_id(),
        flow=request.flow,
        contacts=request.contacts,
        groups=request.groups,
        urns=request.urns,
        restart_participants=request.restart_participants,
        exclude_active=request.exclude_active,
        params=request.params,
        status="pending",
        created_on=now,
        modified_on=now,
        execute_at=now + timedelta(seconds=max(delay_s, 0.0)),
    )
    ws.starts[start.uuid] = start
    ws.pending.append(start.uuid)
    return start


def execute_due(ws: Workspace, clock_now: datetime, stamp: Callable[[], datetime]) -> int:
    """Execute every pending start whose time has come; returns how many ran.

    Execution is what mailroom does: resolve contacts (URNs without a contact get a new one),
    skip past participants unless ``restart_participants``, create one completed run per
    contact, and — for flows seeded with ``sets_fields_from_params`` — save each param whose
    key is a workspace field into the contact's fields, as a flow's "save to field" actions
    on ``@trigger.params`` would. ``stamp`` gives each write its own ``modified_on``.
    """
    due = [uuid for uuid in ws.pending if ws.starts[uuid].execute_at <= clock_now]
    if not due:
        return 0
    ws.pending = [uuid for uuid in ws.pending if ws.starts[uuid].execute_at > clock_now]
    for uuid in due:
        start = ws.starts[uuid]
        flow = ws.flows.get(start.flow)
        targets = _targets(ws, start, stamp)
        past = ws.participants.setdefault(start.flow, set())
        tz = zone(ws.timezone)
        for contact_uuid in targets:
            if not start.restart_participants and contact_uuid in past:
                continue
            now = stamp()
            run = Run(
                uuid=str(uuidlib.uuid4()),
                id=ws.new_id(),
                flow=start.flow,
                contact=contact_uuid,
                start=start.uuid,
                status="completed",
                created_on=now,
                modified_on=now,
                exited_on=now,
            )
            ws.runs[run.uuid] = run
            past.add(contact_uuid)
            if flow is not None and flow.sets_fields_from_params:
                contact = ws.contacts[contact_uuid]
                for key, value in start.params.items():
                    definition = ws.fields.get(key)
                    if definition is not None and not isinstance(value, dict):
                        contact.fields[key] = field_value(value, definition.type, tz)
                contact.modified_on = stamp()
        start.status = "completed"
        start.modified_on = stamp()
    return len(due)


def _targets(ws: Workspace, start: FlowStart, stamp: Callable[[], datetime]) -> list[str]:
    targets: list[str] = [uuid for uuid in start.contacts if ws.active_contact(uuid)]
    for group_uuid in start.groups:
        for contact in ws.contacts.values():
            if contact.is_active and group_uuid in contact.groups and contact.uuid not in targets:
                targets.append(contact.uuid)
    for identity in start.urns:
        holder = ws.urn_owner.get(identity)
        if holder is None:
            holder = create_contact(ws, ContactChanges(urns=[identity]), stamp()).uuid
        if holder not in targets:
            targets.append(holder)
    return targets


def field_key(name: str) -> str:
    """The key RapidPro derives from a field name (ContactField.make_key)."""
    return _KEY_CHARS.sub("_", name.strip().lower()).strip("_")[:36]


def create_field(ws: Workspace, raw: Any, now: datetime) -> ContactField:
    """Create a contact field from ``{name, type}`` (or the older ``{label, value_type}``).

    Raises:
        ApiError: 400 for a missing, duplicate or reserved name, or an unknown type.
    """
    body = body_object(raw)
    errors = Errors()
    name_key = "name" if "name" in body else "label"
    type_key = "type" if "type" in body else "value_type"
    name = body.get(name_key)
    type_name = body.get(type_key)
    if not isinstance(name, str) or not name.strip():
        errors.add(name_key, "This field is required.")
    elif len(name) > MAX_FIELD_NAME:
        errors.add(name_key, f"Ensure this field has no more than {MAX_FIELD_NAME} characters.")
    else:
        key = field_key(name)
        if not key or key in RESERVED_KEYS or not key[0].isalpha():
            errors.add(name_key, "Can't be a reserved word.")
        elif key in ws.fields or any(f.name.lower() == name.strip().lower() for f in ws.fields.values()):
            errors.add(name_key, "This field must be unique.")
    resolved_type = LEGACY_TYPE_NAMES.get(type_name, type_name) if isinstance(type_name, str) else None
    if resolved_type not in FIELD_TYPES:
        errors.add(type_key, f'"{type_name}" is not a valid choice.')
    errors.raise_if_any()
    assert isinstance(name, str)
    assert isinstance(resolved_type, str)
    definition = ContactField(
        key=field_key(name), name=name.strip(), type=resolved_type, created_on=now, id=ws.new_id()
    )
    ws.fields[definition.key] = definition
    return definition
