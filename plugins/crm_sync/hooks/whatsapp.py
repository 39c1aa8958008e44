"""WhatsAppHook: which phone numbers are on WhatsApp, through the contacts check.

Speaks the WhatsApp Business On-Premises API and Turn.io, which serves the same ``/v1`` paths
(api-contracts.md section 4.2): ``POST /v1/contacts {"blocking": "wait", "contacts": [...]}``.
Two ways to authenticate, chosen by the connection:

- On-Premises: ``login``/``password`` are exchanged at ``POST /v1/users/login`` (HTTP Basic)
  for a Bearer token that lasts 7 days; it is cached, renewed a minute before it expires,
  and renewed once on a 401 (tokens are also revoked server-side).
- Turn: a long-lived token in ``password`` with ``extra.auth = "token"``; a 401 is final.

Rate limit: Turn allows 60 calls per 60 s per number by default and announces the window in
``X-Ratelimit-Limit/Remaining/Reset`` (Reset in epoch seconds; no ``Retry-After``). The hook
reads those headers from every answer, waits for the reset before a call that would exceed the
window, and on a 429 waits for the reset and tries again. The HTTP policy does not retry 429
here, so there is one retry layer for it; it still retries 5xx and connection errors (a check
changes nothing server-side, so the POST is marked idempotent).

Phone numbers are personal data: they are never logged or put in an error message.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from crm_sync.exceptions import AuthError, ConfigurationError, FatalApiError, RetriableApiError
from crm_sync.hooks.policy_hook import PolicyHook
from crm_sync.http import HttpPolicy, PolicySession, RateLimitInfo, parse_rate_limit_headers
from crm_sync.redaction import safe_excerpt

__all__ = ["MAX_BATCH", "STATUSES", "WhatsAppContact", "WhatsAppHook", "WhatsAppSettings", "whatsapp_errors"]

log = logging.getLogger(__name__)

SYSTEM = "whatsapp"
#: Statuses the check answers (``processing`` until a ``no_wait`` lookup finishes).
STATUSES = ("valid", "invalid", "processing", "failed")
#: Most numbers sent in one check. No limit is documented; the sandbox enforces this one and
#: 500 (the default batch) keeps each call well under Turn's timeouts.
MAX_BATCH = 1000
# Renew a login token this long before it expires, so it never expires mid-call.
_RENEW_MARGIN = timedelta(seconds=60)
# Added to a wait for the rate window, since X-Ratelimit-Reset has a one-second resolution.
_RESET_MARGIN_S = 0.05
_DEFAULT_POLICY = HttpPolicy(retry_statuses=frozenset({500, 502, 503, 504}))


def whatsapp_errors(body: Any) -> str:
    """``code title: details`` of an ``{"errors": [...]}`` body (empty when there is none)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("errors"), list):
        return ""
    parts = []
    for error in body["errors"]:
        if isinstance(error, Mapping):
            parts.append(f"{error.get('code')} {error.get('title')}: {error.get('details')}")
    return safe_excerpt("; ".join(parts))


@dataclass(frozen=True)
class WhatsAppContact:
    """The check's answer for one number, keyed by the ``input`` as sent."""

    input: str
    status: str
    wa_id: str | None = None

    @property
    def on_whatsapp(self) -> bool:
        """True when the number has a WhatsApp account (``valid`` with a ``wa_id``)."""
        return self.status == "valid" and bool(self.wa_id)

    @property
    def urn(self) -> str | None:
        """The RapidPro URN ``whatsapp:<wa_id>``, when on WhatsApp."""
        return f"whatsapp:{self.wa_id}" if self.on_whatsapp else None


