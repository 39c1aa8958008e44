"""Fixtures for the Maxio hook tests: both emulators once per module, fresh state per test.

Load them with ``pytest_plugins = ("tests.hooks.maxio_fixtures",)`` in a test module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from crm_sync.http import HttpPolicy
from sandbox.testing import Sandbox, start_sandbox


@pytest.fixture(scope="module")
def maxio_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Maxio Advanced Billing and Core emulators on ephemeral ports."""
    with start_sandbox(["maxio", "maxio_core"], tmp_dir=tmp_path_factory.mktemp("maxio")) as sandbox:
        yield sandbox


@pytest.fixture
def maxio_env(maxio_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """Reset both emulators and point ``maxio_default``/``maxio_core_default`` at them."""
    for service in ("maxio", "maxio_core"):
        maxio_sandbox.admin(service).reset()
    for name, value in maxio_sandbox.conn_env().items():
        monkeypatch.setenv(name, value)
    return maxio_sandbox


@pytest.fixture
def maxio_admin(maxio_env: Sandbox) -> Any:
    """Admin client of the Advanced Billing emulator."""
    return maxio_env.admin("maxio")


@pytest.fixture
def core_admin(maxio_env: Sandbox) -> Any:
    """Admin client of the Core emulator."""
    return maxio_env.admin("maxio_core")


@pytest.fixture
def fast_policy() -> HttpPolicy:
    """The real retry rules without waiting between attempts."""
    return HttpPolicy(
        max_retries=2,
        backoff_factor=0,
        backoff_jitter=0,
        connect_timeout=2,
        read_timeout=10,
        non_idempotent_retry_statuses=frozenset({429}),
        sleep=lambda _: None,
    )
