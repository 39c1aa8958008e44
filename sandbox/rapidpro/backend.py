"""The RapidPro emulator's state: workspaces by token, configuration, throttling, seed and state."""

from __future__ import annotations

import copy
import re
import threading
import uuid as uuidlib
from typing import Any

from fastapi import APIRouter

from sandbox.emulator import AdminError, EmulatorBackend
from sandbox.rapidpro import flows as flow_ops
from sandbox.rapidpro.contacts import CURRENT, LEGACY, create_contact, parse_contact_write
from sandbox.rapidpro.errors import ApiError, detail
from sandbox.rapidpro.models import Clock, ContactField, Flow, Group, Workspace
from sandbox.rapidpro.throttle import SlidingWindow, throttled
from sandbox.rapidpro.values import FIELD_TYPES, LEGACY_TYPE_NAMES, zone

DEFAULT_ORG = "GP Connect"
DEFAULT_TOKEN = "rapidpro-sandbox-token-0001"
DEFAULT_COUNTRY = "ZA"
DEFAULT_TIMEZONE = "Africa/Johannesburg"
DEFAULTS: dict[str, Any] = {
    "page_size": 250,
    "rate_limit": None,
    "rate_window_s": 60.0,
    "flow_delay_s": 0.0,
    "server_version": CURRENT,
}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TOKEN = re.compile(r"^\s*Token\s+(\S+)\s*$", re.IGNORECASE)
STATE_LISTS = ("contacts", "fields", "groups", "flows", "flow_starts", "runs")


def _default_workspace() -> Workspace:
    return Workspace(
        name=DEFAULT_ORG,
        uuid="6a44ca78-a4c2-4862-a7d3-2932f9b3a7c3",
        tokens=[DEFAULT_TOKEN],
        country=DEFAULT_COUNTRY,
        timezone=DEFAULT_TIMEZONE,
    )


