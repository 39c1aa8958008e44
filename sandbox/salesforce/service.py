"""Registry entry and Airflow connection of the Salesforce emulator."""

from __future__ import annotations

from typing import Any

from sandbox.salesforce.backend import (
    API_VERSION,
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    SECURITY_TOKEN,
    USERNAME,
)
from sandbox.spec import Endpoint, ServiceSpec


def create_app(endpoint: Endpoint) -> Any:
    """The emulator's ASGI app for ``endpoint``."""
    from sandbox.salesforce.app import create_backend_app

    return create_backend_app(endpoint.url)[1]


def connections(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """``salesforce_default``: OAuth via ``login_url``, TLS trust via ``ca_bundle``."""
    return {
        "salesforce_default": {
            "conn_type": "salesforce",
            "login": USERNAME,
            "password": PASSWORD,
            "extra": {
                "security_token": SECURITY_TOKEN,
                "instance_url": endpoint.url,
                "login_url": endpoint.url,
                "client_id": CLIENT_ID,
                "consumer_secret": CLIENT_SECRET,
                "version": API_VERSION,
                "ca_bundle": str(endpoint.ca_path),
            },
        }
    }


SERVICE = ServiceSpec(
    name="salesforce",
    default_port=8443,
    tls=True,
    app_factory=create_app,
    connections=connections,
    description="Salesforce REST v42-v62, OAuth2, SOQL subset, sObject Collections, Bulk API 2.0",
)
