"""Hook contract fixtures: one in-process Salesforce emulator per session, reset per test.

The hook reads ``salesforce_default`` from AIRFLOW_CONN_SALESFORCE_DEFAULT, exactly as in
production; nothing of ours is patched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The running sandbox with the Salesforce emulator; its connections in os.environ."""
    from sandbox.testing import start_sandbox

    started = start_sandbox(["salesforce"], tmp_dir=Path(tmp_path_factory.mktemp("sandbox")))
    env = started.conn_env()
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield started
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        started.stop()


@pytest.fixture
def sf_admin(sandbox: Any) -> Any:
    """The Salesforce emulator's admin client, after a reset (data, faults, config, counts)."""
    admin = sandbox.admin("salesforce")
    admin.reset()
    admin.config(bulk_processing_delay_s=0.05)
    return admin
