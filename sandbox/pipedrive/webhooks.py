"""Webhook subscriptions (``/v1/webhooks``) and delivery of v2 payloads on a background thread.

Payload (api-contracts.md section 3.4): ``{meta: {action: create|change|delete, entity,
entity_id (string), id (uuid), version: "2.0", change_source, timestamp, ...}, data, previous}``;
``previous`` holds only the changed fields (null on create; the whole object on delete, when
``data`` is null). Delivery is an HTTP POST of JSON with the subscription's basic auth, if any.
Each event is delivered once (no retries); the outcome is kept for ``GET /_sandbox/state``.
"""

from __future__ import annotations

import queue
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

EVENT_ACTIONS = ("create", "change", "delete", "*", "added", "updated", "deleted", "merged")
EVENT_OBJECTS = ("person", "organization", "deal", "activity", "*")
_V1_ACTIONS = {"added": "create", "updated": "change", "deleted": "delete"}
MAX_WEBHOOKS = 40
COMPANY_ID = 7007001


@dataclass
class Webhook:
    """One subscription."""

    id: int
    subscription_url: str
    event_action: str
    event_object: str
    user_id: int
    version: str
    name: str | None
    http_auth_user: str | None = None
    http_auth_password: str | None = field(default=None, repr=False)
    add_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_delivery_time: datetime | None = None
    last_http_status: int | None = None

    def matches(self, action: str, entity: str) -> bool:
        """Whether an event of ``action`` on ``entity`` goes to this subscription."""
        wanted = _V1_ACTIONS.get(self.event_action, self.event_action)
        return wanted in {"*", action} and self.event_object in {"*", entity}

    def to_json(self) -> dict[str, Any]:
        """The v1 webhook object (the password is never echoed)."""
        return {
            "id": self.id,
            "company_id": COMPANY_ID,
            "owner_id": self.user_id,
            "user_id": self.user_id,
            "event_action": self.event_action,
            "event_object": self.event_object,
            "subscription_url": self.subscription_url,
            "version": self.version,
            "name": self.name,
            "is_active": 1,
            "add_time": self.add_time.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "remove_time": None,
            "type": "general",
            "http_auth_user": self.http_auth_user,
            "http_auth_password": "*****" if self.http_auth_password else None,
            "last_delivery_time": self.last_delivery_time.isoformat() if self.last_delivery_time else None,
            "last_http_status": self.last_http_status,
        }


def payload(
    webhook: Webhook,
    *,
    action: str,
    entity: str,
    entity_id: int,
    data: dict[str, Any] | None,
    previous: dict[str, Any] | None,
    change_source: str,
    user_id: int,
    host: str,
) -> dict[str, Any]:
    """The webhooks v2 body for one event and subscription."""
    return {
        "meta": {
            "action": action,
            "entity": entity,
            "entity_id": str(entity_id),
            "company_id": str(COMPANY_ID),
            "user_id": str(user_id),
            "correlation_id": str(uuid.uuid4()),
            "id": str(uuid.uuid4()),
            "is_bulk_edit": False,
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "type": "general",
            "version": "2.0",
            "webhook_id": str(webhook.id),
            "webhook_owner_id": str(webhook.user_id),
            "change_source": change_source,
            "attempt": 1,
            "host": host,
            "permitted_user_ids": [str(user_id)],
        },
        "data": data,
        "previous": previous,
    }


class Deliverer:
    """Posts queued payloads in order on one daemon thread; records every outcome."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self.deliveries: list[dict[str, Any]] = []
        self._queue: queue.Queue[tuple[Webhook, dict[str, Any]] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._flush_events: list[threading.Event] = []
        self._session = requests.Session()
        self._session.trust_env = False
        self._thread = threading.Thread(target=self._run, name="pipedrive-webhooks", daemon=True)
        self._thread.start()

    def enqueue(self, webhook: Webhook, body: dict[str, Any]) -> None:
        """Deliver ``body`` to ``webhook`` soon."""
        self._queue.put((webhook, body))

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait until every queued payload was delivered (or failed); return how many are recorded."""
        done = threading.Event()
        with self._lock:
            self._flush_events.append(done)
        # A marker: once the thread reaches it, everything queued before it has been handled.
        self._queue.put(None)
        done.wait(timeout_s)
        with self._lock:
            return len(self.deliveries)

    def clear(self) -> None:
        """Forget recorded deliveries (queued ones are still sent)."""
        with self._lock:
            self.deliveries.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        """Recorded deliveries, oldest first."""
        with self._lock:
            return list(self.deliveries)

    def close(self) -> None:
        """Stop the thread after the queued payloads."""
        self._queue.put(_STOP)
        self._thread.join(timeout=10)
        self._session.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if item is None:
                with self._lock:
                    events, self._flush_events = self._flush_events, []
                for event in events:
                    event.set()
                continue
            webhook, body = item
            self._deliver(webhook, body)

    def _deliver(self, webhook: Webhook, body: dict[str, Any]) -> None:
        auth = None
        if webhook.http_auth_user is not None:
            auth = (webhook.http_auth_user, webhook.http_auth_password or "")
        record: dict[str, Any] = {
            "webhook_id": webhook.id,
            "url": webhook.subscription_url,
            "event_id": body["meta"]["id"],
            "action": body["meta"]["action"],
            "entity": body["meta"]["entity"],
            "entity_id": body["meta"]["entity_id"],
            "change_source": body["meta"]["change_source"],
        }
        try:
            response = self._session.post(
                webhook.subscription_url, json=body, auth=auth, timeout=self.timeout_s
            )
            record["status"] = response.status_code
        except requests.RequestException as exc:
            record["status"] = None
            record["error"] = type(exc).__name__
        webhook.last_delivery_time = datetime.now(UTC)
        webhook.last_http_status = record["status"]
        with self._lock:
            self.deliveries.append(record)


_STOP: Any = ("stop",)
