"""Pipedrive webhooks v2 receiver, mounted by Airflow at ``/crm-sync-webhooks/pipedrive``.

``POST /crm-sync-webhooks/pipedrive/events`` takes a webhooks v2 delivery with HTTP basic auth
equal to connection ``pipedrive_webhook``'s login and password (crm_sync.hooks.pipedrive_webhooks,
compared in constant time). Then:

- wrong or missing credentials, or no such connection: 401, nothing said about why;
- not a v2 payload: 400 naming what is wrong (only after the credentials passed);
- an entity the sync does not take from webhooks (activity; a delete other than a person's):
  200 ``ignored``;
- otherwise a run of ``marketo_pipedrive_sync`` with conf ``{entity, entity_id, action}``
  (201 ``queued``), unless an identical run is still queued (200 ``duplicate``).

Plugin apps are open (reference/airflow-plugins.md section 1): this app's only auth is the
basic-auth check. The payload's personal data is never logged; the event id, entity and id are.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from crm_sync.hooks.pipedrive_webhooks import (
    WebhookCredentials,
    WebhookEvent,
    WebhookRejected,
    verify_delivery,
)
from crm_sync.webhooks.runs import enqueue

__all__ = ["CONN_ID", "DAG_ID", "MAX_BODY", "app", "handle_delivery", "run_conf"]

log = logging.getLogger(__name__)

CONN_ID = "pipedrive_webhook"
DAG_ID = "marketo_pipedrive_sync"
USER_NAME = "pipedrive-webhook"
MAX_BODY = 1_000_000
"""Bytes; a v2 delivery of one record is a few kB."""

# Webhook entities the sync takes (the DAG's Param ``entity``); only a person delete is synced.
_SYNCED = frozenset({"person", "organization", "deal"})


def _credentials() -> WebhookCredentials:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        conn = BaseHook.get_connection(CONN_ID)
    except AirflowNotFoundException:
        log.warning("pipedrive webhook refused: connection %s is not defined", CONN_ID)
        raise WebhookRejected(401, "no webhook credentials configured") from None
    return WebhookCredentials.from_connection(conn)


def run_conf(event: WebhookEvent) -> dict[str, Any] | None:
    """The DAG conf an event asks for, or None when the sync does not act on it."""
    if event.entity not in _SYNCED or (event.action == "delete" and event.entity != "person"):
        return None
    return {
        "entity": event.entity,
        "entity_id": event.entity_id,
        "action": "delete" if event.action == "delete" else "sync",
    }


def handle_delivery(authorization: str | None, raw: bytes) -> tuple[int, dict[str, Any]]:
    """Verify one delivery and queue its run: ``(HTTP status, JSON answer)``. Blocking (DB)."""
    try:
        credentials = _credentials()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        event = verify_delivery(authorization, body, credentials)
    except WebhookRejected as exc:
        if exc.status == 401:
            return 401, {"detail": "Unauthorized"}
        return exc.status, {"detail": exc.reason}
    conf = run_conf(event)
    if conf is None:
        log.info("pipedrive webhook %s: %s %s ignored", event.event_id, event.action, event.entity)
        return 200, {"status": "ignored", "event_id": event.event_id}
    run_id, created = enqueue(DAG_ID, conf, user_name=USER_NAME)
    log.info(
        "pipedrive webhook %s (%s): %s %s",
        event.event_id,
        event.dedupe_key,
        "queued" if created else "duplicate of",
        run_id,
    )
    answer = {"status": "queued" if created else "duplicate", "run_id": run_id, "event_id": event.event_id}
    return (201 if created else 200), answer


def create_app() -> FastAPI:
    """The receiver's app (no docs pages: plugin apps are served without a login)."""
    api = FastAPI(title="CRM Sync Pipedrive webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    @api.post("/events")
    async def receive(request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return JSONResponse({"detail": "payload too large"}, status_code=413)
        status, answer = await run_in_threadpool(handle_delivery, request.headers.get("authorization"), raw)
        headers = {"WWW-Authenticate": 'Basic realm="crm-sync"'} if status == 401 else None
        return JSONResponse(answer, status_code=status, headers=headers)

    return api


app = create_app()
