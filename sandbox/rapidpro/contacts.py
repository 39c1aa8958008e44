"""Contact writes: validation of POST bodies as RapidPro's ContactWriteSerializer does, and storage."""

from __future__ import annotations

import re
import uuid as uuidlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.rapidpro import urns
from sandbox.rapidpro.errors import ApiError, Errors
from sandbox.rapidpro.models import Contact, Workspace
from sandbox.rapidpro.values import field_value, zone

MAX_ITEMS = 100
MAX_NAME = 128
_LANGUAGE = re.compile(r"^[a-z]{3}$")
CURRENT, LEGACY = "current", "legacy"


@dataclass
class ContactChanges:
    """The validated content of one contact write; None = not given."""

    name: str | None = None
    set_name: bool = False
    language: str | None = None
    set_language: bool = False
    urns: list[str] | None = None
    groups: list[str] | None = None
    fields: dict[str, str | None] | None = None


def body_object(body: Any) -> dict[str, Any]:
    """The request body, which must be one JSON object."""
    if not isinstance(body, dict):
        raise ApiError(400, {"non_field_errors": ["Request body should be a single JSON object"]})
    return body


def too_many(errors: Errors, field: str, value: Any) -> bool:
    """Check the list/dict limit of 100 elements; True (with an error) when exceeded."""
    if len(value) > MAX_ITEMS:
        errors.add(field, f"Ensure this field has no more than {MAX_ITEMS} elements.")
        return True
    return False


def urn_list(
    ws: Workspace, raw: Any, errors: Errors, *, style: str, owner: str | None, check_owner: bool
) -> list[str]:
    """Validate and normalise a ``urns`` list; ``owner`` may already hold them."""
    if not isinstance(raw, list):
        errors.add("urns", f'Expected a list of items but got type "{type(raw).__name__}".')
        return []
    if too_many(errors, "urns", raw):
        return []
    result: list[str] = []
    for index, item in enumerate(raw):
        try:
            identity = urns.normalize(item, ws.country)
        except urns.InvalidUrn:
            if style == LEGACY:
                errors.add("urns", f"Invalid URN: {item}")
            else:
                errors.add_item(
                    "urns", str(index), f"Invalid URN: {item}. Ensure phone numbers contain country codes."
                )
            continue
        holder = ws.urn_owner.get(identity)
        if check_owner and holder is not None and holder != owner:
            if style == LEGACY:
                errors.add("urns", f"URN belongs to another contact: {identity}")
            else:
                errors.add_item("urns", str(index), "URN is in use by another contact.")
            continue
        if identity not in result:
            result.append(identity)
    return result


def parse_contact_write(
    ws: Workspace, raw: Any, *, instance: Contact | None, urn_in_url: bool, style: str
) -> ContactChanges:
    """Validate a contact POST body.

    Raises:
        ApiError: 400 with every field error, as RapidPro reports them.
    """
    body = body_object(raw)
    errors = Errors()
    changes = ContactChanges()
    if "name" in body:
        name = body["name"]
        if name is not None and not isinstance(name, str):
            errors.add("name", "Not a valid string.")
        elif isinstance(name, str) and len(name) > MAX_NAME:
            errors.add("name", f"Ensure this field has no more than {MAX_NAME} characters.")
        else:
            changes.name, changes.set_name = (name or None), True
    if "language" in body:
        language = body["language"]
        if language is not None and not (isinstance(language, str) and _LANGUAGE.match(language)):
            errors.add("language", "Not a valid ISO639-3 language code.")
        else:
            changes.language, changes.set_language = language, True
    if "urns" in body:
        if urn_in_url:
            errors.add("urns", "Field not allowed when using URN in URL")
        else:
            owner = instance.uuid if instance else None
            changes.urns = urn_list(ws, body["urns"], errors, style=style, owner=owner, check_owner=True)
    if "groups" in body:
        changes.groups = _groups(ws, body["groups"], errors)
    if "fields" in body:
        changes.fields = _fields(ws, body["fields"], errors)
    if instance is not None and not instance.is_active:
        errors.add("non_field_errors", "Deleted contacts can't be modified.")
    errors.raise_if_any()
    return changes


def _groups(ws: Workspace, raw: Any, errors: Errors) -> list[str]:
    if not isinstance(raw, list):
        errors.add("groups", f'Expected a list of items but got type "{type(raw).__name__}".')
        return []
    if too_many(errors, "groups", raw):
        return []
    found: list[str] = []
    for ref in raw:
        group = ws.group_by_ref(ref)
        if group is None:
            errors.add("groups", f"No such object: {ref}")
        elif group.uuid not in found:
            found.append(group.uuid)
    return found


def _fields(ws: Workspace, raw: Any, errors: Errors) -> dict[str, str | None]:
    if not isinstance(raw, dict):
        errors.add("fields", f'Expected a dictionary of items but got type "{type(raw).__name__}".')
        return {}
    if too_many(errors, "fields", raw):
        return {}
    tz = zone(ws.timezone)
    values: dict[str, str | None] = {}
    for key, value in raw.items():
        definition = ws.fields.get(key)
        if definition is None:
            errors.add("fields", f"Invalid contact field key: {key}")
            continue
        if isinstance(value, dict | list):
            errors.add_item("fields", key, "Not a valid string.")
            continue
        if isinstance(value, str) and "\x00" in value:
            errors.add_item("fields", key, "Null characters are not allowed.")
            continue
        values[key] = field_value(value, definition.type, tz)
    return values


def create_contact(ws: Workspace, changes: ContactChanges, now: datetime) -> Contact:
    """Store a new contact."""
    contact = Contact(
        uuid=str(uuidlib.uuid4()),
        id=ws.new_id(),
        name=changes.name,
        language=changes.language,
        status="active",
        urns=[],
        groups=[],
        fields={},
        created_on=now,
        modified_on=now,
    )
    ws.contacts[contact.uuid] = contact
    apply_changes(ws, contact, changes, now)
    return contact


def apply_changes(ws: Workspace, contact: Contact, changes: ContactChanges, now: datetime) -> None:
    """Update a contact: URNs and groups are replaced, fields merged, name/language set."""
    if changes.set_name:
        contact.name = changes.name
    if changes.set_language:
        contact.language = changes.language
    if changes.urns is not None:
        set_urns(ws, contact, changes.urns)
    if changes.groups is not None:
        contact.groups = list(changes.groups)
    if changes.fields:
        contact.fields.update(changes.fields)
    contact.modified_on = now


def set_urns(ws: Workspace, contact: Contact, identities: list[str]) -> None:
    """Give ``contact`` exactly these URNs (already validated as free or its own)."""
    for identity in contact.urns:
        if ws.urn_owner.get(identity) == contact.uuid:
            del ws.urn_owner[identity]
    contact.urns = list(identities)
    for identity in identities:
        ws.urn_owner[identity] = contact.uuid


def delete_contact(ws: Workspace, contact: Contact, now: datetime) -> None:
    """Soft-delete: the contact releases its URNs and loses its groups and field values."""
    set_urns(ws, contact, [])
    contact.groups = []
    contact.fields = {}
    contact.is_active = False
    contact.modified_on = now


def contact_by_urn(ws: Workspace, identity: str) -> Contact | None:
    """The active contact holding a normalised URN."""
    holder = ws.urn_owner.get(identity)
    return ws.active_contact(holder) if holder else None
