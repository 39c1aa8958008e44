"""The only module Airflow's plugin loader runs from plugins/: it imports crm_sync's plugin."""

from crm_sync.plugin import CrmSyncPlugin

__all__ = ["CrmSyncPlugin"]
