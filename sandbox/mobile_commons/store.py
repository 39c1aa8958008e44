"""In-memory state of the Mobile Commons emulator and the rules its API enforces.

Follows api-contracts.md section 5: profiles keyed by phone number, ``profile_update`` as an
upsert by phone, opt-in paths that subscribe a number once per campaign (existing or former
subscribers are never re-subscribed), campaign subscriptions with ``activated_at`` and
``opted_out_at``, groups, and errors as ``<response success="false"><error id=.../>`` with
HTTP 200. Marked (I) where the contract is inferred.
"""

from __future__ import annotations

import copy
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.emulator import AdminError, EmulatorBackend

DEFAULT_LOGIN = "sandbox@mcommons.example"
DEFAULT_PASSWORD = "sandbox-mobile-commons-password"
DEFAULT_COMPANY = "sandbox-company"
LIMIT_MAX = 1000
ADDRESS_FIELDS = ("street1", "street2", "city", "state", "postal_code", "country")
PROFILE_FIELDS = ("email", "first_name", "last_name", *ADDRESS_FIELDS)
RESERVED_PARAMS = {"phone_number", "opt_in_path_id", "company", *PROFILE_FIELDS}
ACTIVE = "Active Subscriber"
OPTED_OUT = "Opted Out"
NO_SUBSCRIPTIONS = "No Subscriptions"
DEFAULTS: dict[str, Any] = {
    "login": DEFAULT_LOGIN,
    "password": DEFAULT_PASSWORD,
    "max_concurrent": 160,
    "rate_limit": None,
    "rate_window_s": 60.0,
    "hold_ms": 0,
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COLUMN = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]{0,63}$")

ERRORS = {
    0: "Unknown error",
    1: "Invalid campaign id",
    5: "Invalid phone number",
    6: "Invalid group id",
    16: "Invalid query parameters",
    19: "Invalid opt-in path",
    27: "API rate limit exceeded",
    28: "Missing phone_number",
    30: "Invalid profile attributes",
    35: "Invalid date range",
}


class McError(Exception):
    """An API error answered as ``<response success="false"><error id message/>`` (HTTP 200)."""

    def __init__(self, error_id: int, message: str | None = None, *, status: int = 200) -> None:
        super().__init__(message or ERRORS.get(error_id, "Unknown error"))
        self.error_id = error_id
        self.message = message or ERRORS.get(error_id, "Unknown error")
        self.status = status


def now_utc() -> datetime:
    """The current time, whole seconds (the API's timestamps have no fractions)."""
    return datetime.now(UTC).replace(microsecond=0)


def format_time(value: datetime | None) -> str:
    """``2019-06-21 14:49:40 UTC`` as the API writes it."""
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_time(raw: Any, *, what: str) -> datetime | None:
    """Parse an ISO-8601 or API-style timestamp; naive values are UTC."""
    if raw in (None, ""):
        return None
    if isinstance(raw, datetime):
        value = raw
    else:
        text = str(raw).strip().removesuffix(" UTC").replace("Z", "+00:00")
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise McError(35, f"Invalid date range: {what} is not a date") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def normalise_phone(raw: Any) -> str:
    """Digits of a phone number, with the US country code added to 10-digit numbers (I).

    Raises:
        McError: 28 when missing, 5 when it is not a plausible number.
    """
    if raw in (None, ""):
        raise McError(28)
    digits = re.sub(r"\D", "", str(raw))
    if len(digits) == 10:
        digits = "1" + digits
    if not 11 <= len(digits) <= 15 or digits.startswith("0"):
        raise McError(5)
    return digits


@dataclass
class Subscription:
    """One number's subscription to one campaign."""

    id: int
    campaign_id: int
    opt_in_path_id: int | None
    activated_at: datetime
    opted_out_at: datetime | None = None
    opt_in_source: str = "API"

    @property
    def status(self) -> str:
        """``Active`` or ``Opted-Out`` (I)."""
        return "Opted-Out" if self.opted_out_at else "Active"


@dataclass
class Profile:
    """A Mobile Commons profile."""

    id: int
    phone_number: str
    created_at: datetime
    updated_at: datetime
    fields: dict[str, str] = field(default_factory=dict)
    custom: dict[str, str] = field(default_factory=dict)
    subscriptions: list[Subscription] = field(default_factory=list)
    opted_out_at: datetime | None = None
    source_name: str = "API"

    @property
    def status(self) -> str:
        """The profile status the API reports."""
        if self.opted_out_at is not None:
            return OPTED_OUT
        if any(sub.opted_out_at is None for sub in self.subscriptions):
            return ACTIVE
        return NO_SUBSCRIPTIONS


@dataclass
class Campaign:
    """A campaign and its opt-in paths (path id -> name)."""

    id: int
    name: str
    active: bool = True
    paths: dict[int, str] = field(default_factory=dict)


