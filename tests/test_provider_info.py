"""The distribution's provider entry point registers crm_sync's connection types with Airflow."""

from __future__ import annotations

from importlib.metadata import entry_points

from airflow.sdk._shared.module_loading import import_string

from crm_sync.provider_info import get_provider_info


def test_entry_point_is_installed_and_points_at_get_provider_info():
    names = {ep.value for ep in entry_points(group="apache_airflow_provider") if ep.dist.name == "crm-sync"}
    assert names == {"crm_sync.provider_info:get_provider_info"}


def test_every_connection_type_names_an_importable_hook_with_that_conn_type():
    info = get_provider_info()
    assert info["package-name"] == "crm-sync"  # must equal the distribution name
    assert info["connection-types"]
    for conn in info["connection-types"]:
        hook = import_string(conn["hook-class-name"])
        assert hook.conn_type == conn["connection-type"]
        assert hook.default_conn_name


def test_providers_manager_lists_the_staging_connection_type():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "crm-sync" in manager.providers
    assert "crm_sync_staging" in manager.connection_form_widgets or "crm_sync_staging" in manager.hooks
