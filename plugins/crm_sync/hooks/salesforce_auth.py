"""Salesforce connection settings and the OAuth 2.0 token request the hook makes itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from crm_sync.exceptions import AuthError, ConfigurationError
from crm_sync.redaction import safe_excerpt

__all__ = ["DEFAULT_BULK_THRESHOLD", "DEFAULT_VERSION", "SalesforceSettings", "read_token"]

DEFAULT_BULK_THRESHOLD = 2000
# Collections upsert needs v46+ (REST API guide); v62.0 is what the contracts were read at.
DEFAULT_VERSION = "62.0"
_PREFIX = "extra__salesforce__"


def _extra(extras: Mapping[str, Any], name: str) -> Any:
    """An extra by its short name or the legacy prefixed one; blanks become None (as the provider)."""
    value = extras.get(name, extras.get(_PREFIX + name))
    return value if value not in ("", None) else None


def _int_extra(extras: Mapping[str, Any], name: str, default: int | None) -> int | None:
    value = _extra(extras, name)
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"salesforce connection extra {name!r} must be an integer") from None
    if number < 1:
        raise ConfigurationError(f"salesforce connection extra {name!r} must be positive")
    return number


@dataclass(frozen=True)
class SalesforceSettings:
    """What the hook reads from a ``salesforce`` connection (secrets never in the repr)."""

    login: str | None = None
    password: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    domain: str | None = None
    login_url: str | None = None
    instance_url: str | None = None
    version: str = DEFAULT_VERSION
    ca_bundle: str | None = None
    has_private_key: bool = False
    bulk_threshold: int = DEFAULT_BULK_THRESHOLD
    api_daily_limit: int | None = None

    @classmethod
    def from_connection(
        cls, login: str | None, password: str | None, extras: Mapping[str, Any]
    ) -> SalesforceSettings:
        """Read a connection's login, password and extras.

        Our extras: ``login_url`` (OAuth token host), ``ca_bundle`` (verify TLS with this CA,
        ignoring REQUESTS_CA_BUNDLE), ``bulk_threshold`` (records at which writes switch to
        Bulk API 2.0), ``api_daily_limit`` (our own cap on the org's daily API usage).
        """
        return cls(
            login=login or None,
            password=password or None,
            security_token=_extra(extras, "security_token"),
            client_id=_extra(extras, "consumer_key") or _extra(extras, "client_id"),
            client_secret=_extra(extras, "consumer_secret"),
            domain=_extra(extras, "domain"),
            login_url=_extra(extras, "login_url"),
            instance_url=_extra(extras, "instance_url"),
            version=str(_extra(extras, "version") or DEFAULT_VERSION),
            ca_bundle=_extra(extras, "ca_bundle"),
            has_private_key=bool(_extra(extras, "private_key") or _extra(extras, "private_key_file_path")),
            bulk_threshold=_int_extra(extras, "bulk_threshold", DEFAULT_BULK_THRESHOLD)
            or DEFAULT_BULK_THRESHOLD,
            api_daily_limit=_int_extra(extras, "api_daily_limit", None),
        )

    @property
    def uses_own_oauth(self) -> bool:
        """True when the hook requests the token itself (else the provider's login is used).

        That is when a ``login_url`` is set or OAuth client credentials are given; JWT
        (a private key) always goes through the provider.
        """
        if self.has_private_key:
            return False
        return bool(self.login_url or (self.client_id and self.client_secret))

    @property
    def token_url(self) -> str:
        """``<login_url>/services/oauth2/token``; login_url defaults by ``domain``."""
        base = self.login_url or f"https://{self.domain or 'login'}.salesforce.com"
        return base.rstrip("/") + "/services/oauth2/token"

    def token_request(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        """The token request's form body and Basic auth.

        Username-password grant (password + security token) when a login is set, else the
        client-credentials grant with the client id and secret in Basic auth, as
        simple-salesforce sends it (reference/api-contracts.md section 1.1).

        Raises:
            ConfigurationError: when neither flow has what it needs.
        """
        if self.login and self.password:
            if not self.client_id:
                raise ConfigurationError(
                    "salesforce connection: the OAuth password flow needs a client_id (or consumer_key) extra"
                )
            data = {
                "grant_type": "password",
                "client_id": self.client_id,
                "username": self.login,
                "password": self.password + (self.security_token or ""),
            }
            if self.client_secret:
                data["client_secret"] = self.client_secret
            return data, None
        if self.client_id and self.client_secret:
            return {"grant_type": "client_credentials"}, (self.client_id, self.client_secret)
        raise ConfigurationError(
            "salesforce connection: give login + password (+ security_token) "
            "or consumer_key/client_id + consumer_secret"
        )


def read_token(response: requests.Response, fallback_instance_url: str | None) -> tuple[str, str]:
    """Return ``(access_token, instance_url)`` from a token response.

    Raises:
        AuthError: when the token request was refused (with Salesforce's error code, never
            the credentials).
    """
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
        error = body.get("error", "no_token") if isinstance(body, dict) else "no_token"
        detail = body.get("error_description", "") if isinstance(body, dict) else ""
        raise AuthError(
            f"salesforce token request refused: HTTP {response.status_code} {error}: "
            f"{safe_excerpt(str(detail))}",
            status=response.status_code,
            code=str(error),
        )
    instance_url = body.get("instance_url") or fallback_instance_url
    if not instance_url:
        raise ConfigurationError(
            "salesforce: the token response has no instance_url and the connection has no instance_url extra"
        )
    return str(body["access_token"]), str(instance_url)
