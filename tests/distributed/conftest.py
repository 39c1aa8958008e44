"""Fixtures of the distributed test mode: the sandbox and a real Airflow on CeleryExecutor."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from sandbox.testing import start_sandbox
from tests.distributed.stack import CeleryStack, Databases

RESULTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "distributed"


def _admin_url() -> str:
    url = os.environ.get("CRM_SYNC_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except sa.exc.OperationalError as exc:
        pytest.fail(f"the distributed test needs PostgreSQL at {url}: {exc}")
    return url


def _redis_url() -> str:
    import redis

    url = os.environ.get("CRM_SYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")
    try:
        redis.Redis.from_url(url).ping()
    except redis.RedisError as exc:
        pytest.fail(f"the distributed test needs Redis at {url} (make test-distributed starts it): {exc}")
    return url


@pytest.fixture(scope="session")
def databases() -> Databases:
    return Databases(_admin_url())


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    # Every service the distributed tests need, started before the stack so that the
    # components' environment carries all their connections.
    services = ["salesforce", "s3", "rapidpro", "whatsapp", "maxio", "maxio_core"]
    with start_sandbox(services, tmp_dir=tmp_path_factory.mktemp("sandbox")) as running:
        yield running


@pytest.fixture(scope="session")
def aou_world(sandbox: Any, databases: Databases) -> dict[str, Any]:
    """Seed Salesforce and an AOU source in PostgreSQL (nothing on a worker's disk)."""
    from tests.distributed.aou_world import build

    return build(sandbox, databases)


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, databases: Databases, sandbox: Any, aou_world: dict[str, Any]
) -> Iterator[CeleryStack]:
    extra = {**sandbox.conn_env(), **aou_world["env"]}
    running = CeleryStack(
        home=tmp_path_factory.mktemp("airflow"), databases=databases, extra_env=extra, redis_url=_redis_url()
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "timings.json").write_text(json.dumps(running.timings, indent=2))
        for name, component in running.components.items():
            if component.log.exists():
                (RESULTS / f"{name}.log").write_bytes(component.log.read_bytes()[-200_000:])
