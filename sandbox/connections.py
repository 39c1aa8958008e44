"""Render Airflow connections of started services as ``AIRFLOW_CONN_*`` variables."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sandbox.spec import Endpoint, ServiceSpec


def env_var_name(conn_id: str) -> str:
    """``salesforce_default`` -> ``AIRFLOW_CONN_SALESFORCE_DEFAULT``."""
    return "AIRFLOW_CONN_" + conn_id.upper()


def conn_env(services: Iterable[tuple[ServiceSpec, Endpoint]]) -> dict[str, str]:
    """``{AIRFLOW_CONN_<ID>: connection JSON}`` for every connection of every service."""
    env: dict[str, str] = {}
    for spec, endpoint in services:
        rendered: dict[str, dict[str, Any]] = spec.connections(endpoint)
        for conn_id, conn in rendered.items():
            env[env_var_name(conn_id)] = json.dumps(conn, sort_keys=True)
    return env


def write_env_file(path: Path, env: dict[str, str]) -> Path:
    """Write a shell-sourceable file: one ``NAME='<json>'`` line per variable."""
    lines = ["# Written by `python -m sandbox up`; load with: set -a; . <this file>; set +a"]
    lines += [f"{name}={shlex.quote(value)}" for name, value in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a file written by :func:`write_env_file`."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, quoted = line.partition("=")
        parts = shlex.split(quoted)
        env[name] = parts[0] if parts else ""
    return env
