"""MobileCommonsHook: Mobile Commons (Upland) profiles, campaigns and subscribers as typed results.

The API answers XML ``<response success="true|false">`` with HTTP 200 even for errors
(api-contracts.md section 5), so every answer is decoded here: error 27 (rate limit) is
retried with backoff and then raised as :class:`RetriableApiError`; per-record errors (5
invalid phone, 19 invalid opt-in path, 28 missing phone, 30 invalid attributes, ...) become
:class:`RecordRejected` with code ``MC_<id>``; other envelopes are fatal. XML is parsed with
entities, DTDs and network access disabled. A semaphore bounds calls in flight under the
vendor's 160-concurrent-call limit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook
from lxml import etree

from crm_sync.exceptions import ConfigurationError, FatalApiError, RecordRejected, RetriableApiError
from crm_sync.http import HttpPolicy, PolicySession, build_session, raise_for_api_status

__all__ = [
    "RATE_LIMIT_ERROR",
    "Campaign",
    "MobileCommonsHook",
    "Profile",
    "Subscriber",
    "e164",
    "parse_response",
]

log = logging.getLogger(__name__)

SYSTEM = "mobile_commons"
PRODUCTION_HOST = "secure.mcommons.com"
RATE_LIMIT_ERROR = 27
#: Errors about the record sent, not the request: the record is rejected, the batch goes on.
RECORD_ERRORS = frozenset({5, 14, 19, 28, 29, 30})
PAGE_LIMIT = 1000
PHONES_PER_LOOKUP = 100

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
)


def e164(raw: str | None) -> str:
    """The API's phone (digits with the country code, ``14155550100``) as E.164 (``+14155550100``)."""
    digits = "".join(ch for ch in (raw or "") if ch.isdigit())
    return f"+{digits}" if digits else ""


