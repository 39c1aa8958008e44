"""MaxioCoreHook: find the Maxio Core (SaaSOptics) contract of an account and link a subscription.

The original joined Fivetran copies of Core's CONTRACT, CUSTOMER (``number`` = Salesforce
account id) and REGISTER (``name like '%cashe%'``) tables, then PATCHed ``text_field2`` and
ignored the answer. Here the same join goes through Core's own API:

1. ``GET customers/?number=<account id>``: the customer whose ``number`` is the account id;
2. ``GET contracts/?customer=<customer id>``: that customer's contracts;
3. ``GET registers/`` (once per hook): keep contracts whose register name contains the
   integration's marker, case-insensitively.

Core is a Django REST Framework API, and django-filter ignores query parameters it does not
know, so every filter is also checked on the rows that come back: a filter the server ignores
costs pages, never a wrong match. Several matches are never guessed between.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from crm_sync.exceptions import ConfigurationError, FatalApiError, RecordRejected, RetriableApiError
from crm_sync.hooks.policy_hook import PolicyHook
from crm_sync.http import HttpPolicy, PolicySession, raise_for_api_status
from crm_sync.redaction import safe_excerpt

__all__ = ["Contract", "MaxioCoreHook", "MaxioCoreSettings", "drf_error_messages"]

log = logging.getLogger(__name__)

SYSTEM = "maxio_core"
PAGE_SIZE = 200
LINK_FIELD = "text_field2"


def drf_error_messages(body: Any) -> tuple[list[str], str | None]:
    """Decode a DRF error body: ``{"detail": "..."}`` or ``{"field": ["..."]}``.

    Returns the messages and, when exactly one field is to blame, its name.
    """
    if not isinstance(body, Mapping):
        return ([str(body)] if body else []), None
    if "detail" in body and len(body) == 1:
        return [str(body["detail"])], None
    messages = [
        f"{name}: {message}"
        for name, value in body.items()
        for message in (value if isinstance(value, list) else [value])
    ]
    fields = [name for name in body if name != "non_field_errors"]
    return messages, (str(fields[0]) if len(fields) == 1 else None)


@dataclass(frozen=True)
class MaxioCoreSettings:
    """Where and how to call Maxio Core, read from the connection."""

    base_url: str
    token: str = field(repr=False)

    @classmethod
    def from_connection(cls, conn: Any) -> MaxioCoreSettings:
        """``{schema}://{host}[:{port}][/{extra.account}]/api/v1.0`` and the token in ``password``.

        Production is ``https://<server>.saasoptics.com/<account>/api/v1.0/`` (api-contracts 6.4).
        """
        if not conn.host:
            raise ConfigurationError(
                f"connection {conn.conn_id!r}: host is required (e.g. acme.saasoptics.com)"
            )
        if not conn.password:
            raise ConfigurationError(f"connection {conn.conn_id!r}: password must hold the Core API token")
        extra = conn.extra_dejson or {}
        host = conn.host.rstrip("/")
        if "://" not in host:
            host = f"{conn.schema or 'https'}://{host}{f':{conn.port}' if conn.port else ''}"
        account = str(extra.get("account") or "").strip("/")
        return cls(base_url=f"{host}{'/' + account if account else ''}/api/v1.0", token=conn.password)


@dataclass(frozen=True)
class Contract:
    """A Core contract and the Advanced Billing subscription id it carries in ``text_field2``."""

    id: int
    customer_id: int | None
    register_id: int | None
    number: str | None
    text_field2: str | None

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Contract:
        """Parse one contract object."""
        return cls(
            id=int(raw["id"]),
            customer_id=raw.get("customer"),
            register_id=raw.get("register"),
            number=raw.get("number"),
            text_field2=raw.get(LINK_FIELD),
        )


class MaxioCoreHook(PolicyHook):
    """Interact with Maxio Core: find an account's contract, store the AB subscription id on it.

    Args:
        maxio_core_conn_id: the connection (default ``maxio_core_default``): ``host``,
            ``schema``, ``port``, ``password`` = API token, ``extra.account`` = the account path.
        http_policy: timeouts and retries; a 429 is retried for any method (DRF throttles
            before the view runs).
    """

    conn_name_attr = "maxio_core_conn_id"
    system = SYSTEM
    settings_class = MaxioCoreSettings
    default_conn_name = "maxio_core_default"
    conn_type = "maxio_core"
    hook_name = "Maxio Core (SaaSOptics)"

    def __init__(
        self, maxio_core_conn_id: str = default_conn_name, *, http_policy: HttpPolicy | None = None
    ) -> None:
        super().__init__()
        self.maxio_core_conn_id = maxio_core_conn_id
        self.http_policy = http_policy or HttpPolicy(non_idempotent_retry_statuses=frozenset({429}))
        self._session: PolicySession | None = None
        self._registers: dict[int, str] | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabel the connection form: the API token goes in Password."""
        return {
            "hidden_fields": ["login"],
            "relabeling": {"password": "API token", "schema": "Scheme"},
            "placeholders": {
                "host": "acme.saasoptics.com",
                "schema": "https",
                "extra": '{"account": "acme"}',
            },
        }

    def session_options(self, settings: MaxioCoreSettings) -> dict[str, Any]:
        """Token auth (api-contracts 6.2)."""
        return {"headers": {"Authorization": f"Token {settings.token}", "Accept": "application/json"}}

    @property
    def api_calls(self) -> dict[str, int]:
        """Requests sent so far (a retry inside the HTTP policy counts once): total and per method."""
        session = self.get_conn()
        return {"total": session.calls, **dict(session.calls_by_method)}

    def test_connection(self) -> tuple[bool, str]:
        """Check the token with one page of registers (Airflow's "Test" button)."""
        try:
            self._json(self.get_conn().get("registers/", params={"page_size": 1}))
        except (FatalApiError, RetriableApiError, ConfigurationError) as exc:
            return False, str(exc)
        return True, "connected to Maxio Core"

    # ---- transport ------------------------------------------------------------------------

    @staticmethod
    def _json(response: requests.Response) -> Any:
        raise_for_api_status(response, system=SYSTEM)
        try:
            return response.json()
        except ValueError as exc:
            raise FatalApiError(
                f"maxio_core: HTTP {response.status_code} without a JSON body", code="BAD_RESPONSE"
            ) from exc

    def _pages(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every row of a DRF list, following ``next`` links (same host only, no loops)."""
        origin = urlsplit(self.settings.base_url)[:2]
        url: str = path
        query: dict[str, Any] | None = {**params, "page_size": PAGE_SIZE}
        seen: set[str] = set()
        while True:
            body = self._json(self.get_conn().get(url, params=query))
            yield from body.get("results") or []
            url = body.get("next")
            if not url:
                return
            if urlsplit(url)[:2] != origin:
                raise FatalApiError(f"maxio_core: a next link leaves {origin[1]}; refusing to send the token")
            if url in seen:
                raise FatalApiError("maxio_core: the same next link came back twice", code="BAD_RESPONSE")
            seen.add(url)
            query = None

    def _register_names(self) -> dict[int, str]:
        if self._registers is None:
            self._registers = {int(r["id"]): str(r.get("name") or "") for r in self._pages("registers/", {})}
        return self._registers

    # ---- verbs ----------------------------------------------------------------------------

    def get_contract(self, contract_id: int) -> Contract | None:
        """One contract by id, or None."""
        response = self.get_conn().get(f"contracts/{int(contract_id)}/")
        if response.status_code == 404:
            return None
        return Contract.from_json(self._json(response))

    def find_contract(self, account_id: str, *, register_name_contains: str | None = None) -> Contract | None:
        """The one contract of the Core customer whose ``number`` is ``account_id``, or None.

        Args:
            account_id: the Salesforce account id (Core ``customer.number``), matched exactly.
            register_name_contains: keep only contracts whose register name contains this,
                ignoring case (the original's ``REGISTER.name like '%cashe%'``).

        Raises:
            RecordRejected: ``AMBIGUOUS_CUSTOMER`` or ``AMBIGUOUS_CONTRACT`` when several
                match; the message names the account and the candidate ids.
        """
        customers = [
            c for c in self._pages("customers/", {"number": account_id}) if c.get("number") == account_id
        ]
        if not customers:
            return None
        if len(customers) > 1:
            ids = sorted(int(c["id"]) for c in customers)
            raise RecordRejected(
                account_id,
                "AMBIGUOUS_CUSTOMER",
                f"{len(ids)} Maxio Core customers have number {account_id} (ids {ids}); not guessing",
                field="number",
            )
        customer_id = int(customers[0]["id"])
        contracts = [
            Contract.from_json(raw)
            for raw in self._pages("contracts/", {"customer": customer_id})
            if raw.get("customer") == customer_id
        ]
        if register_name_contains:
            needle = register_name_contains.casefold()
            names = self._register_names()
            contracts = [c for c in contracts if needle in names.get(c.register_id or -1, "").casefold()]
        if not contracts:
            return None
        if len(contracts) > 1:
            ids = sorted(c.id for c in contracts)
            raise RecordRejected(
                account_id,
                "AMBIGUOUS_CONTRACT",
                f"Maxio Core customer {customer_id} of account {account_id} has {len(ids)} matching "
                f"contracts (ids {ids}); not guessing",
            )
        return contracts[0]

    def set_subscription_id(self, contract_id: int, subscription_id: int | str) -> Contract:
        """Store the Advanced Billing subscription id in the contract's ``text_field2``, checked.

        The PATCH is idempotent (same body, same result), so the HTTP policy may resend it.

        Raises:
            RecordRejected: ``NOT_FOUND`` (no such contract) or ``INVALID`` (a 400, with Core's messages).
            FatalApiError: ``WRITE_NOT_APPLIED`` when Core answers 200 but does not hold the value
                (e.g. the field is read-only for this token); the original never checked this.
        """
        sent = str(subscription_id)
        key = str(contract_id)
        response = self.get_conn().patch(
            f"contracts/{int(contract_id)}/", json={LINK_FIELD: sent}, idempotent=True
        )
        if response.status_code == 404:
            raise RecordRejected(key, "NOT_FOUND", f"Maxio Core has no contract {contract_id}")
        if response.status_code == 400:
            try:
                body = response.json()
            except ValueError:
                body = response.text
            messages, field_name = drf_error_messages(body)
            raise RecordRejected(
                key, "INVALID", safe_excerpt("; ".join(messages), limit=500), field=field_name
            )
        contract = Contract.from_json(self._json(response))
        if contract.id != int(contract_id) or contract.text_field2 != sent:
            raise FatalApiError(
                f"maxio_core PATCH contracts/{contract_id}/ answered {response.status_code} but the contract "
                f"holds {LINK_FIELD}={contract.text_field2!r}, not {sent!r}: the link was not stored",
                status=response.status_code,
                code="WRITE_NOT_APPLIED",
            )
        return contract

    def link_subscription(
        self, account_id: str, subscription_id: int | str, *, register_name_contains: str | None = None
    ) -> Contract:
        """Find the account's contract and store the subscription id on it, never overwriting.

        A contract that already holds this id is returned without a write, so re-runs are free.

        Raises:
            RecordRejected: ``CONTRACT_NOT_FOUND`` (Core creates contracts when its Advanced
                Billing sync imports the subscription, so this is usually "not yet"),
                ``CONTRACT_ALREADY_LINKED`` (it holds another subscription id), or any error of
                :meth:`find_contract` and :meth:`set_subscription_id`.
        """
        contract = self.find_contract(account_id, register_name_contains=register_name_contains)
        if contract is None:
            raise RecordRejected(account_id, "CONTRACT_NOT_FOUND", "no matching Maxio Core contract yet")
        sent = str(subscription_id)
        if contract.text_field2 == sent:
            return contract
        if contract.text_field2:
            raise RecordRejected(
                account_id,
                "CONTRACT_ALREADY_LINKED",
                f"contract {contract.id} already holds subscription {contract.text_field2}; not overwritten",
                field=LINK_FIELD,
            )
        return self.set_subscription_id(contract.id, sent)
