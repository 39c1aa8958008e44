"""In-process sandbox for tests: the same emulators on ephemeral ports in background threads.

Example::

    with start_sandbox(["salesforce"], tmp_dir=tmp_path) as sandbox:
        for name, value in sandbox.conn_env().items():
            monkeypatch.setenv(name, value)
        sandbox.admin("salesforce").seed({"objects": {"Account": [{"Name": "Acme"}]}})
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from sandbox import registry, s3
from sandbox.admin_client import AdminClient, sandbox_session
from sandbox.connections import conn_env
from sandbox.servers import StartedService, start_services, stop_services
from sandbox.spec import Endpoint


class Sandbox:
    """Running emulators; use as a context manager or call :meth:`stop`."""

    def __init__(self, started: Sequence[StartedService], tmp_dir: Path) -> None:
        self._started = {service.spec.name: service for service in started}
        self.tmp_dir = tmp_dir
        self._sessions: list[requests.Session] = []

    @property
    def services(self) -> list[str]:
        """Names of the running services."""
        return list(self._started)

    def endpoint(self, service: str) -> Endpoint:
        """Where ``service`` listens."""
        try:
            return self._started[service].endpoint
        except KeyError:
            raise KeyError(f"service {service!r} is not running in this sandbox") from None

    def url(self, service: str) -> str:
        """Base URL of ``service``, e.g. ``https://127.0.0.1:40123``."""
        return self.endpoint(service).url

    def ca_bundle(self, service: str) -> Path | None:
        """The CA file to trust for a TLS service (None for plain HTTP)."""
        return self.endpoint(service).ca_path

    def conn_env(self) -> dict[str, str]:
        """``{AIRFLOW_CONN_<ID>: connection JSON}`` for every running service."""
        return conn_env((service.spec, service.endpoint) for service in self._started.values())

    def connection(self, conn_id: str) -> dict[str, Any]:
        """One rendered connection as a dict, e.g. ``connection("salesforce_default")``."""
        return json.loads(self.conn_env()["AIRFLOW_CONN_" + conn_id.upper()])

    def session(self, service: str) -> requests.Session:
        """A requests session that trusts this service's CA (closed by :meth:`stop`)."""
        session = sandbox_session(self.ca_bundle(service))
        self._sessions.append(session)
        return session

    def admin(self, service: str) -> Any:
        """Admin client: :class:`AdminClient`, or :class:`sandbox.s3.MotoAdmin` for s3."""
        endpoint = self.endpoint(service)
        if service == s3.SERVICE.name:
            return s3.MotoAdmin(endpoint)
        return AdminClient(endpoint.url, self.session(service))

    def stop(self) -> None:
        """Stop every server and close client sessions (idempotent)."""
        for session in self._sessions:
            session.close()
        self._sessions.clear()
        stop_services(list(self._started.values()))
        self._started.clear()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(services: Sequence[str], *, tmp_dir: Path) -> Sandbox:
    """Start ``services`` in this process on ephemeral loopback ports.

    Args:
        services: Registry names, e.g. ``["salesforce", "s3"]``.
        tmp_dir: Where CA bundles and certificates are written.
    """
    specs = registry.resolve(services)
    started = start_services(specs, {}, Path(tmp_dir))
    return Sandbox(started, Path(tmp_dir))
