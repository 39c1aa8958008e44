"""RapidProHook: RapidPro (TextIt) workspace fields, flows, contacts and flow starts as typed results.

rapidpro-python's ``TembaClient`` builds the URLs, query parameters and cursor paging and
deserialises the objects. Its transport is not usable as is: ``BaseClient._request`` calls the
module-level ``requests.request`` without a timeout, and its optional 429 sleep loop would be a
second retry layer. :class:`_PolicyTembaClient` replaces that one method (the library's only
I/O seam) so every request goes through the shared HTTP policy: timeouts, call counting,
redaction and one retry layer (urllib3, honouring ``Retry-After``). A ``http://`` host is
used as given (``TembaClient`` only prefixes ``https://`` to a bare host name).

Retries: GETs on 429/5xx/connection errors; contact updates by ``?uuid=``/``?urn=`` are
idempotent and retried the same way; a create or a flow start is retried only on 429 (RapidPro
throttles before processing: DRF ``check_throttles``) or when it provably never left. A flow
start has no idempotency key, so the outbox keeps our op key and :meth:`find_flow_start` looks
the start up (by an op key carried in its params, or by a params fingerprint) before any
re-start. A create whose answer is lost is recovered by looking its URNs up.

Personal data: URNs hold phone numbers, so no message or log line written here contains a URN,
a name or a field value; contacts are named by UUID, requests by path without query string.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import requests
from temba_client.v2 import TembaClient
from temba_client.v2.types import Contact as TembaContact
from temba_client.v2.types import Field as TembaField
from temba_client.v2.types import FlowStart as TembaFlowStart

from crm_sync.exceptions import (
    AuthError,
    ConfigurationError,
    FatalApiError,
    RecordRejected,
    RetriableApiError,
    SyncError,
)
from crm_sync.hooks.policy_hook import PolicyHook
from crm_sync.http import READ_ERROR, HttpPolicy, PolicySession, parse_retry_after
from crm_sync.redaction import redact, safe_excerpt

__all__ = [
    "MAX_FLOW_START_CONTACTS",
    "OP_KEY_PARAM",
    "Contact",
    "FieldInfo",
    "FlowInfo",
    "FlowStart",
    "RapidProHook",
    "RapidProSettings",
    "WorkspaceInfo",
    "error_code",
    "jsonable",
    "normalize_params",
    "order_urns",
    "params_fingerprint",
    "rapidpro_errors",
    "scrub",
    "urn_scheme",
]

log = logging.getLogger(__name__)

SYSTEM = "rapidpro"
#: Most contacts (and URNs, and groups) one flow start may name (temba/api/v2/serializers.py).
MAX_FLOW_START_CONTACTS = 100
#: Most characters of JSON-encoded flow start params (FLOW_START_EXTRA_SIZE).
PARAMS_MAX_CHARS = 10_000
#: Longest string the server keeps in params (normalize_extra truncates to 640).
PARAM_VALUE_MAX = 640
#: The param that carries an outbox op key, so a start can be found again after a crash.
OP_KEY_PARAM = "crm_sync_op"
#: Lookup order of URN schemes (seed 002: the tel URN first, then the whatsapp one).
URN_PRIORITY = ("tel", "whatsapp")

_PARAM_KEY = re.compile(r"[^a-zA-Z0-9_]")
# URN values and phone numbers in messages and URLs (`urn=tel%3A%2B27...`, `tel:+27...`).
_URN_TEXT = re.compile(r"(?i)\b(tel|whatsapp|mailto|twitter|facebook|telegram|viber|ext):[^\s,;'\"\]}]+")
_DEFAULT_POLICY = HttpPolicy(non_idempotent_retry_statuses=frozenset({429}))
# Contact updates name their target in the URL: repeating one gives the same result.
_IDEMPOTENT = (("POST", r"/contacts\.json\?(?:.*&)?(?:uuid|urn)="),)


# ---- pure helpers --------------------------------------------------------------------------------


def scrub(text: str) -> str:
    """Return ``text`` without URN values, phone numbers, e-mail addresses or secrets."""
    text = redact(text)
    text = _URN_TEXT.sub(lambda m: f"{m.group(1)}:***", text)
    return safe_excerpt(text)


def urn_scheme(urn: str) -> str:
    """The scheme of a URN (``tel`` of ``tel:+27...``), lower-cased."""
    return urn.partition(":")[0].strip().lower()


def order_urns(urns: Iterable[str]) -> list[str]:
    """URNs in lookup order: ``tel`` first, then ``whatsapp``, then the rest as given."""
    unique = list(dict.fromkeys(u for u in urns if u))

    def rank(urn: str) -> int:
        scheme = urn_scheme(urn)
        return URN_PRIORITY.index(scheme) if scheme in URN_PRIORITY else len(URN_PRIORITY)

    return sorted(unique, key=rank)


def jsonable(value: Any) -> Any:
    """``value`` with datetimes/dates as ISO strings and Decimals as strings, ready for JSON."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def normalize_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params as RapidPro stores them (temba/api/v2/serializers.py ``normalize_extra``).

    Keys keep letters, digits and ``_`` (others become ``_``), lists become objects keyed by
    index, null becomes ``""`` and strings are cut at 640 characters. The server applies this
    on every start, so comparing normalised forms tells whether a stored start carries our params.
    """

    def norm(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {_PARAM_KEY.sub("_", str(key)): norm(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return {str(index): norm(item) for index, item in enumerate(value)}
        if value is None:
            return ""
        if isinstance(value, str):
            return value[:PARAM_VALUE_MAX]
        return value

    return norm(jsonable(params))


def params_fingerprint(params: Mapping[str, Any]) -> str:
    """A SHA-256 of the normalised params (without :data:`OP_KEY_PARAM`), equal on both sides."""
    normalized = {k: v for k, v in normalize_params(params).items() if k != OP_KEY_PARAM}
    canonical = json.dumps(normalized, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def rapidpro_errors(body: Any) -> list[tuple[str | None, str]]:
    """Flatten a DRF error body into ``(field, message)`` pairs.

    Handles ``{"detail": "..."}``, ``{"field": ["..."]}``, ``{"urns": {"0": ["..."]}}`` (an error
    of one list item) and ``{"non_field_errors": [...]}`` (field None).
    """
    pairs: list[tuple[str | None, str]] = []

    def walk(field_name: str | None, value: Any) -> None:
        if isinstance(value, str):
            pairs.append((field_name, value))
        elif isinstance(value, list):
            for item in value:
                walk(field_name, item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(field_name, item)

    if isinstance(body, dict):
        for key, value in body.items():
            walk(None if key in {"detail", "non_field_errors"} else str(key), value)
    else:
        walk(None, body)
    return pairs


# RapidPro sends messages, no codes: these are ours, derived from the message (stable keys for the ledger).
_CODES = (
    ("in use by another contact", "URN_IN_USE"),
    ("belongs to another contact", "URN_IN_USE"),
    ("invalid urn", "INVALID_URN"),
    ("invalid contact field key", "INVALID_FIELD_KEY"),
    ("no such object", "NOT_FOUND"),
    ("no more than", "TOO_MANY_ITEMS"),
    ("cannot exceed", "PARAMS_TOO_LARGE"),
    ("must be a valid json object", "INVALID_PARAMS"),
    ("deleted contacts", "CONTACT_DELETED"),
    ("not a valid iso639-3", "INVALID_LANGUAGE"),
)


def error_code(message: str) -> str:
    """Our code for a RapidPro validation message (``INVALID_REQUEST`` when unknown)."""
    lowered = message.lower()
    return next((code for needle, code in _CODES if needle in lowered), "INVALID_REQUEST")


def _parse_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


# ---- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RapidProSettings:
    """What the hook reads from the connection."""

    base_url: str
    token: str = field(repr=False)
    org: str | None = None
    verify: bool | str = True

    @classmethod
    def from_connection(cls, conn: Any) -> RapidProSettings:
        """Read ``host``/``schema``/``port`` (or a full URL in ``host``), the token in ``password``.

        Raises:
            ConfigurationError: no host or no token.
        """
        extra = conn.extra_dejson or {}
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise ConfigurationError(f"connection {conn.conn_id!r}: set host (e.g. rapidpro.io)")
        if not conn.password:
            raise ConfigurationError(f"connection {conn.conn_id!r}: put the RapidPro API token in password")
        if "://" in host:
            base_url = host
        else:
            scheme = (conn.schema or "https").strip().lower()
            base_url = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}"
        verify = extra.get("verify", True)
        return cls(base_url=base_url, token=conn.password, org=extra.get("org") or None, verify=verify)


@dataclass(frozen=True)
class WorkspaceInfo:
    """The workspace (org) an API token belongs to."""

    uuid: str | None
    name: str
    country: str | None
    timezone: str | None


@dataclass(frozen=True)
class FieldInfo:
    """A contact field: ``key`` is what contacts and flow params use."""

    key: str
    label: str
    value_type: str


@dataclass(frozen=True)
class FlowInfo:
    """A flow."""

    uuid: str
    name: str
    type: str | None
    archived: bool


@dataclass(frozen=True)
class Contact:
    """A RapidPro contact. ``fields`` holds every workspace field (None when unset)."""

    uuid: str
    name: str | None
    urns: tuple[str, ...]
    fields: Mapping[str, Any] = field(hash=False)
    groups: tuple[str, ...]
    status: str | None
    language: str | None
    created_on: datetime | None
    modified_on: datetime | None

    @classmethod
    def from_temba(cls, item: TembaContact) -> Contact:
        """Convert the library's object."""
        return cls(
            uuid=item.uuid,
            name=item.name,
            urns=tuple(item.urns or ()),
            fields=MappingProxyType(dict(item.fields or {})),
            groups=tuple(group.uuid for group in item.groups or ()),
            status=item.status,
            language=item.language,
            created_on=_parse_dt(item.created_on),
            modified_on=_parse_dt(item.modified_on),
        )

    def urns_of(self, scheme: str) -> tuple[str, ...]:
        """This contact's URNs of one scheme."""
        return tuple(urn for urn in self.urns if urn_scheme(urn) == scheme)


