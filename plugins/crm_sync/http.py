"""The one HTTP policy every hook uses: timeouts, retries with backoff honouring Retry-After, redaction.

``build_session`` returns a ``requests.Session`` whose adapters retry through urllib3's
``Retry``: idempotent requests on 429, 5xx, connection and read errors; POST and PATCH only
when they provably never reached the server (connect errors), unless the caller marks them
idempotent. ``raise_for_api_status`` turns a final error response into the crm_sync exception
that tells the caller what to do next. Every URL, log line and message is redacted.
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import ConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ProtocolError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from crm_sync.exceptions import (
    AuthError,
    ConfigurationError,
    FatalApiError,
    RetriableApiError,
    SyncError,
)
from crm_sync.redaction import install_redaction, redact_url, safe_excerpt

__all__ = [
    "CONNECT_ERROR",
    "IDEMPOTENT_METHODS",
    "READ_ERROR",
    "HttpPolicy",
    "PolicyAdapter",
    "PolicyRetry",
    "PolicySession",
    "RateLimitInfo",
    "build_session",
    "parse_rate_limit_headers",
    "parse_retry_after",
    "raise_for_api_status",
]

log = logging.getLogger(__name__)

#: Methods that may be repeated without changing the outcome (RFC 9110 section 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
#: ``RetriableApiError.code`` when the request provably never reached the server.
CONNECT_ERROR = "connect_error"
#: ``RetriableApiError.code`` when the request may have been processed but no answer came back.
READ_ERROR = "read_error"

_SIGNED_INT = re.compile(r"^\s*-?\d+\s*$")
_SFORCE_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and retry rules for one API.

    Attributes:
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds to wait for each chunk of the response.
        max_retries: retries after the first attempt (so ``max_retries + 1`` attempts at most).
        backoff_factor: the first backoff in seconds; each further retry doubles it.
        backoff_max: the longest backoff in seconds.
        backoff_jitter: a random share of each backoff added on top (0.25: up to +25%), so
            parallel tasks hitting one limit do not retry in lockstep.
        retry_statuses: statuses retried for idempotent requests.
        respect_retry_after: sleep for the server's ``Retry-After`` instead of the backoff.
        max_retry_after: the longest ``Retry-After`` slept in-process; a longer one ends the
            retries so the caller can park the work (``RetriableApiError.retry_after``).
        non_idempotent_retry_statuses: statuses that prove the server did not act, so even a
            POST may be retried (e.g. ``{429}`` for an API that throttles before processing).
        idempotency_key_header: a request carrying this header is treated as idempotent.
        sleep: how to wait between attempts; tests inject a recorder.
    """

    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_retries: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 60.0
    backoff_jitter: float = 0.25
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    respect_retry_after: bool = True
    max_retry_after: float = 300.0
    non_idempotent_retry_statuses: frozenset[int] = frozenset()
    idempotency_key_header: str | None = "Idempotency-Key"
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if not value > 0:
                raise ConfigurationError(f"HttpPolicy.{name} must be positive, got {value!r}")
        for name in ("max_retries", "backoff_factor", "backoff_max", "backoff_jitter", "max_retry_after"):
            value = getattr(self, name)
            if not value >= 0:
                raise ConfigurationError(f"HttpPolicy.{name} must not be negative, got {value!r}")

    @property
    def timeout(self) -> tuple[float, float]:
        """The ``(connect, read)`` timeout pair requests expects."""
        return (self.connect_timeout, self.read_timeout)

    def backoff(self, retry: int) -> float:
        """Return the seconds to wait before retry number ``retry`` (1-based) without Retry-After."""
        delay = min(self.backoff_max, self.backoff_factor * 2 ** max(retry - 1, 0))
        # Jitter only de-synchronises clients; it needs no cryptographic randomness.
        delay += delay * self.backoff_jitter * random.random()  # noqa: S311
        return min(self.backoff_max, delay)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return a ``Retry-After`` value (delta seconds or an HTTP date) as seconds from now."""
    if value is None or not value.strip():
        return None
    if _SIGNED_INT.match(value):
        return float(max(int(value), 0))
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP dates are GMT (RFC 9110 section 5.6.7)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


class PolicyRetry(Retry):
    """urllib3 ``Retry`` that follows an :class:`HttpPolicy`.

    Differences from the base class: retries only ``policy.retry_statuses`` (Retry-After on a
    413 does not make it retriable), backs off from the first retry on, caps ``Retry-After``
    at ``policy.max_retry_after`` by giving up instead of sleeping, sleeps through
    ``policy.sleep`` and logs every retry at WARNING on ``crm_sync.http``.
    """

    # Only the policy's statuses are retried, whatever headers come with other statuses.
    RETRY_AFTER_STATUS_CODES = frozenset()

    def __init__(
        self,
        *args: Any,
        policy: HttpPolicy | None = None,
        system: str = "http",
        on_retry: Callable[[], None] | None = None,
        planned_delay: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy or HttpPolicy()
        self.system = system
        self.on_retry = on_retry
        self.planned_delay = planned_delay

    @classmethod
    def for_policy(
        cls,
        policy: HttpPolicy,
        *,
        system: str,
        idempotent: bool,
        on_retry: Callable[[], None] | None = None,
    ) -> PolicyRetry:
        """Build the retry rules for idempotent or for non-idempotent requests."""
        return cls(
            total=policy.max_retries,
            connect=policy.max_retries,
            read=policy.max_retries,
            status=policy.max_retries,
            # TLS and other non-network failures are configuration problems: fail at once.
            other=0,
            # None: every method; otherwise urllib3 retries read errors and statuses only for
            # these, while connect errors are retried for any method.
            allowed_methods=None if idempotent else IDEMPOTENT_METHODS,
            status_forcelist=policy.retry_statuses,
            backoff_factor=policy.backoff_factor,
            backoff_max=policy.backoff_max,
            respect_retry_after_header=policy.respect_retry_after,
            # Return the last response instead of raising, so raise_for_api_status can say
            # which status it was.
            raise_on_status=False,
            policy=policy,
            system=system,
            on_retry=on_retry,
        )

    def new(self, **kw: Any) -> Self:
        """Return a copy with some counters changed, keeping the policy (urllib3 API)."""
        kw.setdefault("policy", self.policy)
        kw.setdefault("system", self.system)
        kw.setdefault("on_retry", self.on_retry)
        kw.setdefault("planned_delay", None)
        return super().new(**kw)

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        """Return whether a response with this status should be retried (urllib3 API)."""
        if self._is_method_retryable(method):
            return status_code in self.status_forcelist
        return status_code in self.policy.non_idempotent_retry_statuses

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        """Return the response's Retry-After in seconds; None when absent or unreadable."""
        return parse_retry_after(response.headers.get("Retry-After"))

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: ConnectionPool | None = None,
        _stacktrace: TracebackType | None = None,
    ) -> Self:
        """Count one failed attempt, plan the wait before the next one and log it (urllib3 API)."""
        retry_after = None
        if response is not None and error is None and self.respect_retry_after_header:
            retry_after = self.get_retry_after(response)
        where = f"{self.system} {method} {redact_url(_full_url(_pool, url))}"
        if retry_after is not None and retry_after > self.policy.max_retry_after:
            log.warning(
                "%s -> %s: Retry-After %.0fs is over the %.0fs cap; not retrying in-process",
                where,
                response.status if response is not None else "?",
                retry_after,
                self.policy.max_retry_after,
            )
            # With raise_on_status=False urllib3 then returns this response as the final one.
            raise MaxRetryError(_pool, url, ResponseError("Retry-After over the cap"))  # type: ignore[arg-type]
        new = super().increment(method, url, response, error, _pool, _stacktrace)
        retry_number = len(new.history)
        delay = retry_after if retry_after else self.policy.backoff(retry_number)
        new.planned_delay = delay
        outcome = response.status if response is not None and error is None else _describe_error(error)
        log.warning(
            "%s -> %s; retry %d/%d in %.2fs", where, outcome, retry_number, self.policy.max_retries, delay
        )
        if self.on_retry is not None:
            self.on_retry()
        return new

    def sleep(self, response: BaseHTTPResponse | None = None) -> None:
        """Wait the planned delay through the policy's sleep function (urllib3 API)."""
        delay = self.planned_delay
        if delay is None:
            delay = self.policy.backoff(len(self.history))
        if delay > 0:
            self.policy.sleep(delay)

    def sleep_for_retry(self, response: BaseHTTPResponse) -> bool:
        """Wait for Retry-After through the policy's sleep function (urllib3 API)."""
        retry_after = self.get_retry_after(response)
        if retry_after:
            self.policy.sleep(min(retry_after, self.policy.max_retry_after))
            return True
        return False


