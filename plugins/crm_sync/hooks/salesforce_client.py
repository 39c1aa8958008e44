"""Authenticated, counted and budgeted requests to one Salesforce org.

Every request goes through the crm_sync HTTP policy session (timeouts, retries honouring
Retry-After, redaction), is counted by kind, is charged to the quota budget first, feeds
``Sforce-Limit-Info`` back into it, and re-authenticates once on an expired session,
replaying the very same request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import cached_property
from typing import Any

import requests
from simple_salesforce import Salesforce

from crm_sync.exceptions import AuthError, FatalApiError, QuotaExhausted, RetriableApiError, SyncError
from crm_sync.hooks.salesforce_auth import SalesforceSettings, read_token
from crm_sync.hooks.salesforce_types import QUOTA_EXHAUSTED, REQUEST_LIMIT_EXCEEDED, ApiCalls
from crm_sync.http import HttpPolicy, PolicySession, build_session, parse_rate_limit_headers
from crm_sync.redaction import safe_excerpt
from crm_sync.sync.quota import Budget

__all__ = ["SalesforceClient", "error_of", "exception_for"]

log = logging.getLogger(__name__)

_QUOTED = re.compile(r"'(?:\\.|[^'\\])*'")


def error_of(response: requests.Response) -> tuple[str, str]:
    """``(errorCode, message)`` of a Salesforce error body; quoted literals and personal data masked."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP_{response.status_code}", safe_excerpt(response.text or "")
    first = body[0] if isinstance(body, list) and body else body if isinstance(body, dict) else {}
    if not isinstance(first, dict):
        first = {}
    code = str(first.get("errorCode") or first.get("error") or f"HTTP_{response.status_code}")
    message = str(first.get("message") or first.get("error_description") or "")
    # MALFORMED_QUERY messages quote the query around the error, values included.
    return code, safe_excerpt(_QUOTED.sub("'***'", message))


def exception_for(response: requests.Response, method: str, path: str) -> SyncError | None:
    """The crm_sync error a Salesforce response calls for; None when it succeeded."""
    status = response.status_code
    if status < 400:
        return None
    code, message = error_of(response)
    text = f"salesforce {method} {path.split('?')[0]} -> HTTP {status} {code}: {message}"
    if status == 401:
        return AuthError(text, status=status, code=code)
    if code == REQUEST_LIMIT_EXCEEDED and "concurrent" not in message.lower():
        # The org's rolling 24 h allowance is spent (403, not 429, for the REST API): nothing
        # succeeds until usage drops (help.salesforce.com "API Request Limits and Allocations").
        exc = QuotaExhausted(text, api="salesforce")
        exc.sf_code = REQUEST_LIMIT_EXCEEDED  # type: ignore[attr-defined]
        return exc
    if code == REQUEST_LIMIT_EXCEEDED or status in (408, 429) or status >= 500:
        return RetriableApiError(text, status=status, code=code)
    return FatalApiError(text, status=status, code=code)