class RapidProBackend(EmulatorBackend):
    """Workspaces (one per org, found by API token), knobs, throttling and the admin hooks."""

    name = "rapidpro"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.throttle = SlidingWindow()
        self.workspaces: dict[str, Workspace] = {}
        self.config: dict[str, Any] = {}
        self.reset()

    # ---- API-side helpers ---------------------------------------------------------------

    def authenticate(self, header: str | None) -> Workspace:
        """The workspace owning the ``Authorization: Token <key>`` header.

        Raises:
            ApiError: 403 as RapidPro answers a missing or unknown token.
        """
        if not header:
            raise detail(403, "Authentication credentials were not provided.")
        match = _TOKEN.match(header)
        if match:
            for workspace in self.workspaces.values():
                if match.group(1) in workspace.tokens:
                    return workspace
        raise detail(403, "Invalid token")

    def begin(self, header: str | None, scope: str) -> Workspace:
        """Authenticate, throttle (RapidPro checks auth first) and run due flow starts."""
        workspace = self.authenticate(header)
        self.throttle.check((workspace.name, scope), self.config["rate_limit"], self.config["rate_window_s"])
        flow_ops.execute_due(workspace, self.clock.now(), self.clock.now)
        return workspace

    @property
    def style(self) -> str:
        """Which server is emulated: ``current`` RapidPro or a ``legacy`` (2019-era) one."""
        return str(self.config["server_version"])

    # ---- EmulatorBackend -------------------------------------------------------------------

    def reset(self) -> None:
        """Back to one empty workspace (``GP Connect``) and default knobs."""
        with self.lock:
            self.workspaces = {DEFAULT_ORG: _default_workspace()}
            self.config = dict(DEFAULTS)
            self.throttle.reset()

    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set knobs; ``rate_per_minute: N`` is short for ``rate_limit: N, rate_window_s: 60``."""
        with self.lock:
            knobs = dict(knobs)
            if "rate_per_minute" in knobs:
                knobs["rate_limit"] = knobs.pop("rate_per_minute")
                knobs.setdefault("rate_window_s", 60.0)
            unknown = set(knobs) - set(DEFAULTS)
            if unknown:
                raise AdminError(f"unknown rapidpro knobs: {sorted(unknown)}; known: {sorted(DEFAULTS)}")
            _check_knobs(knobs)
            self.config.update(knobs)
            if "rate_limit" in knobs or "rate_window_s" in knobs:
                self.throttle.reset()
            return dict(self.config)

    def daily_limit_response(self) -> tuple[int, Any, dict[str, str]]:
        """RapidPro has no daily quota; its long-window throttle answers like this."""
        error = throttled(3600)
        return error.status, error.body, error.headers

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load orgs, fields, groups, flows and contacts; nothing is kept if any is invalid."""
        with self.lock:
            workspaces = copy.deepcopy(self.workspaces)
            created: dict[str, list[str]] = {
                "orgs": [],
                "fields": [],
                "groups": [],
                "flows": [],
                "contacts": [],
            }
            for raw in _items(body, "orgs"):
                created["orgs"].append(_seed_org(workspaces, raw))
            target = body.get("org", DEFAULT_ORG)
            if target not in workspaces:
                raise AdminError(f"unknown org {target!r}; seed it under 'orgs' first")
            workspace = workspaces[target]
            for raw in _items(body, "fields"):
                created["fields"].append(self._seed_field(workspace, raw))
            for raw in _items(body, "groups"):
                created["groups"].append(self._seed_group(workspace, raw))
            for raw in _items(body, "flows"):
                created["flows"].append(self._seed_flow(workspace, raw))
            for index, raw in enumerate(_items(body, "contacts")):
                created["contacts"].append(self._seed_contact(workspace, raw, index))
            self.workspaces = workspaces
            return created

    def state(self, params: dict[str, str]) -> Any:
        """Stored objects for assertions.

        ``?contacts``, ``?fields``, ``?groups``, ``?flows``, ``?flow_starts``, ``?runs`` (any mix;
        ``?org=`` picks a workspace); without a list name, the counts of each.
        """
        with self.lock:
            name = params.get("org", DEFAULT_ORG)
            workspace = self.workspaces.get(name)
            if workspace is None:
                raise AdminError(f"unknown org {name!r}")
            flow_ops.execute_due(workspace, self.clock.now(), self.clock.now)
            wanted = [key for key in STATE_LISTS if key in params]
            if not wanted:
                return {
                    "org": workspace.name,
                    "orgs": sorted(self.workspaces),
                    "counts": {key: len(_state_list(workspace, key)) for key in STATE_LISTS},
                }
            return {"org": workspace.name, **{key: _state_list(workspace, key) for key in wanted}}

    def admin_router(self) -> APIRouter:
        """``POST /_sandbox/execute_flow_starts``: run every pending start now, whatever the delay."""
        router = APIRouter()

        @router.post("/execute_flow_starts")
        def execute_now() -> dict[str, Any]:
            with self.lock:
                far = self.clock.now().replace(year=9999)
                executed = sum(
                    flow_ops.execute_due(ws, far, self.clock.now) for ws in self.workspaces.values()
                )
            return {"executed": executed}

        return router

    # ---- seed helpers ----------------------------------------------------------------------

    def _seed_field(self, workspace: Workspace, raw: dict[str, Any]) -> str:
        label = raw.get("label") or raw.get("name")
        key = raw.get("key") or (flow_ops.field_key(label) if isinstance(label, str) else None)
        type_name = raw.get("value_type") or raw.get("type") or "text"
        type_name = LEGACY_TYPE_NAMES.get(type_name, type_name)
        if not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,35}", key):
            raise AdminError(f"field key {key!r} is not a valid RapidPro key")
        if key in flow_ops.RESERVED_KEYS:
            raise AdminError(f"field key {key!r} is reserved")
        if type_name not in FIELD_TYPES:
            raise AdminError(f"field {key!r}: value_type {type_name!r} not in {FIELD_TYPES}")
        workspace.fields[key] = ContactField(
            key=key,
            name=str(label or key),
            type=type_name,
            created_on=self.clock.now(),
            id=workspace.new_id(),
        )
        return key

    def _seed_group(self, workspace: Workspace, raw: Any) -> str:
        spec = {"name": raw} if isinstance(raw, str) else dict(raw)
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise AdminError("a group needs a name")
        uuid = _uuid(spec.get("uuid"))
        workspace.groups[uuid] = Group(
            uuid=uuid, name=name.strip(), created_on=self.clock.now(), id=workspace.new_id()
        )
        return uuid

    def _seed_flow(self, workspace: Workspace, raw: dict[str, Any]) -> str:
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            raise AdminError("a flow needs a name")
        uuid = _uuid(raw.get("uuid"))
        workspace.flows[uuid] = Flow(
            uuid=uuid,
            name=name.strip(),
            type=str(raw.get("type", "message")),
            archived=bool(raw.get("archived", False)),
            sets_fields_from_params=bool(raw.get("sets_fields_from_params", False)),
            created_on=self.clock.now(),
            id=workspace.new_id(),
        )
        return uuid

    def _seed_contact(self, workspace: Workspace, raw: dict[str, Any], index: int) -> str:
        if not isinstance(raw, dict):
            raise AdminError(f"contacts[{index}] must be an object")
        body = {key: raw[key] for key in ("name", "language", "urns", "groups", "fields") if key in raw}
        try:
            changes = parse_contact_write(workspace, body, instance=None, urn_in_url=False, style=CURRENT)
        except ApiError as exc:
            raise AdminError(f"contacts[{index}] is invalid", details=exc.body) from exc
        contact = create_contact(workspace, changes, self.clock.now())
        if raw.get("uuid"):
            wanted = _uuid(raw["uuid"])
            if wanted in workspace.contacts:
                raise AdminError(f"contacts[{index}]: uuid {wanted} already exists")
            del workspace.contacts[contact.uuid]
            for urn in contact.urns:
                workspace.urn_owner[urn] = wanted
            contact.uuid = wanted
            workspace.contacts[wanted] = contact
        status = raw.get("status", "active")
        if status not in {"active", "blocked", "stopped", "archived"}:
            raise AdminError(f"contacts[{index}]: unknown status {status!r}")
        contact.status = status
        return contact.uuid