def _full_url(pool: ConnectionPool | None, url: str | None) -> str:
    """Rebuild an absolute URL from urllib3's pool and request target, for log lines."""
    if pool is None or not url or "://" in url:
        return url or ""
    scheme = getattr(pool, "scheme", "http")
    return f"{scheme}://{pool.host}:{pool.port}{url}"


def _describe_error(error: Exception | None) -> str:
    """Name a transport error briefly, with the inner cause urllib3 wraps in ProtocolError."""
    if error is None:
        return "error"
    name = type(error).__name__
    if isinstance(error, ProtocolError) and len(error.args) > 1 and isinstance(error.args[1], BaseException):
        name = f"{name}({type(error.args[1]).__name__})"
    return name


_IDEMPOTENT_OVERRIDE: ContextVar[bool | None] = ContextVar("crm_sync_http_idempotent", default=None)
_ACTIVE_RETRY: ContextVar[Retry | None] = ContextVar("crm_sync_http_active_retry", default=None)


class PolicyAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that picks the retry rules per request: idempotent or not.

    A request is idempotent when the caller says so (``idempotent=`` on the session call),
    when its method is in :data:`IDEMPOTENT_METHODS`, when it carries the policy's
    idempotency-key header, or when ``(method, path?query)`` matches one of
    ``idempotent_patterns`` (for clients such as simple-salesforce that cannot pass a flag).
    """

    def __init__(
        self,
        policy: HttpPolicy,
        *,
        system: str,
        idempotent_patterns: Iterable[tuple[str, str | re.Pattern[str]]] = (),
        on_retry: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.policy = policy
        self.idempotent_patterns = tuple(
            (method.upper(), re.compile(pattern)) for method, pattern in idempotent_patterns
        )
        self.default_retry = PolicyRetry.for_policy(
            policy, system=system, idempotent=False, on_retry=on_retry
        )
        self.idempotent_retry = PolicyRetry.for_policy(
            policy, system=system, idempotent=True, on_retry=on_retry
        )
        super().__init__(max_retries=self.default_retry, **kwargs)

    # requests' HTTPAdapter.send reads self.max_retries once per request; a context variable
    # gives each request (and each thread) its own rules without copying the adapter and
    # its connection pools.
    @property  # type: ignore[override]
    def max_retries(self) -> Retry:
        """The retry rules of the request being sent, else the non-idempotent default."""
        return _ACTIVE_RETRY.get() or self.default_retry

    @max_retries.setter
    def max_retries(self, value: Retry | int) -> None:
        self.default_retry = Retry.from_int(value)

    def is_idempotent(self, request: requests.PreparedRequest) -> bool:
        """Return whether ``request`` may be repeated after it might have reached the server."""
        override = _IDEMPOTENT_OVERRIDE.get()
        if override is not None:
            return override
        method = (request.method or "GET").upper()
        if method in IDEMPOTENT_METHODS:
            return True
        header = self.policy.idempotency_key_header
        if header and request.headers.get(header):
            return True
        target = request.path_url
        return any(method == m and pattern.search(target) for m, pattern in self.idempotent_patterns)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` with the retry rules that fit it (requests API)."""
        retry = self.idempotent_retry if self.is_idempotent(request) else self.default_retry
        token = _ACTIVE_RETRY.set(retry)
        try:
            return super().send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )
        finally:
            _ACTIVE_RETRY.reset(token)