class SalesforceClient:
    """Requests to one org for the hook: auth, accounting, quota, typed errors.

    Args:
        settings: the connection's settings.
        budget: charged one call before each request (optional).
        http_policy: timeouts and retries.
        provider_login: logs in the provider's way (SOAP password, JWT) on the given
            session; used when the connection does not call for our own OAuth request.
    """

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        budget: Budget | None,
        http_policy: HttpPolicy,
        provider_login: Callable[[PolicySession], Salesforce],
    ) -> None:
        self.settings = settings
        self.budget = budget
        self.http_policy = http_policy
        self._provider_login = provider_login
        self.calls = ApiCalls()
        self.usage: tuple[int, int] | None = None
        self.exhausted: str | None = None
        """The parked code once a quota ran out: QUOTA_EXHAUSTED or REQUEST_LIMIT_EXCEEDED."""

    @cached_property
    def http(self) -> PolicySession:
        """The policy session every request (simple-salesforce's included) goes through."""
        return build_session(
            self.http_policy,
            system="salesforce",
            verify=self.settings.ca_bundle or True,
            on_response=self._on_response,
            # For users of get_conn(): an upsert by external id is safe to resend.
            idempotent_patterns=[
                ("PATCH", r"/sobjects/\w+/\w+/[^/?]+"),
                ("PATCH", r"/composite/sobjects/\w+/\w+"),
            ],
        )

    @cached_property
    def sf(self) -> Salesforce:
        """The logged-in simple-salesforce client (dropped by :meth:`reauthenticate`)."""
        settings = self.settings
        if not settings.uses_own_oauth:
            self.calls.add("auth")
            return self._provider_login(self.http)
        data, basic = settings.token_request()
        before = self.http.retries
        try:
            response = self.http.post(settings.token_url, data=data, auth=basic, idempotent=True)
        finally:
            self.calls.add("auth", 1 + self.http.retries - before)
        token, instance_url = read_token(response, settings.instance_url)
        log.info("salesforce: authenticated, instance %s", instance_url)
        return Salesforce(
            session_id=token, instance_url=instance_url, session=self.http, version=settings.version
        )

    def reauthenticate(self) -> None:
        """Drop the session and log in again now (a refused login raises here)."""
        self.__dict__.pop("sf", None)
        self.sf  # noqa: B018

    @property
    def budget_left(self) -> int | None:
        """Calls left today: from the budget, else from Salesforce's own usage header."""
        if self.budget is not None:
            return self.budget.remaining()
        if self.usage is None:
            return None
        used, limit = self.usage
        return max(min(limit, self.settings.api_daily_limit or limit) - used, 0)

    def _on_response(self, response: requests.Response) -> None:
        """Read ``Sforce-Limit-Info: api-usage=used/max`` (on every REST response) into the budget."""
        info = parse_rate_limit_headers(response.headers)
        if info.api_usage_used is None or info.api_usage_max is None:
            return
        self.usage = (info.api_usage_used, info.api_usage_max)
        if self.budget is not None:
            try:
                self.budget.observe(info.api_usage_used, info.api_usage_max)
            except QuotaExhausted:
                # Not raised here: this response may carry a write's results. The next spend stops.
                self.exhausted = QUOTA_EXHAUSTED

    def _spend(self, committed: bool) -> None:
        """Charge one call or raise QuotaExhausted; ``committed`` calls finish started work.

        A Bulk job already running is still polled and read past our own cap: its records
        are being written, and not reading its results would lose their outcome.
        """
        if self.exhausted and not committed:
            raise QuotaExhausted("salesforce API budget is spent for today", api="salesforce")
        if self.budget is not None:
            try:
                self.budget.spend(1)
            except QuotaExhausted:
                if not committed:
                    self.exhausted = QUOTA_EXHAUSTED
                    raise
                log.warning("salesforce budget spent while a bulk job runs; finishing the job")
            return
        cap = self.settings.api_daily_limit
        if cap and self.usage and self.usage[0] >= cap and not committed:
            self.exhausted = QUOTA_EXHAUSTED
            raise QuotaExhausted(f"salesforce usage reached the api_daily_limit of {cap}", api="salesforce")

    def url(self, path: str) -> str:
        """Absolute URL of a path under ``/services/data/vXX.X/`` (or an absolute path)."""
        if path.startswith("/"):
            return f"https://{self.sf.sf_instance}{path}"
        return self.sf.base_url + path

    def call(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        committed: bool = False,
        idempotent: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """Send one request; raise the crm_sync error a failure calls for.

        Args:
            kind: the counter to charge: ``rest``, ``collections`` or ``bulk``.
            method: the HTTP method.
            path: relative to ``/services/data/vXX.X/``, or an absolute path.
            committed: finishes work already started (charged even past our budget).
            idempotent: safe to resend after a lost response (the policy then retries it).
            **kwargs: passed to requests (json, data, params, headers).

        On 401 INVALID_SESSION_ID it logs in again once and replays this very request (same
        method, path and body), then gives up with AuthError.
        """
        self._spend(committed)
        extra_headers = kwargs.pop("headers", {})
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self.sf.session_id}", **extra_headers}
            before = self.http.retries
            try:
                response = self.http.request(
                    method, self.url(path), headers=headers, idempotent=idempotent or None, **kwargs
                )
            finally:
                self.calls.add(kind, 1 + self.http.retries - before)
            if attempt == 1 and response.status_code == 401 and error_of(response)[0] == "INVALID_SESSION_ID":
                log.info(
                    "salesforce session expired; logging in again and replaying %s %s",
                    method,
                    path.split("?")[0],
                )
                self.reauthenticate()
                continue
            break
        exc = exception_for(response, method, path)
        if exc is not None:
            if isinstance(exc, QuotaExhausted):
                self.exhausted = REQUEST_LIMIT_EXCEEDED
            raise exc
        return response
