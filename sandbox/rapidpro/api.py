"""The ``/api/v2/*.json`` endpoints of the RapidPro emulator (temba/api/v2/views.py)."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from sandbox.emulator import read_json
from sandbox.rapidpro import contacts as contact_ops
from sandbox.rapidpro import flows as flow_ops
from sandbox.rapidpro import urns
from sandbox.rapidpro.backend import UUID_RE, RapidProBackend
from sandbox.rapidpro.contacts import LEGACY
from sandbox.rapidpro.errors import ApiError, detail, not_found
from sandbox.rapidpro.models import Contact, Group, Workspace
from sandbox.rapidpro.paging import Key, page_body, paginate
from sandbox.rapidpro.values import format_datetime, parse_bool, parse_datetime

T = TypeVar("T")
PREFIX = "/api/v2"


async def _json_body(request: Request) -> Any:
    return await read_json(request, lambda reason: detail(400, f"JSON parse error - {reason}"))


def _base_url(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}{request.url.path}"


def _uuid_param(request: Request, name: str = "uuid") -> str | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not UUID_RE.match(value.lower()):
        raise detail(400, f"Param '{name}': {value} is not a valid UUID.")
    return value.lower()


def _window(request: Request, stamp: Callable[[T], datetime]) -> Callable[[T], bool]:
    """The ``before``/``after`` filter (inclusive) on ``stamp``."""
    before = parse_datetime(request.query_params.get("before"))
    after = parse_datetime(request.query_params.get("after"))

    def keep(item: T) -> bool:
        value = stamp(item)
        return (before is None or value <= before) and (after is None or value >= after)

    return keep


def _page(
    backend: RapidProBackend,
    request: Request,
    items: Iterable[T],
    key: Callable[[T], Key],
    render: Callable[[T], dict[str, Any]],
) -> dict[str, Any]:
    reverse = parse_bool(request.query_params.get("reverse")) is True
    ordered = sorted(items, key=key, reverse=not reverse)
    page, next_url, previous_url = paginate(
        ordered,
        key,
        cursor=request.query_params.get("cursor"),
        page_size=int(backend.config["page_size"]),
        url=_base_url(request),
        params=dict(request.query_params),
        descending=not reverse,
    )
    return page_body([render(item) for item in page], next_url, previous_url)


def _modified_key(item: Any) -> Key:
    return (format_datetime(item.modified_on) or "", item.id)


def _created_key(item: Any) -> Key:
    return (format_datetime(item.created_on) or "", item.id)


def build_router(backend: RapidProBackend) -> APIRouter:
    """The API routes, bound to ``backend``."""
    router = APIRouter(prefix=PREFIX)

    def begin(request: Request, scope: str = "v2") -> Workspace:
        return backend.begin(request.headers.get("authorization"), scope)

    @router.get("/workspace.json")
    @router.get("/org.json")
    async def workspace(request: Request) -> dict[str, Any]:
        with backend.lock:
            return begin(request).to_json()

    # ---- contacts ---------------------------------------------------------------------------

    @router.get("/contacts.json")
    async def list_contacts(request: Request) -> dict[str, Any]:
        with backend.lock:
            ws = begin(request, "v2.contacts")
            params = request.query_params
            deleted = parse_bool(params.get("deleted")) is True
            uuid = _uuid_param(request)
            candidates: Iterable[Contact] = ws.contacts.values()
            # Lookups by URN or UUID use the indexes: an import does one per row.
            if params.get("urn") is not None:
                try:
                    identity = urns.normalize(params["urn"], ws.country)
                except urns.InvalidUrn as exc:
                    raise detail(400, f"Invalid URN: {params['urn']}") from exc
                holder = ws.urn_owner.get(identity)
                candidates = [ws.contacts[holder]] if holder and uuid in (None, holder) else []
            elif uuid is not None:
                candidates = [ws.contacts[uuid]] if uuid in ws.contacts else []
            items = [c for c in candidates if c.is_active != deleted]
            if params.get("group") is not None:
                group = ws.group_by_ref(params["group"])
                items = [c for c in items if group is not None and group.uuid in c.groups]
            keep = _window(request, lambda c: c.modified_on)
            items = [c for c in items if keep(c)]
            return _page(backend, request, items, _modified_key, ws.contact_json)

    @router.post("/contacts.json")
    async def write_contact(request: Request) -> JSONResponse:
        body = await _json_body(request)
        with backend.lock:
            ws = begin(request, "v2.contacts")
            uuid, urn = request.query_params.get("uuid"), request.query_params.get("urn")
            if uuid is not None and urn is not None:
                raise detail(400, "URL can only contain one of the following parameters: urn, uuid")
            now = backend.clock.now()
            style = backend.style
            if uuid is not None:
                contact = ws.contacts.get(uuid.lower())
                if contact is None:
                    raise not_found()
                changes = contact_ops.parse_contact_write(
                    ws, body, instance=contact, urn_in_url=False, style=style
                )
                contact_ops.apply_changes(ws, contact, changes, now)
                return JSONResponse(ws.contact_json(contact), status_code=200)
            if urn is not None:
                try:
                    identity = urns.normalize(urn, ws.country)
                except urns.InvalidUrn as exc:
                    raise detail(400, f"Invalid URN: {urn}") from exc
                existing = contact_ops.contact_by_urn(ws, identity)
                changes = contact_ops.parse_contact_write(
                    ws, body, instance=existing, urn_in_url=True, style=style
                )
                if existing is not None:
                    contact_ops.apply_changes(ws, existing, changes, now)
                    return JSONResponse(ws.contact_json(existing), status_code=200)
                changes.urns = [identity]
                created = contact_ops.create_contact(ws, changes, now)
                return JSONResponse(ws.contact_json(created), status_code=201)
            changes = contact_ops.parse_contact_write(ws, body, instance=None, urn_in_url=False, style=style)
            created = contact_ops.create_contact(ws, changes, now)
            return JSONResponse(ws.contact_json(created), status_code=201)

    @router.delete("/contacts.json")
    async def delete_contact(request: Request) -> Response:
        with backend.lock:
            ws = begin(request, "v2.contacts")
            uuid, urn = request.query_params.get("uuid"), request.query_params.get("urn")
            if (uuid is None) == (urn is None):
                which = "can only" if uuid is not None else "must"
                raise detail(400, f"URL {which} contain one of the following parameters: urn, uuid")
            if uuid is not None:
                contact = ws.active_contact(uuid.lower())
            else:
                try:
                    contact = contact_ops.contact_by_urn(ws, urns.normalize(urn, ws.country))
                except urns.InvalidUrn as exc:
                    raise detail(400, f"Invalid URN: {urn}") from exc
            if contact is None:
                raise not_found()
            contact_ops.delete_contact(ws, contact, backend.clock.now())
            return Response(status_code=204)

    # ---- fields, groups, flows --------------------------------------------------------------

    @router.get("/fields.json")
    async def list_fields(request: Request) -> dict[str, Any]:
        with backend.lock:
            ws = begin(request)
            key = request.query_params.get("key")
            items = [f for f in ws.fields.values() if key is None or f.key == key]
            legacy = backend.style == LEGACY
            return _page(backend, request, items, _created_key, lambda f: f.to_json(legacy=legacy))

    @router.post("/fields.json")
    async def write_field(request: Request) -> JSONResponse:
        body = await _json_body(request)
        with backend.lock:
            ws = begin(request)
            key = request.query_params.get("key")
            if key is None:
                created = flow_ops.create_field(ws, body, backend.clock.now())
                return JSONResponse(created.to_json(legacy=backend.style == LEGACY), status_code=201)
            existing = ws.fields.get(key)
            if existing is None:
                raise not_found()
            body = contact_ops.body_object(body)
            label = body.get("name", body.get("label"))
            if isinstance(label, str) and label.strip():
                existing.name = label.strip()
            return JSONResponse(existing.to_json(legacy=backend.style == LEGACY), status_code=200)

    @router.get("/groups.json")
    async def list_groups(request: Request) -> dict[str, Any]:
        with backend.lock:
            ws = begin(request)
            uuid = _uuid_param(request)
            name = request.query_params.get("name")
            items = [
                g
                for g in ws.groups.values()
                if (uuid is None or g.uuid == uuid) and (name is None or g.name.lower() == name.lower())
            ]

            def render(group: Any) -> dict[str, Any]:
                count = sum(1 for c in ws.contacts.values() if c.is_active and group.uuid in c.groups)
                return group.to_json(count)

            return _page(backend, request, items, _created_key, render)

    @router.post("/groups.json")
    async def create_group(request: Request) -> JSONResponse:
        body = contact_ops.body_object(await _json_body(request))
        with backend.lock:
            ws = begin(request)
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                raise ApiError(400, {"name": ["This field is required."]})
            if ws.group_by_ref(name.strip()) is not None:
                raise ApiError(400, {"name": ["This field must be unique."]})
            group = Group(
                uuid=str(uuidlib.uuid4()), name=name.strip(), created_on=backend.clock.now(), id=ws.new_id()
            )
            ws.groups[group.uuid] = group
            return JSONResponse(group.to_json(0), status_code=201)

    @router.get("/flows.json")
    async def list_flows(request: Request) -> dict[str, Any]:
        with backend.lock:
            ws = begin(request)
            uuid = _uuid_param(request)
            flow_type = request.query_params.get("type")
            archived = parse_bool(request.query_params.get("archived"))
            items = [
                f
                for f in ws.flows.values()
                if (uuid is None or f.uuid == uuid)
                and (flow_type is None or f.type == flow_type)
                and (archived is None or f.archived == archived)
            ]
            return _page(backend, request, items, _created_key, ws.flow_json)

    # ---- flow starts and runs ---------------------------------------------------------------

    @router.get("/flow_starts.json")
    async def list_flow_starts(request: Request) -> dict[str, Any]:
        with backend.lock:
            ws = begin(request)
            uuid = _uuid_param(request)
            items = [s for s in ws.starts.values() if uuid is None or s.uuid == uuid]
            keep = _window(request, lambda s: s.modified_on)
            items = [s for s in items if keep(s)]
            legacy = backend.style == LEGACY
            return _page(backend, request, items, _modified_key, lambda s: ws.start_json(s, legacy=legacy))

    @router.post("/flow_starts.json")
    async def create_flow_start(request: Request) -> JSONResponse:
        body = await _json_body(request)
        with backend.lock:
            ws = begin(request)
            start_request = flow_ops.parse_flow_start(ws, body, style=backend.style)
            start = flow_ops.create_start(
                ws, start_request, backend.clock.now(), float(backend.config["flow_delay_s"])
            )
            return JSONResponse(ws.start_json(start, legacy=backend.style == LEGACY), status_code=201)

    @router.get("/runs.json")
    async def list_runs(request: Request) -> dict[str, Any]:
        with backend.lock:
            ws = begin(request, "v2.runs")
            uuid = _uuid_param(request)
            flow = _uuid_param(request, "flow")
            contact = _uuid_param(request, "contact")
            responded = parse_bool(request.query_params.get("responded"))
            items = [
                r
                for r in ws.runs.values()
                if (uuid is None or r.uuid == uuid)
                and (flow is None or r.flow == flow)
                and (contact is None or r.contact == contact)
                and (responded is None or responded is False)
            ]
            keep = _window(request, lambda r: r.modified_on)
            items = [r for r in items if keep(r)]
            return _page(backend, request, items, _modified_key, ws.run_json)

    return router


def error_response(exc: ApiError) -> JSONResponse:
    """Render an :class:`ApiError`."""
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
