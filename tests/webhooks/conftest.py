"""Fixtures for the webhook receivers: Airflow's API app with the plugin mounted (as the dashboard's)."""

from tests.airflow_support import airflow_db  # noqa: F401 - fixture
from tests.dashboard.conftest import login_api  # noqa: F401 - fixture