@dataclass(frozen=True)
class WhatsAppSettings:
    """What the hook reads from the connection."""

    base_url: str
    auth: str
    login: str | None
    secret: str = field(repr=False)
    verify: bool | str = True

    @classmethod
    def from_connection(cls, conn: Any) -> WhatsAppSettings:
        """Read ``host``/``schema``/``port`` (or a URL in ``host``), credentials and ``extra.auth``.

        ``extra.auth`` is ``"login"`` (On-Premises: login + password) or ``"token"`` (Turn:
        the token in password); without it, a connection with a login uses ``login``.

        Raises:
            ConfigurationError: missing host or credentials, or an unknown ``auth``.
        """
        extra = conn.extra_dejson or {}
        host = (conn.host or "").strip().rstrip("/")
        if not host:
            raise ConfigurationError(f"connection {conn.conn_id!r}: set host (e.g. whatsapp.turn.io)")
        if "://" in host:
            base_url = host
        else:
            scheme = (conn.schema or "https").strip().lower()
            base_url = f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}"
        auth = str(extra.get("auth") or ("login" if conn.login else "token")).lower()
        if auth not in {"login", "token"}:
            raise ConfigurationError(f"connection {conn.conn_id!r}: extra.auth must be 'login' or 'token'")
        if not conn.password or (auth == "login" and not conn.login):
            what = "login and password" if auth == "login" else "the API token in password"
            raise ConfigurationError(f"connection {conn.conn_id!r}: set {what}")
        return cls(
            base_url=base_url,
            auth=auth,
            login=conn.login or None,
            secret=conn.password,
            verify=extra.get("verify", True),
        )


