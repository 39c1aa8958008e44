"""Verify a Pipedrive webhooks v2 delivery: basic auth, payload shape, dedupe key. Pure functions.

Pipedrive signs nothing; a subscription can carry HTTP basic credentials
(``http_auth_user``/``http_auth_password``, api-contracts.md 3.4), so the receiver compares them
with a connection's login and password in constant time and refuses everything else. The
payload is ``{meta: {action, entity, entity_id, id, version: "2.0", ...}, data, previous}``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIONS",
    "ENTITIES",
    "WebhookCredentials",
    "WebhookEvent",
    "WebhookRejected",
    "check_basic_auth",
    "parse_event",
    "verify_delivery",
]

ACTIONS = frozenset({"create", "change", "delete"})
#: Webhook entity names (singular) -> API entity names.
ENTITIES = {"person": "persons", "organization": "organizations", "deal": "deals", "activity": "activities"}


class WebhookRejected(Exception):
    """A delivery to refuse: ``status`` is what to answer (401 bad credentials, 400 bad payload)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class WebhookCredentials:
    """The basic-auth pair a subscription must send (from a connection's login and password)."""

    user: str
    password: str = field(repr=False)

    @classmethod
    def from_connection(cls, conn: Any) -> WebhookCredentials:
        """Read ``login``/``password`` of an Airflow connection.

        Raises:
            WebhookRejected: 401 when the connection lacks either (refuse rather than accept all).
        """
        if not conn.login or not conn.password:
            raise WebhookRejected(401, f"connection {conn.conn_id!r} has no webhook login and password")
        return cls(user=str(conn.login), password=str(conn.password))


@dataclass(frozen=True)
class WebhookEvent:
    """One verified v2 event (``data``/``previous`` hold personal data: never log them)."""

    event_id: str
    action: str
    entity: str
    entity_id: int
    timestamp: str | None
    change_source: str | None
    data: Mapping[str, Any] | None = field(repr=False)
    previous: Mapping[str, Any] | None = field(repr=False)

    @property
    def dedupe_key(self) -> str:
        """Equal for events that ask for the same sync: a pending one makes the next redundant.

        Delete and the others stay apart, since a sync and a delete are different tasks (as the
        original queue's task name + params).
        """
        kind = "delete" if self.action == "delete" else "sync"
        return f"pipedrive:{self.entity}:{self.entity_id}:{kind}"

    @property
    def from_api(self) -> bool:
        """Whether the change came through the API (possibly our own write) rather than the app."""
        return self.change_source == "api"


def _decode_basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def check_basic_auth(header: str | None, credentials: WebhookCredentials) -> bool:
    """Whether an ``Authorization`` header carries exactly these credentials (constant time)."""
    sent = _decode_basic(header)
    user, password = sent if sent is not None else ("", "")
    # Both comparisons always run, so timing tells nothing about which part was wrong.
    user_ok = hmac.compare_digest(user.encode(), credentials.user.encode())
    password_ok = hmac.compare_digest(password.encode(), credentials.password.encode())
    return sent is not None and user_ok and password_ok


def parse_event(body: Any) -> WebhookEvent:
    """Check a v2 payload's shape and return its event.

    Raises:
        WebhookRejected: 400 naming what is wrong (v1 payloads included).
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("meta"), Mapping):
        raise WebhookRejected(400, "payload is not a JSON object with a 'meta' object")
    meta = body["meta"]
    if str(meta.get("version")) != "2.0":
        raise WebhookRejected(400, f"webhook version {meta.get('version')!r} is not 2.0")
    action, entity = meta.get("action"), meta.get("entity")
    if action not in ACTIONS:
        raise WebhookRejected(400, f"meta.action {action!r} is not one of {sorted(ACTIONS)}")
    if entity not in ENTITIES:
        raise WebhookRejected(400, f"meta.entity {entity!r} is not one of {sorted(ENTITIES)}")
    try:
        entity_id = int(str(meta.get("entity_id")))
    except ValueError:
        raise WebhookRejected(400, "meta.entity_id is not an integer id") from None
    event_id = meta.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise WebhookRejected(400, "meta.id is missing")
    data, previous = body.get("data"), body.get("previous")
    for name, value in (("data", data), ("previous", previous)):
        if value is not None and not isinstance(value, Mapping):
            raise WebhookRejected(400, f"{name} must be an object or null")
    if action != "delete" and data is None:
        raise WebhookRejected(400, f"a {action} event needs data")
    return WebhookEvent(
        event_id=event_id,
        action=str(action),
        entity=str(entity),
        entity_id=entity_id,
        timestamp=meta.get("timestamp"),
        change_source=meta.get("change_source"),
        data=data,
        previous=previous,
    )


def verify_delivery(authorization: str | None, body: Any, credentials: WebhookCredentials) -> WebhookEvent:
    """Authenticate, then parse: the one call a receiver makes.

    Raises:
        WebhookRejected: 401 for missing or wrong credentials (checked first, so an
            unauthenticated caller learns nothing about the payload rules); 400 for a bad payload.
    """
    if not check_basic_auth(authorization, credentials):
        raise WebhookRejected(401, "missing or wrong basic credentials")
    return parse_event(body)
