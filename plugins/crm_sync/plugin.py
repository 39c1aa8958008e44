"""crm_sync's AirflowPlugin: every web surface of the project in one place.

Loaded through the thin ``plugins/crm_sync_plugin.py`` (the plugin loader runs every .py
file under plugins/ as a top-level module, so ``crm_sync/`` is in ``plugins/.airflowignore``;
reference/airflow-plugins.md section 3). Add further FastAPI apps (webhook receivers) to
``fastapi_apps`` with their own prefix; plugin apps must authenticate themselves.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from crm_sync.dashboard.app import app as dashboard_app
from crm_sync.webhooks.pipedrive_app import app as pipedrive_webhook_app

__all__ = ["CrmSyncPlugin"]

DASHBOARD_PREFIX = "/crm-sync"
PIPEDRIVE_WEBHOOK_PREFIX = "/crm-sync-webhooks/pipedrive"


class CrmSyncPlugin(AirflowPlugin):
    """The CRM Sync dashboard (Browse -> CRM Sync) and the Pipedrive webhook receiver.

    The dashboard, its JSON endpoints and /crm-sync/metrics live under ``/crm-sync``; the
    receiver takes ``POST /crm-sync-webhooks/pipedrive/events`` with basic auth.
    """

    name = "crm_sync"
    fastapi_apps = [
        {"app": dashboard_app, "url_prefix": DASHBOARD_PREFIX, "name": "CRM Sync dashboard"},
        {
            "app": pipedrive_webhook_app,
            "url_prefix": PIPEDRIVE_WEBHOOK_PREFIX,
            "name": "CRM Sync Pipedrive webhooks",
        },
    ]
    external_views = [
        {
            "name": "CRM Sync",
            # Relative: resolved against the UI's <base href>, so it works under a sub-path too.
            "href": "crm-sync/dashboard",
            "url_route": "crm-sync",
            "category": "browse",
        }
    ]
