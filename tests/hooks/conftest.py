"""Hook contract fixtures: one in-process Salesforce emulator per session, reset per test.

The hook reads ``salesforce_default`` from AIRFLOW_CONN_SALESFORCE_DEFAULT, exactly as in
production; nothing of ours is patched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.environ import environ_set


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The running sandbox with the Salesforce emulator; its connections in os.environ."""
    from sandbox.testing import start_sandbox

    started = start_sandbox(["salesforce"], tmp_dir=Path(tmp_path_factory.mktemp("sandbox")))
    env = started.conn_env()
    try:
        with environ_set(env):
            yield started
    finally:
        started.stop()


@pytest.fixture
def sf_admin(sandbox: Any) -> Any:
    """The Salesforce emulator's admin client, after a reset (data, faults, config, counts)."""
    admin = sandbox.admin("salesforce")
    admin.reset()
    admin.config(bulk_processing_delay_s=0.05)
    return admin
