"""docker-compose.yaml cannot run here (no Docker engine); check its structure instead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
SERVICES = COMPOSE["services"]
AIRFLOW_SERVICES = [name for name in SERVICES if name.startswith("airflow-")]


def _env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service]["environment"].items()}


def test_has_every_component_of_a_celery_deployment():
    assert {"postgres", "redis"} <= set(SERVICES)
    assert set(AIRFLOW_SERVICES) == {
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
    }
    commands = {name: SERVICES[name].get("command") for name in AIRFLOW_SERVICES}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_share_the_celery_settings(service: str):
    env = _env(service)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"], (
        "a fixed JWT secret keeps scheduler and api-server in agreement"
    )
    assert "AIRFLOW_CONN_CRM_SYNC_STAGING" in env


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_every_mounted_path_exists(service: str):
    volumes = SERVICES[service].get("volumes", [])
    targets = {v.split(":")[1] for v in volumes}
    assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= targets
    for volume in volumes:
        host = volume.split(":")[0]
        if host.startswith("./") and host != "./logs":  # logs/ is created by airflow-init
            assert (ROOT / host).exists(), f"{service} mounts {host}, which does not exist"


def test_image_is_built_from_the_pinned_requirements():
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:(\S+)", dockerfile, re.M)
    assert base, "Dockerfile must start from the official image"
    pins = dict(
        line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line
    )
    assert base.group(1).startswith(pins["apache-airflow"]), "image tag and pinned Airflow must agree"
    assert "requirements.txt" in dockerfile
    for name in AIRFLOW_SERVICES:
        assert SERVICES[name]["build"] == "."


def test_celery_is_pinned_below_the_release_that_breaks_the_provider():
    pins = dict(
        line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line
    )
    major, minor = (int(x) for x in pins["celery"].split(".")[:2])
    assert (major, minor) < (5, 7)
    assert "apache-airflow-providers-celery" in pins


def test_pools_file_holds_every_pool_the_dags_use_and_compose_imports_it():
    import json

    from crm_sync.dag_support import POOLS

    pools = json.loads((ROOT / "config" / "pools.json").read_text())
    assert set(pools) == set(POOLS.values())
    assert all(p["slots"] >= 1 and p["description"] for p in pools.values())
    init = "\n".join(SERVICES["airflow-init"]["command"])
    assert "airflow pools import /opt/airflow/config/pools.json" in init