def parse_time(raw: str | None) -> datetime | None:
    """``2019-06-21 14:49:40 UTC`` (or ISO 8601) as an aware datetime."""
    if not raw:
        return None
    text = raw.strip().removesuffix(" UTC").replace("Z", "+00:00")
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def parse_response(content: bytes, *, where: str) -> etree._Element:
    """The ``<response>`` root of a success envelope.

    Raises:
        RetriableApiError: error 27 (``code="MC_27"``) or an unreadable body.
        RecordRejected: a per-record error (key None; the caller names the record).
        FatalApiError: any other error envelope.
    """
    try:
        root = etree.fromstring(content, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise RetriableApiError(f"{where}: the answer is not XML ({exc.msg})", code="BAD_XML") from None
    if root.tag != "response":
        raise FatalApiError(f"{where}: unexpected root <{root.tag}>", code="BAD_XML")
    if root.get("success") == "true":
        return root
    error = root.find("error")
    error_id = int(error.get("id", "0")) if error is not None and error.get("id", "").isdigit() else 0
    message = error.get("message", "") if error is not None else ""
    code = f"MC_{error_id}"
    if error_id == RATE_LIMIT_ERROR:
        raise RetriableApiError(f"{where}: error 27 {message}", code=code)
    if error_id in RECORD_ERRORS:
        raise RecordRejected(None, code, f"Mobile Commons error {error_id}: {message}")
    raise FatalApiError(f"{where}: error {error_id} {message}", code=code)


def _text(element: etree._Element, tag: str) -> str | None:
    found = element.find(tag)
    text = found.text if found is not None else None
    return text.strip() if text and text.strip() else None


@dataclass(frozen=True)
class Subscription:
    """One campaign subscription of a profile."""

    campaign_id: int
    opt_in_path_id: int | None
    activated_at: datetime | None
    opted_out_at: datetime | None


@dataclass(frozen=True)
class Profile:
    """A Mobile Commons profile; personal fields are kept out of ``repr``."""

    id: str
    phone: str
    status: str
    updated_at: datetime | None
    opted_out_at: datetime | None
    fields: dict[str, str] = field(default_factory=dict, repr=False)
    custom: dict[str, str] = field(default_factory=dict, repr=False)
    subscriptions: tuple[Subscription, ...] = ()

    @property
    def opted_out(self) -> bool:
        """Whether the number opted out (of everything)."""
        return self.opted_out_at is not None or self.status.lower().startswith("opted out")

    @property
    def subscribed(self) -> bool:
        """Whether the number has an active subscription."""
        return not self.opted_out and any(s.opted_out_at is None for s in self.subscriptions)

    @classmethod
    def from_xml(cls, element: etree._Element) -> Profile:
        """Parse one ``<profile id>``."""
        fields = {
            name: value
            for name in ("first_name", "last_name", "email")
            if (value := _text(element, name)) is not None
        }
        address = element.find("address")
        if address is not None:
            for child in address:
                if child.text and child.text.strip():
                    fields[str(child.tag)] = child.text.strip()
        custom = {
            str(c.get("name")): (c.text or "").strip()
            for c in element.iterfind("custom_columns/custom_column")
        }
        subs = tuple(
            Subscription(
                campaign_id=int(s.get("campaign_id") or 0),
                opt_in_path_id=int(s.get("opt_in_path_id")) if s.get("opt_in_path_id") else None,
                activated_at=parse_time(s.get("activated_at")),
                opted_out_at=parse_time(s.get("opted_out_at")),
            )
            for s in element.iterfind("subscriptions/subscription")
        )
        return cls(
            id=str(element.get("id")),
            phone=e164(_text(element, "phone_number")),
            status=_text(element, "status") or "",
            updated_at=parse_time(_text(element, "updated_at")),
            opted_out_at=parse_time(_text(element, "opted_out_at")),
            fields=fields,
            custom=custom,
            subscriptions=subs,
        )


@dataclass(frozen=True)
class Campaign:
    """A campaign and its opt-in paths (id -> name)."""

    id: int
    name: str
    active: bool
    opt_in_paths: dict[int, str]


@dataclass(frozen=True)
class Subscriber:
    """A row of ``campaign_subscribers``."""

    phone: str
    campaign_id: int
    activated_at: datetime | None
    opted_out_at: datetime | None


class MobileCommonsHook(BaseHook):
    """Interact with the Mobile Commons REST API.

    Args:
        mobile_commons_conn_id: the connection (default ``mobile_commons_default``): ``login``
            and ``password`` for Basic auth, ``host`` (+ ``schema``, ``port``) or none for
            ``secure.mcommons.com``, ``extra.company`` for multi-company logins,
            ``extra.max_concurrent`` (default 20, never above 160).
        http_policy: timeouts and retries; a POST is retried on 429/5xx only when unsent.
        rate_limit_retries: retries of an error-27 answer, with the policy's backoff.
    """

    conn_name_attr = "mobile_commons_conn_id"
    default_conn_name = "mobile_commons_default"
    conn_type = "mobile_commons"
    hook_name = "Mobile Commons"

    def __init__(
        self,
        mobile_commons_conn_id: str = default_conn_name,
        *,
        http_policy: HttpPolicy | None = None,
        rate_limit_retries: int = 5,
    ) -> None:
        super().__init__()
        self.mobile_commons_conn_id = mobile_commons_conn_id
        self.http_policy = http_policy or HttpPolicy()
        self.rate_limit_retries = rate_limit_retries
        self.rate_limited = 0

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Connection form: login e-mail and password; host only for proxies or the sandbox."""
        return {
            "hidden_fields": [],
            "relabeling": {"login": "Login e-mail", "host": "Host (empty: secure.mcommons.com)"},
            "placeholders": {"extra": '{"company": "<company key>", "max_concurrent": 20}'},
        }

    @cached_property
    def _settings(self) -> tuple[str, tuple[str, str], dict[str, Any]]:
        conn = self.get_connection(self.mobile_commons_conn_id)
        if not conn.login or not conn.password:
            raise ConfigurationError(f"connection {conn.conn_id!r}: set login and password (Basic auth)")
        extra = conn.extra_dejson or {}
        host = (conn.host or PRODUCTION_HOST).rstrip("/")
        if "://" not in host:
            port = f":{conn.port}" if conn.port else ""
            host = f"{conn.schema or 'https'}://{host}{port}"
        return f"{host}/api", (conn.login, conn.password), extra

    @cached_property
    def session(self) -> PolicySession:
        """The policy session (Basic auth) every call goes through."""
        base_url, auth, _ = self._settings
        # One pooled connection per call in flight.
        pool = max(self.max_concurrent, requests.adapters.DEFAULT_POOLSIZE)
        return build_session(self.http_policy, system=SYSTEM, base_url=base_url, auth=auth, pool_maxsize=pool)

    @cached_property
    def _slots(self) -> threading.BoundedSemaphore:
        limit = int(self._settings[2].get("max_concurrent", 20))
        if not 1 <= limit <= 160:
            raise ConfigurationError("mobile_commons extra.max_concurrent must be 1..160 (the API's limit)")
        return threading.BoundedSemaphore(limit)

    @property
    def max_concurrent(self) -> int:
        """Calls allowed in flight at once."""
        return int(self._settings[2].get("max_concurrent", 20))

    @property
    def calls(self) -> int:
        """HTTP requests sent so far."""
        return self.session.calls if "session" in self.__dict__ else 0

    def _call(self, method: str, endpoint: str, params: Mapping[str, Any]) -> etree._Element:
        """One API call: bounded concurrency, error-27 backoff, envelope decoding."""
        company = self._settings[2].get("company")
        data = {k: v for k, v in params.items() if v is not None}
        if company:
            data["company"] = company
        where = f"{SYSTEM} {method} {endpoint}"
        for attempt in range(self.rate_limit_retries + 1):
            with self._slots:
                kwargs: dict[str, Any] = {"params": data} if method == "GET" else {"data": data}
                # A profile_update is an upsert by phone, so resending it cannot duplicate.
                response = self.session.request(method, endpoint, idempotent=True, **kwargs)
            raise_for_api_status(response, system=SYSTEM)
            try:
                return parse_response(response.content, where=where)
            except RetriableApiError as exc:
                if exc.code != f"MC_{RATE_LIMIT_ERROR}" or attempt == self.rate_limit_retries:
                    raise
                self.rate_limited += 1
                delay = self.http_policy.backoff(attempt + 1)
                log.warning("%s: rate limit (error 27); retry %d in %.2fs", where, attempt + 1, delay)
                self.http_policy.sleep(delay)
        raise AssertionError("unreachable")

    # ---- verbs ------------------------------------------------------------------------------

    def profile_update(
        self,
        phone: str,
        fields: Mapping[str, Any],
        *,
        opt_in_path_id: int | None = None,
        key: str | None = None,
    ) -> Profile:
        """Create or update the profile of ``phone`` (an upsert by phone).

        Args:
            phone: the number (E.164).
            fields: standard fields (``first_name``, ``email``, ``street1``...) and custom
                columns by name; empty values are not sent, so they never blank the profile.
            opt_in_path_id: subscribe through this path (the API does it once per campaign and
                never for a number that opted out).
            key: names the record in a rejection.

        Raises:
            RecordRejected: the API refused the record (``MC_5``, ``MC_19``, ``MC_30``...).
        """
        params = {k: v for k, v in fields.items() if v not in (None, "")}
        params["phone_number"] = phone
        if opt_in_path_id is not None:
            params["opt_in_path_id"] = opt_in_path_id
        try:
            root = self._call("POST", "profile_update", params)
        except RecordRejected as exc:
            raise RecordRejected(key, exc.code, exc.reason) from None
        element = root.find("profile")
        if element is None:
            raise FatalApiError(f"{SYSTEM} profile_update: no <profile> in the answer", code="BAD_XML")
        return Profile.from_xml(element)

    def profiles_by_phone(self, phones: Sequence[str]) -> dict[str, Profile]:
        """The existing profiles of ``phones`` (E.164), in lookups of 100 numbers per call."""
        found: dict[str, Profile] = {}
        for start in range(0, len(phones), PHONES_PER_LOOKUP):
            batch = phones[start : start + PHONES_PER_LOOKUP]
            params = {
                "phone_number": ",".join(p.lstrip("+") for p in batch),
                "include_custom_columns": 1,
                "include_subscriptions": 1,
                "limit": PAGE_LIMIT,
            }
            for profile in self._profiles_page(params):
                found[profile.phone] = profile
        return found

    def _profiles_page(self, params: Mapping[str, Any]) -> list[Profile]:
        root = self._call("GET", "profiles", params)
        return [Profile.from_xml(p) for p in root.iterfind("profiles/profile")]

    def iter_profiles(self, start: datetime | None, end: datetime | None) -> Iterator[Profile]:
        """Profiles updated in ``[start, end)``, page by page until ``num="0"``."""
        page = 1
        while True:
            params = {
                "from": start.isoformat() if start else None,
                "to": end.isoformat() if end else None,
                "include_custom_columns": 1,
                "include_subscriptions": 1,
                "limit": PAGE_LIMIT,
                "page": page,
            }
            profiles = self._profiles_page(params)
            if not profiles:
                return
            yield from profiles
            page += 1

    def campaigns(self) -> list[Campaign]:
        """Every campaign with its opt-in paths."""
        root = self._call("GET", "campaigns", {"include_opt_in_paths": 1})
        return [
            Campaign(
                id=int(c.get("id")),
                name=_text(c, "name") or "",
                active=c.get("active", "true") == "true",
                opt_in_paths={
                    int(p.get("id")): _text(p, "name") or "" for p in c.iterfind("opt_in_paths/opt_in_path")
                },
            )
            for c in root.iterfind("campaigns/campaign")
        ]

    def iter_campaign_subscribers(
        self, campaign_id: int, start: datetime | None, end: datetime | None
    ) -> Iterator[Subscriber]:
        """Subscriptions of a campaign activated or opted out in ``[start, end)``."""
        page = 1
        while True:
            params = {
                "campaign_id": campaign_id,
                "from": start.isoformat() if start else None,
                "to": end.isoformat() if end else None,
                "limit": PAGE_LIMIT,
                "page": page,
            }
            rows = list(self._call("GET", "campaign_subscribers", params).iterfind("subscriptions/sub"))
            if not rows:
                return
            for row in rows:
                yield Subscriber(
                    phone=e164(_text(row, "phone_number")),
                    campaign_id=campaign_id,
                    activated_at=parse_time(_text(row, "activated_at")),
                    opted_out_at=parse_time(_text(row, "opted_out_at")),
                )
            page += 1

    def groups(self) -> dict[int, str]:
        """Group id -> name."""
        root = self._call("GET", "groups", {})
        return {int(g.get("id")): _text(g, "name") or "" for g in root.iterfind("groups/group")}

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection test: list campaigns."""
        try:
            count = len(self.campaigns())
        except (FatalApiError, RetriableApiError, ConfigurationError, requests.RequestException) as exc:
            return False, str(exc)
        return True, f"connected: {count} campaigns"