@dataclass(frozen=True)
class FlowStart:
    """A flow start. ``params`` is what the server stored (normalised), ``status`` its progress."""

    uuid: str
    flow_uuid: str
    status: str | None
    contacts: tuple[str, ...]
    params: Mapping[str, Any] = field(hash=False)
    created_on: datetime | None

    @classmethod
    def from_temba(cls, item: TembaFlowStart) -> FlowStart:
        """Convert the library's object."""
        return cls(
            uuid=str(item.uuid),
            flow_uuid=item.flow.uuid if item.flow else "",
            status=item.status,
            contacts=tuple(contact.uuid for contact in item.contacts or ()),
            params=MappingProxyType(dict(item.params or {})),
            created_on=_parse_dt(item.created_on),
        )

    @property
    def op_key(self) -> str | None:
        """The outbox op key this start was tagged with, if any."""
        value = self.params.get(OP_KEY_PARAM)
        return str(value) if value not in (None, "") else None

    @property
    def fingerprint(self) -> str:
        """:func:`params_fingerprint` of the stored params."""
        return params_fingerprint(self.params)


# ---- the client ---------------------------------------------------------------------------------


def _legacy_names(cls: type, item: dict[str, Any]) -> dict[str, Any]:
    """TembaClient ``transformer``: read older servers' names into the current ones.

    Fields had ``label``/``value_type`` (``numeric`` for numbers); flow starts had ``extra``
    and a numeric ``id`` instead of a ``uuid``.
    """
    if cls is TembaField:
        item = dict(item)
        item.setdefault("name", item.get("label"))
        if not item.get("type") and item.get("value_type"):
            item["type"] = {"numeric": "number"}.get(item["value_type"], item["value_type"])
    elif cls is TembaFlowStart:
        item = dict(item)
        if item.get("params") is None and item.get("extra") is not None:
            item["params"] = item["extra"]
        if not item.get("uuid") and item.get("id") is not None:
            item["uuid"] = str(item["id"])
    return item