class PolicySession(requests.Session):
    """A ``requests.Session`` that applies an :class:`HttpPolicy` to every call.

    Adds default timeouts, joins ``base_url`` with relative URLs, retries through
    :class:`PolicyAdapter`, counts calls, hands each final response to ``on_response`` and
    turns transport failures into redacted crm_sync errors. Keeps ``request``'s signature,
    so third-party clients (simple-salesforce) can be handed one.

    Attributes:
        calls: requests sent (a request retried inside the adapter counts once).
        calls_by_method: ``calls`` split by HTTP method.
        retries: retries made inside the adapter, over all requests.
    """

    def __init__(
        self,
        policy: HttpPolicy,
        *,
        system: str,
        base_url: str | None = None,
        idempotent_patterns: Iterable[tuple[str, str | re.Pattern[str]]] = (),
        on_response: Callable[[requests.Response], None] | None = None,
        pool_maxsize: int = requests.adapters.DEFAULT_POOLSIZE,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.system = system
        self.base_url = base_url.rstrip("/") if base_url else None
        self.on_response = on_response
        self.calls = 0
        self.calls_by_method: Counter[str] = Counter()
        self.retries = 0
        self._lock = threading.Lock()
        adapter = PolicyAdapter(
            policy,
            system=system,
            idempotent_patterns=idempotent_patterns,
            on_retry=self._count_retry,
            pool_maxsize=pool_maxsize,
        )
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def _count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def resolve_url(self, url: str) -> str:
        """Return ``url`` unchanged when absolute, else appended to ``base_url``."""
        if self.base_url is None or urlsplit(url).scheme:
            return url
        return f"{self.base_url}/{url.lstrip('/')}" if url else self.base_url

    def request(  # type: ignore[override]
        self,
        method: str | bytes,
        url: str | bytes,
        *args: Any,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request (requests API); ``idempotent`` overrides the retry classification."""
        if isinstance(url, bytes):
            url = url.decode()
        token = _IDEMPOTENT_OVERRIDE.set(idempotent)
        try:
            return super().request(method, self.resolve_url(url), *args, **kwargs)
        finally:
            _IDEMPOTENT_OVERRIDE.reset(token)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Send a prepared request (requests API) under the policy's timeouts."""
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.policy.timeout
        method = (request.method or "GET").upper()
        with self._lock:
            self.calls += 1
            self.calls_by_method[method] += 1
        try:
            response = super().send(request, **kwargs)
        except requests.RequestException as exc:
            # `from None`: the original text names the raw URL (query secrets included) and
            # would be printed in the task log as the cause.
            raise _transport_error(exc, system=self.system, method=method, url=request.url or "") from None
        if self.on_response is not None:
            # A request the callback makes itself must not inherit this call's idempotency.
            token = _IDEMPOTENT_OVERRIDE.set(None)
            try:
                self.on_response(response)
            finally:
                _IDEMPOTENT_OVERRIDE.reset(token)
        return response


def _never_sent(exc: requests.RequestException) -> bool:
    """Return True when the connection was never established, so no byte reached the server."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    inner = exc.args[0] if exc.args else None
    # ConnectTimeoutError includes NewConnectionError: refused, unreachable, DNS failure.
    return isinstance(getattr(inner, "reason", inner), ConnectTimeoutError)


def _transport_error(exc: requests.RequestException, *, system: str, method: str, url: str) -> SyncError:
    """Map a requests exception to the crm_sync error that says what to do next."""
    where = f"{system} {method} {redact_url(url)}"
    detail = f"{type(exc).__name__}: {safe_excerpt(str(exc))}"
    if isinstance(exc, requests.exceptions.SSLError):
        return ConfigurationError(f"{where}: TLS failed, check verify / the CA bundle ({detail})")
    if isinstance(
        exc,
        requests.exceptions.InvalidURL
        | requests.exceptions.MissingSchema
        | requests.exceptions.InvalidSchema
        | requests.exceptions.InvalidHeader,
    ):
        return ConfigurationError(f"{where}: invalid request ({detail})")
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return FatalApiError(f"{where}: too many redirects ({detail})", code="too_many_redirects")
    if _never_sent(exc):
        return RetriableApiError(f"{where}: could not connect ({detail})", code=CONNECT_ERROR)
    return RetriableApiError(
        f"{where}: no complete response, the request may have been processed ({detail})", code=READ_ERROR
    )


def build_session(
    policy: HttpPolicy | None = None,
    *,
    system: str,
    base_url: str | None = None,
    auth: Any = None,
    headers: Mapping[str, str] | None = None,
    verify: str | os.PathLike[str] | bool = True,
    on_response: Callable[[requests.Response], None] | None = None,
    idempotent_patterns: Sequence[tuple[str, str | re.Pattern[str]]] = (),
    pool_maxsize: int = requests.adapters.DEFAULT_POOLSIZE,
) -> PolicySession:
    r"""Build the session a hook uses for one API.

    Args:
        policy: timeouts and retry rules; the defaults when None.
        system: the API's short name, used in log lines and error messages.
        base_url: prefix for relative URLs.
        auth: a requests auth object or ``(user, password)`` tuple.
        headers: headers sent with every request.
        verify: True, False or the path of a CA bundle (e.g. an emulator's certificate).
        on_response: called with every final response (after retries), e.g. to read
            rate-limit headers into a quota budget.
        idempotent_patterns: ``(method, regex)`` pairs; a matching non-idempotent request
            (searched in ``path?query``) is retried like a GET, e.g. a Salesforce upsert by
            external id ``("PATCH", r"/sobjects/\w+/\w+__c/")``.
        pool_maxsize: connections kept open per host; at least the calls a hook sends in
            parallel, or each extra one opens and discards a connection.

    Returns:
        A :class:`PolicySession`.

    Raises:
        ConfigurationError: ``verify`` names a CA bundle that does not exist.
    """
    install_redaction("crm_sync")
    install_redaction("urllib3")
    session = PolicySession(
        policy or HttpPolicy(),
        system=system,
        base_url=base_url,
        idempotent_patterns=idempotent_patterns,
        on_response=on_response,
        pool_maxsize=pool_maxsize,
    )
    session.headers["User-Agent"] = f"crm-sync python-requests/{requests.__version__}"
    if headers:
        session.headers.update(headers)
    session.auth = auth
    if isinstance(verify, str | os.PathLike):
        ca_bundle = os.fspath(verify)
        if not os.path.isfile(ca_bundle):
            raise ConfigurationError(f"{system}: CA bundle {ca_bundle!r} does not exist")
        session.verify = ca_bundle
        # requests lets REQUESTS_CA_BUNDLE (set on our workers) override session.verify
        # unless the environment is ignored (reference/airflow3.md section 4).
        session.trust_env = False
    else:
        session.verify = verify
    return session


def _attempts(response: requests.Response) -> int:
    """Return how many attempts produced ``response`` (1 when it was not retried)."""
    retries = getattr(response.raw, "retries", None)
    return len(getattr(retries, "history", ()) or ()) + 1


def _body_excerpt(response: requests.Response) -> str:
    try:
        content = response.content or b""
    except (requests.RequestException, RuntimeError):
        return ""
    return safe_excerpt(content[:4096].decode(response.encoding or "utf-8", errors="replace"))


def raise_for_api_status(response: requests.Response, *, system: str) -> requests.Response:
    """Raise the crm_sync error for an error response; return the response otherwise.

    429, 408 and 5xx raise :class:`RetriableApiError` (with ``retry_after`` when the server
    sent one); 401 and 403 raise :class:`AuthError`; other 4xx raise :class:`FatalApiError`.
    The message names the system, method, redacted URL, status and a redacted body excerpt.
    Hooks decode their API's own error envelopes before falling back on this.
    """
    status = response.status_code
    if status < 400:
        return response
    method = response.request.method if response.request is not None else "?"
    attempts = _attempts(response)
    message = (
        f"{system} {method} {redact_url(response.url or '')} -> HTTP {status}"
        f"{' ' + response.reason if response.reason else ''}"
        f"{f' after {attempts} attempts' if attempts > 1 else ''}"
    )
    excerpt = _body_excerpt(response)
    if excerpt:
        message = f"{message}: {excerpt}"
    if status in {408, 429} or status >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise RetriableApiError(message, status=status, retry_after=retry_after)
    if status in {401, 403}:
        raise AuthError(message, status=status)
    raise FatalApiError(message, status=status)


@dataclass(frozen=True)
class RateLimitInfo:
    """Rate-limit signals read from one response's headers; None where a header is absent.

    Attributes:
        limit: requests allowed in the current window (``x-ratelimit-limit``).
        remaining: requests left in the current window (``x-ratelimit-remaining``).
        reset: ``x-ratelimit-reset`` as sent: seconds to the reset for Pipedrive, an epoch
            second for Turn; the hook knows which.
        daily_left: requests left today (Pipedrive ``x-daily-requests-left``).
        retry_after: seconds to wait, from ``Retry-After`` (delta seconds or HTTP date).
        api_usage_used: Salesforce ``Sforce-Limit-Info`` ``api-usage`` used part.
        api_usage_max: Salesforce ``Sforce-Limit-Info`` ``api-usage`` allocation.
    """

    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    daily_left: int | None = None
    retry_after: float | None = None
    api_usage_used: int | None = None
    api_usage_max: int | None = None

    @property
    def api_usage_left(self) -> int | None:
        """Salesforce daily API requests left, when the header was present."""
        if self.api_usage_used is None or self.api_usage_max is None:
            return None
        return max(self.api_usage_max - self.api_usage_used, 0)


def _int_header(value: str | None) -> int | None:
    number = _float_header(value)
    return None if number is None else int(number)


def _float_header(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_rate_limit_headers(headers: Mapping[str, str]) -> RateLimitInfo:
    """Read the rate-limit headers our APIs send (names are matched case-insensitively)."""
    lower = {key.lower(): value for key, value in headers.items()}
    used = limit = None
    usage = _SFORCE_API_USAGE.search(lower.get("sforce-limit-info", ""))
    if usage:
        used, limit = int(usage.group(1)), int(usage.group(2))
    return RateLimitInfo(
        limit=_int_header(lower.get("x-ratelimit-limit")),
        remaining=_int_header(lower.get("x-ratelimit-remaining")),
        reset=_float_header(lower.get("x-ratelimit-reset")),
        daily_left=_int_header(lower.get("x-daily-requests-left")),
        retry_after=parse_retry_after(lower.get("retry-after")),
        api_usage_used=used,
        api_usage_max=limit,
    )
