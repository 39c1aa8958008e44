"""Fixtures for the emulator tests: one in-process Salesforce sandbox per session, reset per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.admin_client import AdminClient
from sandbox.testing import Sandbox, start_sandbox

VERSION = "62.0"


class SfApi:
    """A thin authenticated client for the Salesforce emulator's REST API."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.base = sandbox.url("salesforce")
        self.session = sandbox.session("salesforce")
        self.admin: AdminClient = sandbox.admin("salesforce")
        self.conn = sandbox.connection("salesforce_default")
        self.token = self.login()

    def login(self) -> str:
        extra = self.conn["extra"]
        response = self.session.post(
            f"{extra['login_url']}/services/oauth2/token",
            data={
                "grant_type": "password",
                "client_id": extra["client_id"],
                "client_secret": extra["consumer_secret"],
                "username": self.conn["login"],
                "password": self.conn["password"] + extra["security_token"],
            },
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def call(self, method: str, path: str, *, version: str = VERSION, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        url = path if path.startswith("/services") else f"/services/data/v{version}/{path.lstrip('/')}"
        return self.session.request(method, self.base + url, headers=headers, timeout=30, **kwargs)

    def query(self, soql: str, **kwargs: Any) -> requests.Response:
        return self.call("GET", "query", params={"q": soql}, **kwargs)

    def rows(self, obj: str) -> list[dict[str, Any]]:
        return self.admin.state(object=obj)["records"]


@pytest.fixture(scope="session")
def sf_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with start_sandbox(["salesforce"], tmp_dir=Path(tmp_path_factory.mktemp("sf-sandbox"))) as sandbox:
        yield sandbox


@pytest.fixture
def sf(sf_sandbox: Sandbox) -> SfApi:
    """A freshly reset emulator with a logged-in client."""
    sf_sandbox.admin("salesforce").reset()
    return SfApi(sf_sandbox)