@dataclass
class Data:
    """Everything the emulator stores."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    campaigns: dict[int, Campaign] = field(default_factory=dict)
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_id: int = 1000

    def new_id(self) -> int:
        """A fresh id shared by every kind of object (I)."""
        self.next_id += 1
        return self.next_id


class MobileCommonsBackend(EmulatorBackend):
    """Profiles, campaigns, groups, credentials, concurrency and rate limits."""

    name = "mobile_commons"

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.data = Data()
        self.config: dict[str, Any] = {}
        self.in_flight = 0
        self.peak_in_flight = 0
        self._calls: deque[float] = deque()
        self.reset()

    # ---- admission ----------------------------------------------------------------------------

    def admit(self) -> None:
        """Count one call in flight; error 27 over the concurrency or rate limit.

        Raises:
            McError: 27 API rate limit exceeded (HTTP 200 envelope, api-contracts.md section 5).
        """
        with self.lock:
            if self.in_flight >= int(self.config["max_concurrent"]):
                raise McError(27, "API rate limit exceeded: too many concurrent requests")
            limit = self.config["rate_limit"]
            if limit is not None:
                now = time.monotonic()
                while self._calls and self._calls[0] <= now - float(self.config["rate_window_s"]):
                    self._calls.popleft()
                if len(self._calls) >= int(limit):
                    raise McError(27)
                self._calls.append(now)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def release(self) -> None:
        """One call finished."""
        with self.lock:
            self.in_flight -= 1

    def check_credentials(self, user: str | None, password: str | None) -> bool:
        """Whether Basic credentials match the configured login."""
        return user == self.config["login"] and password == self.config["password"]

    # ---- EmulatorBackend ----------------------------------------------------------------------

    def reset(self) -> None:
        """No data, default knobs."""
        with self.lock:
            self.data = Data()
            self.config = dict(DEFAULTS)
            self._calls.clear()
            self.peak_in_flight = 0

    def configure(self, knobs: dict[str, Any]) -> dict[str, Any]:
        """Set knobs: credentials, ``max_concurrent``, ``rate_limit`` per ``rate_window_s``, ``hold_ms``.

        ``hold_ms`` keeps every admitted call in flight that long (a slow server), so clients
        can be tested against the concurrency limit.
        """
        with self.lock:
            unknown = set(knobs) - set(DEFAULTS)
            if unknown:
                raise AdminError(
                    f"unknown mobile_commons knobs: {sorted(unknown)}; known: {sorted(DEFAULTS)}"
                )
            for name in ("max_concurrent", "rate_limit"):
                value = knobs.get(name, 1)
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                    raise AdminError(f"{name} must be a positive integer")
            self.config.update(knobs)
            self._calls.clear()
            return {**self.config, "password": "***", "peak_in_flight": self.peak_in_flight}

    def daily_limit_response(self) -> tuple[int, Any, dict[str, str]]:
        """Mobile Commons answers throttling with error 27 in an HTTP 200 envelope."""
        from sandbox.mobile_commons.documents import error_document

        return 200, error_document(McError(27)), {"content-type": "text/xml; charset=utf-8"}

    def seed(self, body: dict[str, Any]) -> dict[str, Any]:
        """Load ``campaigns``, ``groups`` and ``profiles``; all or nothing."""
        kinds = ("campaigns", "groups", "profiles")
        unknown = set(body) - set(kinds)
        if unknown:
            raise AdminError(f"unknown seed keys: {sorted(unknown)}; known: {list(kinds)}")
        with self.lock:
            snapshot = copy.deepcopy(self.data)
            try:
                created = {
                    "campaigns": [self._seed_campaign(raw) for raw in body.get("campaigns") or []],
                    "groups": [self._seed_group(raw) for raw in body.get("groups") or []],
                    "profiles": [self._seed_profile(raw) for raw in body.get("profiles") or []],
                }
            except (McError, KeyError, TypeError, ValueError) as exc:
                self.data = snapshot
                raise AdminError(f"invalid seed: {exc}") from exc
            return created

    def state(self, params: dict[str, str]) -> Any:
        """``?kind=profiles`` (optionally ``&phone_number=``), ``campaigns`` or ``groups``; else counts."""
        with self.lock:
            kind = params.get("kind")
            if kind == "profiles":
                wanted = params.get("phone_number")
                phone = normalise_phone(wanted) if wanted else None
                return [
                    profile_view(p)
                    for p in self.data.profiles.values()
                    if phone is None or p.phone_number == phone
                ]
            if kind == "campaigns":
                return [
                    {"id": c.id, "name": c.name, "paths": {str(k): v for k, v in c.paths.items()}}
                    for c in self.data.campaigns.values()
                ]
            if kind == "groups":
                return [{**g, "members": sorted(g["members"])} for g in self.data.groups.values()]
            return {
                "counts": {
                    "profiles": len(self.data.profiles),
                    "campaigns": len(self.data.campaigns),
                    "groups": len(self.data.groups),
                },
                "peak_in_flight": self.peak_in_flight,
            }

    # ---- seed helpers -------------------------------------------------------------------------

    def _seed_campaign(self, raw: dict[str, Any]) -> dict[str, Any]:
        campaign = Campaign(
            id=int(raw.get("id") or self.data.new_id()),
            name=str(raw["name"]),
            active=bool(raw.get("active", True)),
        )
        for path in raw.get("opt_in_paths") or []:
            campaign.paths[int(path.get("id") or self.data.new_id())] = str(path.get("name") or "Opt-in path")
        self.data.campaigns[campaign.id] = campaign
        return {"id": campaign.id, "opt_in_paths": sorted(campaign.paths)}

    def _seed_group(self, raw: dict[str, Any]) -> dict[str, Any]:
        group_id = int(raw.get("id") or self.data.new_id())
        members = {normalise_phone(p) for p in raw.get("members") or []}
        self.data.groups[group_id] = {"id": group_id, "name": str(raw["name"]), "members": members}
        return {"id": group_id}

    def _seed_profile(self, raw: dict[str, Any]) -> dict[str, Any]:
        at = parse_time(raw.get("updated_at"), what="updated_at") or now_utc()
        profile = self._upsert(raw, at=at)
        for sub in raw.get("subscriptions") or []:
            path_id = sub.get("opt_in_path_id")
            campaign_id = int(sub.get("campaign_id") or self._campaign_of(int(path_id)).id)
            profile.subscriptions.append(
                Subscription(
                    id=self.data.new_id(),
                    campaign_id=campaign_id,
                    opt_in_path_id=int(path_id) if path_id else None,
                    activated_at=parse_time(sub.get("activated_at"), what="activated_at") or at,
                    opted_out_at=parse_time(sub.get("opted_out_at"), what="opted_out_at"),
                )
            )
        profile.opted_out_at = parse_time(raw.get("opted_out_at"), what="opted_out_at")
        return {"id": profile.id, "phone_number": profile.phone_number}

    # ---- API verbs ----------------------------------------------------------------------------

    def _campaign_of(self, path_id: int) -> Campaign:
        for campaign in self.data.campaigns.values():
            if path_id in campaign.paths:
                return campaign
        raise McError(19)

    def _upsert(self, params: dict[str, Any], *, at: datetime) -> Profile:
        phone = normalise_phone(params.get("phone_number"))
        email = params.get("email")
        if email not in (None, "") and not _EMAIL.match(str(email)):
            raise McError(30, "Invalid profile attributes: email")
        profile = self.data.profiles.get(phone)
        if profile is None:
            profile = Profile(id=self.data.new_id(), phone_number=phone, created_at=at, updated_at=at)
            self.data.profiles[phone] = profile
        for name in PROFILE_FIELDS:
            if params.get(name) not in (None, ""):
                profile.fields[name] = str(params[name])
        for name, value in (params.get("custom_columns") or {}).items():
            profile.custom[str(name)] = str(value)
        profile.updated_at = at
        return profile

    def profile_update(self, params: dict[str, Any]) -> Profile:
        """Create or update by phone; subscribe through ``opt_in_path_id`` once per campaign.

        Every parameter that is not a standard one is a custom column (I); a name that could
        not be a column is error 30.
        """
        with self.lock:
            custom = {k: v for k, v in params.items() if k not in RESERVED_PARAMS}
            for name in custom:
                if not _COLUMN.match(name):
                    raise McError(30, f"Invalid profile attributes: {name}")
            path_raw = params.get("opt_in_path_id")
            campaign = None
            if path_raw not in (None, ""):
                try:
                    path_id = int(path_raw)
                except ValueError:
                    raise McError(19) from None
                campaign = self._campaign_of(path_id)
            normalise_phone(params.get("phone_number"))  # validate before any change
            at = now_utc()
            profile = self._upsert({**params, "custom_columns": custom}, at=at)
            if campaign is not None:
                self._subscribe(profile, campaign, path_id, at)
            return profile

    def _subscribe(self, profile: Profile, campaign: Campaign, path_id: int, at: datetime) -> None:
        # A number can be opted in via the API once per campaign; existing or former
        # subscribers, and numbers that opted out, are left alone (api-contracts.md section 5).
        if profile.opted_out_at is not None:
            return
        if any(sub.campaign_id == campaign.id for sub in profile.subscriptions):
            return
        profile.subscriptions.append(
            Subscription(
                id=self.data.new_id(), campaign_id=campaign.id, opt_in_path_id=path_id, activated_at=at
            )
        )

    def opt_out(self, phone_raw: Any, campaign_id: Any = None) -> Profile:
        """A STOP: opt the number out of one campaign, or of all (profile opted out)."""
        with self.lock:
            phone = normalise_phone(phone_raw)
            profile = self.data.profiles.get(phone)
            if profile is None:
                raise McError(5)
            at = now_utc()
            for sub in profile.subscriptions:
                if sub.opted_out_at is None and (
                    campaign_id in (None, "") or sub.campaign_id == int(campaign_id)
                ):
                    sub.opted_out_at = at
            if campaign_id in (None, "") or all(sub.opted_out_at for sub in profile.subscriptions):
                profile.opted_out_at = at
            profile.updated_at = at
            return profile

    def get_profile(self, phone_raw: Any) -> Profile:
        """One profile by phone; error 5 when unknown."""
        with self.lock:
            profile = self.data.profiles.get(normalise_phone(phone_raw))
            if profile is None:
                raise McError(5, "Invalid phone number: profile not found")
            return copy.deepcopy(profile)

    def list_profiles(self, params: dict[str, Any]) -> tuple[list[Profile], int]:
        """A page of profiles (by id), filtered by ``phone_number`` list and the updated-at window."""
        page, limit = paging(params)
        start = parse_time(params.get("from"), what="from")
        end = parse_time(params.get("to"), what="to")
        if start and end and start > end:
            raise McError(35)
        phones = None
        if params.get("phone_number"):
            phones = set()
            for raw in str(params["phone_number"]).split(","):
                try:
                    phones.add(normalise_phone(raw))
                except McError:
                    continue  # the real API skips numbers it cannot read in a list (I)
        with self.lock:
            rows = sorted(self.data.profiles.values(), key=lambda p: p.id)
            rows = [
                p
                for p in rows
                if (phones is None or p.phone_number in phones)
                and (start is None or p.updated_at >= start)
                and (end is None or p.updated_at < end)
            ]
            return copy.deepcopy(rows[(page - 1) * limit : page * limit]), page

    def campaigns(self) -> list[Campaign]:
        """Every campaign with its opt-in paths."""
        with self.lock:
            return [copy.deepcopy(c) for c in sorted(self.data.campaigns.values(), key=lambda c: c.id)]

    def campaign_subscribers(self, params: dict[str, Any]) -> tuple[list[tuple[str, Subscription]], int]:
        """Subscriptions of one campaign activated or opted out in the window."""
        raw_id = params.get("campaign_id")
        if raw_id in (None, "") or not str(raw_id).isdigit() or int(raw_id) not in self.data.campaigns:
            raise McError(1)
        page, limit = paging(params)
        start = parse_time(params.get("from"), what="from")
        end = parse_time(params.get("to"), what="to")

        def inside(value: datetime | None) -> bool:
            return value is not None and (start is None or value >= start) and (end is None or value < end)

        with self.lock:
            rows = [
                (p.phone_number, copy.deepcopy(sub))
                for p in sorted(self.data.profiles.values(), key=lambda p: p.id)
                for sub in p.subscriptions
                if sub.campaign_id == int(raw_id)
                and ((start is None and end is None) or inside(sub.activated_at) or inside(sub.opted_out_at))
            ]
            return rows[(page - 1) * limit : page * limit], page

    def groups(self) -> list[dict[str, Any]]:
        """Every group."""
        with self.lock:
            return [dict(g) for g in sorted(self.data.groups.values(), key=lambda g: g["id"])]


def paging(params: dict[str, Any]) -> tuple[int, int]:
    """``page`` (from 1) and ``limit`` (at most 1000); error 16 otherwise."""
    try:
        page = int(params.get("page") or 1)
        limit = int(params.get("limit") or LIMIT_MAX)
    except ValueError:
        raise McError(16) from None
    if page < 1 or not 1 <= limit <= LIMIT_MAX:
        raise McError(16, f"Invalid query parameters: page >= 1, limit 1..{LIMIT_MAX}")
    return page, limit


def profile_view(profile: Profile) -> dict[str, Any]:
    """JSON view of a profile for ``/_sandbox/state``."""
    return {
        "id": profile.id,
        "phone_number": profile.phone_number,
        "status": profile.status,
        **profile.fields,
        "custom_columns": dict(profile.custom),
        "opted_out_at": format_time(profile.opted_out_at) or None,
        "updated_at": format_time(profile.updated_at),
        "subscriptions": [
            {
                "campaign_id": s.campaign_id,
                "opt_in_path_id": s.opt_in_path_id,
                "activated_at": format_time(s.activated_at),
                "opted_out_at": format_time(s.opted_out_at) or None,
            }
            for s in profile.subscriptions
        ],
    }
