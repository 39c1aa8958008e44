"""The base of the hooks whose every call goes through one ``crm_sync.http`` policy session."""

from __future__ import annotations

from functools import cached_property
from typing import Any, ClassVar

from airflow.sdk import BaseHook

from crm_sync.http import HttpPolicy, PolicySession, build_session

__all__ = ["PolicyHook"]


class PolicyHook(BaseHook):
    """Reads its connection once into settings and builds its policy session once.

    A subclass sets ``conn_name_attr`` (the attribute holding its connection id),
    ``system`` (the API's name in logs, errors and call counts) and ``settings_class`` (a
    class with ``from_connection(conn)`` giving at least ``base_url``), sets
    ``self.http_policy`` and ``self._session = None`` in ``__init__``, and says in
    ``session_options`` how it authenticates.
    """

    system: ClassVar[str]
    settings_class: ClassVar[Any]
    http_policy: HttpPolicy
    _session: PolicySession | None

    @cached_property
    def settings(self) -> Any:
        """The connection's settings (read once)."""
        return self.settings_class.from_connection(self.get_connection(getattr(self, self.conn_name_attr)))

    def session_options(self, settings: Any) -> dict[str, Any]:
        """Keyword arguments of ``build_session`` beyond the policy and system (auth, headers...)."""
        return {}

    def policy_session(self) -> PolicySession:
        """The session every call goes through (built on first use, then cached)."""
        if self._session is None:
            settings = self.settings
            options = {"base_url": settings.base_url, **self.session_options(settings)}
            self._session = build_session(self.http_policy, system=self.system, **options)
        return self._session

    def get_conn(self) -> Any:
        """The policy session (hooks built on a client library return that client instead)."""
        return self.policy_session()