class _PolicyTembaClient(TembaClient):
    """``TembaClient`` whose requests go through a policy session (see the module docstring)."""

    def __init__(self, base_url: str, send: Callable[..., requests.Response]) -> None:
        # The token travels in the session's headers; TembaClient's own copy is never sent.
        super().__init__(base_url, "-", transformer=_legacy_names)
        self._send = send

    def _request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry_on_rate_exceed: bool = False,
    ) -> Any:
        # retry_on_rate_exceed is ignored on purpose: the policy session is the one retry layer.
        response = self._send(method.upper(), url, params=dict(params) if params else None, json=body)
        return response.json() if response.content else None

    def post(self, endpoint: str, payload: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> Any:
        """POST a JSON body to ``<endpoint>.json`` and return the decoded answer."""
        return self._post(endpoint, dict(params) if params else None, dict(payload))

    def get_workspace(self) -> dict[str, Any]:
        """``workspace.json``, or ``org.json`` on servers older than the rename."""
        try:
            return self._get_raw("workspace", {})
        except FatalApiError as exc:
            if exc.status != 404:
                raise
        return self._get_raw("org", {})

    def flow_starts_after(self, after: datetime) -> Any:
        """Flow starts modified at or after ``after`` (the API's ``after=`` filter), newest first."""
        return self._get_query("flow_starts", self._build_params(after=after), TembaFlowStart)


# ---- the hook -----------------------------------------------------------------------------------


class RapidProHook(PolicyHook):
    """Interact with a RapidPro workspace: fields, flows, contacts by URN, flow starts.

    Args:
        rapidpro_conn_id: the connection (default ``rapidpro_default``): ``host`` (+ ``schema``,
            ``port``) or a full URL in ``host``; the API token in ``password``; optional
            ``extra.org``, the workspace name the token must belong to (checked once by
            :meth:`check_workspace`), and ``extra.verify`` (bool or CA bundle path).
        http_policy: timeouts and retries; by default a 429 is retried even for a POST.
    """

    conn_name_attr = "rapidpro_conn_id"
    system = SYSTEM
    settings_class = RapidProSettings
    default_conn_name = "rapidpro_default"
    conn_type = "rapidpro"
    hook_name = "RapidPro"

    def __init__(
        self, rapidpro_conn_id: str = default_conn_name, *, http_policy: HttpPolicy | None = None
    ) -> None:
        super().__init__()
        self.rapidpro_conn_id = rapidpro_conn_id
        self.http_policy = http_policy or _DEFAULT_POLICY
        self._session: PolicySession | None = None
        self._client: _PolicyTembaClient | None = None
        self._fields: dict[str, FieldInfo] | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the connection form: the API token goes in Password."""
        return {
            "hidden_fields": ["login"],
            "relabeling": {"password": "API token", "schema": "Scheme"},
            "placeholders": {"host": "rapidpro.io", "schema": "https", "extra": '{"org": "GP Connect"}'},
        }

    def session_options(self, settings: RapidProSettings) -> dict[str, Any]:
        """Token auth; no base URL (rapidpro-python hands over absolute URLs)."""
        return {
            "base_url": None,
            "headers": {
                "Authorization": f"Token {settings.token}",
                "Accept": "application/json",
                "User-Agent": "crm-sync rapidpro-python",
            },
            "verify": settings.verify,
            "idempotent_patterns": _IDEMPOTENT,
        }

    @property
    def http(self) -> PolicySession:
        """The policy session every request goes through (built once)."""
        return self.policy_session()

    def get_conn(self) -> TembaClient:
        """Return the ``TembaClient`` bound to the policy session (built once, then cached)."""
        if self._client is None:
            self._client = _PolicyTembaClient(self.settings.base_url, self._send)
        return self._client

    @property
    def client(self) -> _PolicyTembaClient:
        """:meth:`get_conn`, typed."""
        client = self.get_conn()
        assert isinstance(client, _PolicyTembaClient)
        return client

    @property
    def api_calls(self) -> dict[str, int]:
        """Requests sent so far: ``total`` and per method (a retry counts once), plus ``retries``."""
        session = self.http
        return {"total": session.calls, **dict(session.calls_by_method), "retries": session.retries}

    def test_connection(self) -> tuple[bool, str]:
        """Check the token against ``workspace.json`` (Airflow's "Test" button)."""
        try:
            workspace = self.check_workspace()
        except SyncError as exc:
            return False, str(exc)
        return True, f"connected to RapidPro workspace {workspace.name!r}"

    # ---- transport --------------------------------------------------------------------------

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send one request; raise the crm_sync error a failure calls for (messages without URNs)."""
        try:
            response = self.http.request(method, url, **kwargs)
        except RetriableApiError as exc:
            raise RetriableApiError(
                scrub(str(exc)), status=exc.status, code=exc.code, retry_after=exc.retry_after
            ) from None
        except ConfigurationError as exc:
            raise ConfigurationError(scrub(str(exc))) from None
        except FatalApiError as exc:
            raise FatalApiError(scrub(str(exc)), status=exc.status, code=exc.code) from None
        _raise_for_response(response)
        return response

    # ---- workspace, fields, flows -----------------------------------------------------------

    def workspace(self) -> WorkspaceInfo:
        """The workspace the token belongs to (``workspace.json``; ``org.json`` on older servers)."""
        body = self.client.get_workspace()
        return WorkspaceInfo(
            uuid=body.get("uuid"),
            name=str(body.get("name") or ""),
            country=body.get("country"),
            timezone=body.get("timezone"),
        )

    def check_workspace(self) -> WorkspaceInfo:
        """Return the workspace, checking it is the one ``extra.org`` names.

        Raises:
            ConfigurationError: the token belongs to another workspace: writing there would put
                contacts in the wrong org.
        """
        workspace = self.workspace()
        expected = self.settings.org
        if expected and workspace.name.strip().lower() != expected.strip().lower():
            raise ConfigurationError(
                f"connection {self.rapidpro_conn_id!r}: the token belongs to workspace "
                f"{workspace.name!r}, not {expected!r} (extra.org)"
            )
        return workspace

    def fields(self, *, refresh: bool = False) -> dict[str, FieldInfo]:
        """The workspace's contact fields by key (fetched once per hook unless ``refresh``)."""
        if self._fields is None or refresh:
            fields: dict[str, FieldInfo] = {}
            for item in self.client.get_fields().all():
                fields[item.key] = FieldInfo(
                    key=item.key, label=str(item.name or item.key), value_type=str(item.type or "text")
                )
            self._fields = fields
        return dict(self._fields)

    def require_fields(self, keys: Iterable[str]) -> dict[str, FieldInfo]:
        """Check every key exists as a contact field (the seed's precondition); return them all.

        Raises:
            ConfigurationError: naming the missing keys (create them in RapidPro first).
        """
        fields = self.fields()
        missing = sorted(set(keys) - set(fields))
        if missing:
            fields = self.fields(refresh=True)
            missing = sorted(set(keys) - set(fields))
        if missing:
            raise ConfigurationError(f"RapidPro workspace lacks contact fields {missing}; create them first")
        return fields

    def flows(self) -> list[FlowInfo]:
        """Every flow of the workspace."""
        return [
            FlowInfo(uuid=f.uuid, name=str(f.name or ""), type=f.type, archived=bool(f.archived))
            for f in self.client.get_flows().all()
        ]

    def flow(self, flow_uuid: str) -> FlowInfo:
        """One flow that can be started.

        Raises:
            ConfigurationError: no such flow, or it is archived (seed 002 raises when the flow
                is missing: nothing can be started without it).
        """
        found = self.client.get_flows(uuid=flow_uuid).first()
        if found is None or found.archived:
            state = "archived" if found is not None else "missing"
            raise ConfigurationError(f"RapidPro flow {flow_uuid} is {state}")
        return FlowInfo(uuid=found.uuid, name=str(found.name or ""), type=found.type, archived=False)

    # ---- contacts ---------------------------------------------------------------------------

    def find_contact(self, urns: Sequence[str]) -> Contact | None:
        """The contact holding one of ``urns``, looked up ``tel`` first, then ``whatsapp``.

        One GET per URN until a contact is found (the API normalises each URN server-side).

        Raises:
            RecordRejected: a URN RapidPro cannot parse (``INVALID_URN``).
        """
        for urn in order_urns(urns):
            found = self.client.get_contacts(urn=urn).first()
            if found is not None:
                return Contact.from_temba(found)
        return None

    def get_contact(self, uuid: str) -> Contact | None:
        """The contact with this UUID (None when it does not exist or was deleted)."""
        found = self.client.get_contacts(uuid=uuid).first()
        return Contact.from_temba(found) if found is not None else None

    def create_contact(
        self, urns: Sequence[str], name: str | None = None, fields: Mapping[str, Any] | None = None
    ) -> Contact:
        """Create a contact with these URNs (and optional name and field values).

        A create has no idempotency key. When its answer is lost (no response, or a 5xx that
        may come after the write), the contact is looked up by its URNs and returned if the
        create did happen; otherwise the error is raised and a later retry creates it once.

        Raises:
            RecordRejected: RapidPro refused it, e.g. ``URN_IN_USE`` (another contact holds a
                URN), ``INVALID_URN``, ``INVALID_FIELD_KEY``.
        """
        if not urns:
            raise ValueError("a contact needs at least one URN")
        payload: dict[str, Any] = {"urns": list(dict.fromkeys(urns))}
        if name is not None:
            payload["name"] = name
        if fields:
            payload["fields"] = jsonable(dict(fields))
        try:
            created = self.client.post("contacts", payload)
        except RetriableApiError as exc:
            if exc.code != READ_ERROR and (exc.status is None or exc.status < 500):
                raise
            existing = self.find_contact(urns)
            if existing is None:
                raise
            log.warning("rapidpro: create answer lost; the contact was created (%s)", existing.uuid)
            return existing
        contact = Contact.from_temba(TembaContact.deserialize(created))
        log.debug("rapidpro: created contact %s", contact.uuid)
        return contact

    def update_contact_urns(self, uuid: str, urns: Sequence[str]) -> Contact:
        """Replace the contact's URNs with ``urns`` (RapidPro replaces the whole list).

        Raises:
            RecordRejected: ``NOT_FOUND`` (deleted in RapidPro), ``URN_IN_USE``, ``INVALID_URN``.
        """
        if not urns:
            raise ValueError("a contact update needs at least one URN")
        try:
            updated = self.client.post("contacts", {"urns": list(dict.fromkeys(urns))}, params={"uuid": uuid})
        except RecordRejected as exc:
            raise RecordRejected(uuid, exc.code, exc.reason, field=exc.field) from None
        except FatalApiError as exc:
            if exc.status == 404:
                raise RecordRejected(uuid, "NOT_FOUND", "the contact does not exist in RapidPro") from None
            raise
        return Contact.from_temba(TembaContact.deserialize(updated))

    # ---- flow starts ------------------------------------------------------------------------

    def start_flow(
        self,
        flow_uuid: str,
        *,
        contacts: Sequence[str],
        params: Mapping[str, Any],
        restart_participants: bool = True,
        op_key: str | None = None,
    ) -> FlowStart:
        """Start ``contacts`` (UUIDs, at most 100) in a flow with ``params``.

        The body carries the params twice: ``params`` (current servers, ``@trigger.params``)
        and ``extra`` (older servers, ``@extra``); a server that knows both uses ``params``.
        With ``op_key`` the params also carry :data:`OP_KEY_PARAM`, so
        :meth:`find_flow_start` can find this exact start after a crash. One call is one
        start: more than 100 contacts must be split by the caller, which keeps one outbox
        entry per start.

        Not retried after it may have reached the server (5xx, lost answer): the caller checks
        :meth:`find_flow_start` before starting again.

        Raises:
            ValueError: no contacts or more than 100.
            ConfigurationError: the flow does not exist or is archived.
            RecordRejected: ``PARAMS_TOO_LARGE`` (over 10,000 characters encoded), ``NOT_FOUND``
                (a contact does not exist), other validation errors.
        """
        unique = list(dict.fromkeys(contacts))
        if not unique or len(unique) > MAX_FLOW_START_CONTACTS:
            raise ValueError(f"a flow start takes 1 to {MAX_FLOW_START_CONTACTS} contacts, got {len(unique)}")
        body_params = jsonable(dict(params))
        if op_key is not None:
            body_params[OP_KEY_PARAM] = op_key
        key = unique[0] if len(unique) == 1 else None
        if len(json.dumps(body_params)) > PARAMS_MAX_CHARS:
            raise RecordRejected(
                key, "PARAMS_TOO_LARGE", f"params exceed {PARAMS_MAX_CHARS} characters encoded"
            )
        payload = {
            "flow": flow_uuid,
            "contacts": unique,
            "restart_participants": restart_participants,
            "params": body_params,
            "extra": body_params,
        }
        try:
            created = self.client.post("flow_starts", payload)
        except RecordRejected as exc:
            if exc.field == "flow":
                raise ConfigurationError(
                    f"RapidPro flow {flow_uuid} cannot be started: {exc.reason}"
                ) from None
            raise RecordRejected(key, exc.code, exc.reason, field=exc.field) from None
        start = FlowStart.from_temba(TembaFlowStart.deserialize(_legacy_names(TembaFlowStart, created)))
        log.debug("rapidpro: started flow %s for %d contact(s): start %s", flow_uuid, len(unique), start.uuid)
        return start

    def find_flow_starts(
        self, flow_uuid: str, *, created_after: datetime, contact_uuid: str | None = None
    ) -> Iterator[FlowStart]:
        """Starts of ``flow_uuid`` created at or after ``created_after``, newest first.

        The API filters starts by modification time only, so this pages through every start
        modified since ``created_after`` (keep the window short: the outbox claim time minus a
        margin for clock skew) and filters flow, creation time and contact here.
        """
        since = created_after if created_after.tzinfo else created_after.replace(tzinfo=UTC)
        for page in self.client.flow_starts_after(since).iterfetches():
            for item in page:
                start = FlowStart.from_temba(item)
                if start.flow_uuid != flow_uuid:
                    continue
                if start.created_on is not None and start.created_on < since:
                    continue
                if contact_uuid is not None and contact_uuid not in start.contacts:
                    continue
                yield start

    def find_flow_start(
        self,
        flow_uuid: str,
        contact_uuid: str,
        *,
        created_after: datetime,
        op_key: str | None = None,
        fingerprint: str | None = None,
    ) -> FlowStart | None:
        """The start of this flow for this contact made by the outbox entry, if it exists.

        A start matches on ``op_key`` (when the start was tagged) or on ``fingerprint``
        (:func:`params_fingerprint` of the params sent). Give at least one.
        """
        if op_key is None and fingerprint is None:
            raise ValueError("give op_key or fingerprint to recognise the start")
        for start in self.find_flow_starts(flow_uuid, created_after=created_after, contact_uuid=contact_uuid):
            if op_key is not None and start.op_key == op_key:
                return start
            if fingerprint is not None and start.fingerprint == fingerprint:
                return start
        return None


def _raise_for_response(response: requests.Response) -> None:
    """Raise the crm_sync error for a RapidPro error response (DRF envelopes)."""
    status = response.status_code
    if status < 400:
        return
    method = response.request.method if response.request is not None else "?"
    where = f"{SYSTEM} {method} {urlsplit(response.url or '').path} -> HTTP {status}"
    try:
        body = response.json()
    except ValueError:
        body = response.text
    errors = rapidpro_errors(body)
    text = scrub("; ".join(f"{f}: {m}" if f else m for f, m in errors) or str(body)[:300])
    if status == 400:
        field_name, message = errors[0] if errors else (None, str(body))
        fields = sorted({f for f, _ in errors if f})
        raise RecordRejected(
            None, error_code(message), text, field=field_name if len(fields) <= 1 else ",".join(fields)
        )
    if status in {401, 403}:
        raise AuthError(
            f"{where}: the API token was refused ({text}); check the connection's password", status=status
        )
    if status in {408, 429} or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise RetriableApiError(
            f"{where}: {text}",
            status=status,
            code="THROTTLED" if status == 429 else None,
            retry_after=retry_after,
        )
    raise FatalApiError(f"{where}: {text}", status=status, code="NOT_FOUND" if status == 404 else None)
