"""``python -m sandbox up|status|down`` in a subprocess, on non-default ports and a temporary dir."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.admin_client import sandbox_session
from sandbox.connections import read_env_file

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _process_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return False
    return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sf_port, s3_port = _free_port(), _free_port()
    up = _cli(
        "up",
        "--dir",
        str(state),
        "--services",
        "salesforce,s3",
        "--port-salesforce",
        str(sf_port),
        env={"CRM_SYNC_SANDBOX_PORT_S3": str(s3_port)},
    )
    assert up.returncode == 0, up.stderr + up.stdout
    pid = int((state / "sandbox.pid").read_text())
    try:
        assert os.getpgid(pid) == pid  # its own process group
        env = read_env_file(state / "connections.env")
        sf_conn = json.loads(env["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
        assert sf_conn["extra"]["instance_url"] == f"https://127.0.0.1:{sf_port}"
        assert sf_conn["extra"]["ca_bundle"] == str(state / "salesforce-ca.pem")
        assert (
            json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"]
            == f"http://127.0.0.1:{s3_port}"
        )
        # The file is shell-sourceable and yields the same JSON.
        shell = subprocess.run(
            [
                "bash",
                "-c",
                f"set -a; . {state / 'connections.env'}; set +a; "
                'printf %s "$AIRFLOW_CONN_SALESFORCE_DEFAULT"',
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(shell.stdout) == sf_conn
        with sandbox_session(Path(sf_conn["extra"]["ca_bundle"])) as session:
            assert (
                session.get(f"https://127.0.0.1:{sf_port}/_sandbox/health", timeout=5).json()["status"]
                == "ok"
            )

        status = _cli("status", "--dir", str(state))
        assert status.returncode == 0, status.stdout
        assert "salesforce" in status.stdout
        assert status.stdout.count(" ok ") == 2

        again = _cli("up", "--dir", str(state))
        assert again.returncode == 1
        assert "already running" in again.stdout
    finally:
        down = _cli("down", "--dir", str(state))
    assert down.returncode == 0
    assert not _process_alive(pid)
    assert not (state / "connections.env").exists()
    assert _cli("down", "--dir", str(state)).returncode == 0  # idempotent
    assert _cli("status", "--dir", str(state)).returncode == 1


def test_unknown_service_is_a_usage_error(tmp_path: Path) -> None:
    result = _cli("up", "--dir", str(tmp_path), "--services", "nosuch")
    assert result.returncode == 2
    assert "unknown sandbox service 'nosuch'" in result.stderr
    assert not (tmp_path / "sandbox.pid").exists()