class WhatsAppHook(PolicyHook):
    """Check which phone numbers are on WhatsApp, in batches, within the rate limit.

    Args:
        whatsapp_conn_id: the connection (default ``whatsapp_default``), see the module docstring.
        batch_size: numbers per call (1 to :data:`MAX_BATCH`, default 500).
        http_policy: timeouts and retries of 5xx/connection errors (429 is handled here).
        max_rate_wait: the longest wait (s) for the rate window; beyond it a
            :class:`RetriableApiError` with ``retry_after`` lets the caller park the work.
        max_rate_retries: 429 answers tolerated per call before giving up.
    """

    conn_name_attr = "whatsapp_conn_id"
    system = SYSTEM
    settings_class = WhatsAppSettings
    default_conn_name = "whatsapp_default"
    conn_type = "whatsapp"
    hook_name = "WhatsApp (Turn / On-Premises)"

    def __init__(
        self,
        whatsapp_conn_id: str = default_conn_name,
        *,
        batch_size: int = 500,
        http_policy: HttpPolicy | None = None,
        max_rate_wait: float = 120.0,
        max_rate_retries: int = 5,
    ) -> None:
        super().__init__()
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH}, got {batch_size}")
        self.whatsapp_conn_id = whatsapp_conn_id
        self.batch_size = batch_size
        self.http_policy = http_policy or _DEFAULT_POLICY
        self.max_rate_wait = max_rate_wait
        self.max_rate_retries = max_rate_retries
        self._session: PolicySession | None = None
        self._token: str | None = None
        self._token_expires: datetime | None = None
        self.rate_limit: RateLimitInfo | None = None
        self.logins = 0

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the connection form for both ways of authenticating."""
        return {
            "hidden_fields": [],
            "relabeling": {"login": "User (On-Premises)", "password": "Password or Turn token"},
            "placeholders": {"host": "whatsapp.turn.io", "schema": "https", "extra": '{"auth": "token"}'},
        }

    def session_options(self, settings: WhatsAppSettings) -> dict[str, Any]:
        """Auth is per request (a bearer token); the rate-limit headers are read."""
        return {
            "headers": {"Accept": "application/json"},
            "verify": settings.verify,
            "on_response": self._read_rate_limit,
        }

    @property
    def api_calls(self) -> dict[str, int]:
        """Requests sent so far: ``total`` and per method (a retry counts once), plus ``retries``."""
        session = self.get_conn()
        return {"total": session.calls, **dict(session.calls_by_method), "retries": session.retries}

    def test_connection(self) -> tuple[bool, str]:
        """Log in (On-Premises) or check one number (Turn token) for Airflow's "Test" button."""
        try:
            if self.settings.auth == "login":
                self.login()
            else:
                self.check_contacts(["+10000000000"])
        except (AuthError, FatalApiError, RetriableApiError, ConfigurationError) as exc:
            return False, str(exc)
        return True, f"authenticated against {self.settings.base_url}"

    # ---- auth --------------------------------------------------------------------------------

    def login(self) -> str:
        """Exchange login and password for a Bearer token (``POST /v1/users/login``) and cache it.

        Raises:
            AuthError: the credentials were refused.
        """
        settings = self.settings
        if settings.auth != "login":
            return settings.secret
        response = self._limited_post("v1/users/login", auth=(settings.login or "", settings.secret))
        body = _raise_for_response(response, what="login")
        try:
            user = body["users"][0]
            token = str(user["token"])
        except (KeyError, IndexError, TypeError) as exc:
            raise FatalApiError(
                f"{SYSTEM} login: no token in the answer", status=response.status_code
            ) from exc
        self._token = token
        self._token_expires = _parse_expiry(user.get("expires_after"))
        self.logins += 1
        log.info("whatsapp: logged in; token valid until %s", self._token_expires)
        return token

    def _bearer(self) -> str:
        if self.settings.auth == "token":
            return self.settings.secret
        now = datetime.now(UTC)
        if self._token is None or (
            self._token_expires is not None and self._token_expires - _RENEW_MARGIN <= now
        ):
            return self.login()
        return self._token

    # ---- the check ---------------------------------------------------------------------------

    def check_contacts(
        self, phones: Sequence[str], *, wait: bool = True, force_check: bool = False
    ) -> dict[str, WhatsAppContact]:
        """Check ``phones`` in batches; one result per distinct input, keyed by the input as given.

        Args:
            phones: numbers in any format the API accepts (``+27 82 123-4567``); E.164 is best,
                since a number without ``+`` is read as local to the business's country.
            wait: ``blocking: "wait"`` (the default): answer once every number is checked;
                otherwise unknown numbers come back ``processing``.
            force_check: skip the server's cache of earlier checks.

        Raises:
            AuthError: credentials or token refused.
            RetriableApiError: rate window or server trouble outlasting the waits and retries.
            FatalApiError: the request was refused (400).
        """
        unique = list(dict.fromkeys(p for p in phones if p))
        results: dict[str, WhatsAppContact] = {}
        for start in range(0, len(unique), self.batch_size):
            batch = unique[start : start + self.batch_size]
            body = self._check_batch(batch, wait=wait, force_check=force_check)
            answered = {}
            for item in body.get("contacts") or []:
                if isinstance(item, Mapping) and isinstance(item.get("input"), str):
                    status = str(item.get("status") or "failed")
                    answered[item["input"]] = WhatsAppContact(
                        item["input"], status, item.get("wa_id") or None
                    )
            for phone in batch:
                # A number the answer skipped is reported as failed rather than dropped.
                results[phone] = answered.get(phone) or WhatsAppContact(phone, "failed")
        valid = sum(1 for r in results.values() if r.on_whatsapp)
        log.info(
            "whatsapp: checked %d number(s), %d on WhatsApp, %d call(s)",
            len(results),
            valid,
            self.api_calls["total"],
        )
        return results

    def _check_batch(self, batch: list[str], *, wait: bool, force_check: bool) -> dict[str, Any]:
        payload: dict[str, Any] = {"blocking": "wait" if wait else "no_wait", "contacts": batch}
        if force_check:
            payload["force_check"] = True
        relogged = False
        while True:
            response = self._limited_post(
                "v1/contacts", json=payload, headers=lambda: {"Authorization": f"Bearer {self._bearer()}"}
            )
            if response.status_code == 401 and self.settings.auth == "login" and not relogged:
                # The token expired or was revoked server-side: log in again, once.
                log.info("whatsapp: token refused; logging in again")
                self._token = None
                relogged = True
                continue
            return _raise_for_response(response, what="contacts check")

    def _limited_post(
        self, path: str, *, headers: Callable[[], dict[str, str]] | None = None, **kwargs: Any
    ) -> requests.Response:
        """POST within the rate window: wait for a used-up window, wait and retry on 429."""
        attempt = 0
        while True:
            self._wait_for_window()
            extra = headers() if headers is not None else None
            # Neither a login nor a check changes anything a repeat would duplicate.
            response = self.get_conn().request("POST", path, idempotent=True, headers=extra, **kwargs)
            if response.status_code != 429:
                return response
            attempt += 1
            if attempt > self.max_rate_retries:
                raise _rate_error(response, "rate limit still exceeded after retries")
            self._sleep_for_rate(response, attempt=attempt)

    # ---- rate limit --------------------------------------------------------------------------

    def _read_rate_limit(self, response: requests.Response) -> None:
        info = parse_rate_limit_headers(response.headers)
        if info.limit is not None or info.remaining is not None:
            self.rate_limit = info

    def _wait_for_window(self) -> None:
        """Wait for the window's reset when the last answer said no call is left in it."""
        info = self.rate_limit
        if info is None or info.remaining is None or info.remaining > 0 or info.reset is None:
            return
        delay = info.reset - time.time() + _RESET_MARGIN_S
        if delay <= 0:
            return
        if delay > self.max_rate_wait:
            raise RetriableApiError(
                f"{SYSTEM}: rate window used up; it resets in {delay:.0f}s (over max_rate_wait)",
                status=429,
                code="RATE_LIMITED",
                retry_after=delay,
            )
        log.info("whatsapp: rate window used up (%s calls); waiting %.1fs for the reset", info.limit, delay)
        self.http_policy.sleep(delay)
        self.rate_limit = None

    def _sleep_for_rate(self, response: requests.Response, *, attempt: int) -> None:
        info = parse_rate_limit_headers(response.headers)
        if info.retry_after is not None:
            delay = info.retry_after
        elif info.reset is not None and info.reset - time.time() > 0:
            delay = info.reset - time.time() + _RESET_MARGIN_S
        else:
            delay = self.http_policy.backoff(attempt)
        if delay > self.max_rate_wait:
            raise _rate_error(response, f"rate window resets in {delay:.0f}s (over max_rate_wait)", delay)
        log.warning("whatsapp: 429 rate limited; waiting %.1fs (attempt %d)", delay, attempt)
        self.http_policy.sleep(delay)
        self.rate_limit = None


