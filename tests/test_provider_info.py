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


def test_providers_manager_gives_every_connection_type_a_form():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "crm-sync" in manager.providers
    registered = {conn["connection-type"] for conn in get_provider_info()["connection-types"]}
    assert registered >= {"crm_sync_staging", "rapidpro", "whatsapp", "maxio", "maxio_core"}
    assert registered <= set(manager.field_behaviours), "the UI shows a form for each of our types"