def _items(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise AdminError(f"seed {key!r} must be a list")
    return value


def _uuid(value: Any) -> str:
    if value is None:
        return str(uuidlib.uuid4())
    if not isinstance(value, str) or not UUID_RE.match(value.lower()):
        raise AdminError(f"{value!r} is not a UUID")
    return value.lower()


def _seed_org(workspaces: dict[str, Workspace], raw: dict[str, Any]) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise AdminError("an org needs a name")
    token = raw.get("token")
    if not isinstance(token, str) or len(token) < 8:
        raise AdminError(f"org {name!r} needs an API token of at least 8 characters")
    for other in workspaces.values():
        if other.name != name and token in other.tokens:
            raise AdminError(f"token of org {name!r} already belongs to org {other.name!r}")
    timezone = str(raw.get("timezone", DEFAULT_TIMEZONE))
    try:
        zone(timezone)
    except (KeyError, ValueError) as exc:
        raise AdminError(f"org {name!r}: unknown timezone {timezone!r}") from exc
    existing = workspaces.get(name)
    if existing is not None:
        if token not in existing.tokens:
            existing.tokens.append(token)
        existing.country = str(raw.get("country", existing.country))
        existing.timezone = timezone
    else:
        workspaces[name] = Workspace(
            name=name,
            uuid=_uuid(raw.get("uuid")),
            tokens=[token],
            country=str(raw.get("country", DEFAULT_COUNTRY)),
            timezone=timezone,
        )
    return name


def _state_list(workspace: Workspace, key: str) -> list[dict[str, Any]]:
    if key == "contacts":
        return [
            {**workspace.contact_json(c), "deleted": not c.is_active} for c in workspace.contacts.values()
        ]
    if key == "fields":
        return [f.to_json(legacy=False) for f in workspace.fields.values()]
    if key == "groups":
        return [
            g.to_json(sum(1 for c in workspace.contacts.values() if c.is_active and g.uuid in c.groups))
            for g in workspace.groups.values()
        ]
    if key == "flows":
        return [
            {**workspace.flow_json(f), "sets_fields_from_params": f.sets_fields_from_params}
            for f in workspace.flows.values()
        ]
    if key == "flow_starts":
        return [workspace.start_json(s, legacy=False) for s in workspace.starts.values()]
    return [workspace.run_json(r) for r in workspace.runs.values()]


def _check_knobs(knobs: dict[str, Any]) -> None:
    if "page_size" in knobs and not (isinstance(knobs["page_size"], int) and knobs["page_size"] >= 1):
        raise AdminError("page_size must be a positive integer")
    limit = knobs.get("rate_limit")
    if limit is not None and not (isinstance(limit, int) and limit >= 0):
        raise AdminError("rate_limit must be null (off) or a non-negative integer")
    window = knobs.get("rate_window_s", 1)
    if not (isinstance(window, int | float) and window > 0):
        raise AdminError("rate_window_s must be a positive number of seconds")
    delay = knobs.get("flow_delay_s", 0)
    if not (isinstance(delay, int | float) and delay >= 0):
        raise AdminError("flow_delay_s must be a non-negative number of seconds")
    if "server_version" in knobs and knobs["server_version"] not in {CURRENT, LEGACY}:
        raise AdminError(f"server_version must be {CURRENT!r} or {LEGACY!r}")