def _parse_expiry(value: Any) -> datetime | None:
    """``expires_after`` (``2018-03-01 15:29:26+00:00``) as an aware datetime."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _rate_error(response: requests.Response, why: str, delay: float | None = None) -> RetriableApiError:
    info = parse_rate_limit_headers(response.headers)
    if delay is None and info.reset is not None:
        delay = max(math.ceil(info.reset - time.time()), 0)
    return RetriableApiError(f"{SYSTEM}: HTTP 429: {why}", status=429, code="RATE_LIMITED", retry_after=delay)


def _raise_for_response(response: requests.Response, *, what: str) -> dict[str, Any]:
    """Return the JSON body of a success; raise the crm_sync error for a failure.

    Errors come as ``{"errors": [{code, title, details}]}``, also with HTTP 200 on some
    servers, so a 200 carrying ``errors`` and no result is a failure too.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    status = response.status_code
    detail = whatsapp_errors(body) or safe_excerpt(response.text[:300])
    where = f"{SYSTEM} {what} -> HTTP {status}"
    has_result = isinstance(body, dict) and ("contacts" in body or "users" in body or not body.get("errors"))
    if status < 400 and has_result:
        assert isinstance(body, dict)
        return body
    if status in {401, 403}:
        raise AuthError(f"{where}: credentials or token refused ({detail})", status=status)
    if status in {408, 429} or status >= 500:
        raise RetriableApiError(f"{where}: {detail}", status=status)
    raise FatalApiError(f"{where}: {detail}", status=status)
