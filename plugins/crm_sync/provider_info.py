"""Provider metadata: registers crm_sync's connection types with Airflow's ProvidersManager.

Airflow finds connection types only through installed distributions that expose an
``apache_airflow_provider`` entry point (reference/airflow-plugins.md section 3); pyproject.toml
points that entry point here. The form fields are read from this dict without importing the
hooks, so this module must stay import-light.
"""

from __future__ import annotations

from typing import Any

_VERSION = "0.1.0"


def _staging() -> dict[str, Any]:
    return {
        "connection-type": "crm_sync_staging",
        "hook-class-name": "crm_sync.hooks.database.StagingHook",
        "hook-name": "crm_sync staging database",
        "ui-field-behaviour": {
            "hidden-fields": ["port", "schema", "login", "password", "host"],
            "relabeling": {},
            "placeholders": {
                "extra": '{"sqlalchemy_url": "postgresql+psycopg://user:pass@host:5432/crm_sync"}',
            },
        },
    }


def _maxio() -> dict[str, Any]:
    return {
        "connection-type": "maxio",
        "hook-class-name": "crm_sync.hooks.maxio.MaxioHook",
        "hook-name": "Maxio Advanced Billing",
        "ui-field-behaviour": {
            "hidden-fields": [],
            "relabeling": {"login": "API key", "password": "Password (always x)", "schema": "Scheme"},
            "placeholders": {
                "schema": "https",
                "password": "x",
                "extra": '{"subdomain": "acme", "region": "us"}',
            },
        },
    }


def _maxio_core() -> dict[str, Any]:
    return {
        "connection-type": "maxio_core",
        "hook-class-name": "crm_sync.hooks.maxio_core.MaxioCoreHook",
        "hook-name": "Maxio Core (SaaSOptics)",
        "ui-field-behaviour": {
            "hidden-fields": ["login"],
            "relabeling": {"password": "API token", "schema": "Scheme"},
            "placeholders": {
                "host": "acme.saasoptics.com",
                "schema": "https",
                "extra": '{"account": "acme"}',
            },
        },
    }


def _rapidpro() -> dict[str, Any]:
    return {
        "connection-type": "rapidpro",
        "hook-class-name": "crm_sync.hooks.rapidpro.RapidProHook",
        "hook-name": "RapidPro",
        "ui-field-behaviour": {
            "hidden-fields": ["login"],
            "relabeling": {"password": "API token", "schema": "Scheme"},
            "placeholders": {"host": "rapidpro.io", "schema": "https", "extra": '{"org": "GP Connect"}'},
        },
    }


def _whatsapp() -> dict[str, Any]:
    return {
        "connection-type": "whatsapp",
        "hook-class-name": "crm_sync.hooks.whatsapp.WhatsAppHook",
        "hook-name": "WhatsApp (Turn / On-Premises)",
        "ui-field-behaviour": {
            "hidden-fields": [],
            "relabeling": {"login": "User (On-Premises)", "password": "Password or Turn token"},
            "placeholders": {"host": "whatsapp.turn.io", "schema": "https", "extra": '{"auth": "token"}'},
        },
    }


def _marketo() -> dict[str, Any]:
    return {
        "connection-type": "marketo",
        "hook-class-name": "crm_sync.hooks.marketo.MarketoHook",
        "hook-name": "Marketo",
        "ui-field-behaviour": {
            "hidden-fields": ["schema", "port"],
            "relabeling": {"host": "Instance URL", "login": "Client ID", "password": "Client secret"},
            "placeholders": {"host": "https://123-ABC-456.mktorest.com", "extra": '{"daily_quota": 50000}'},
        },
    }


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow's ProvidersManager expects."""
    return {
        "package-name": "crm-sync",
        "name": "crm_sync",
        "description": "Sync engine, hooks and operators keeping CRM, messaging and billing tools in sync.",
        "versions": [_VERSION],
        "connection-types": [
            _staging(),
            _rapidpro(),
            _whatsapp(),
            _maxio(),
            _maxio_core(),
            _marketo(),
            _pipedrive(),
            _mobile_commons(),
        ],
    }


def _pipedrive() -> dict[str, Any]:
    return {
        "connection-type": "pipedrive",
        "hook-class-name": "crm_sync.hooks.pipedrive.PipedriveHook",
        "hook-name": "Pipedrive",
        "ui-field-behaviour": {
            "hidden-fields": ["login", "schema", "port"],
            "relabeling": {"host": "Company URL", "password": "API token"},
            "placeholders": {"host": "https://acme.pipedrive.com", "extra": '{"daily_write_limit": 10000}'},
        },
    }


def _mobile_commons() -> dict[str, Any]:
    return {
        "connection-type": "mobile_commons",
        "hook-class-name": "crm_sync.hooks.mobile_commons.MobileCommonsHook",
        "hook-name": "Mobile Commons",
        "ui-field-behaviour": {
            "hidden-fields": [],
            "relabeling": {"login": "Login e-mail", "host": "Host (empty: secure.mcommons.com)"},
            "placeholders": {
                "schema": "https",
                "extra": '{"company": "<company key>", "max_concurrent": 20}',
            },
        },
    }
