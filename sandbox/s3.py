"""S3, served by moto's own threaded server (not an ASGI emulator), with one bucket ready."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sandbox.spec import Endpoint, ServiceSpec

BUCKET = "crm-sync-sandbox"
REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


class MotoServer:
    """moto's ``ThreadedMotoServer`` bound to loopback."""

    def __init__(self, host: str, port: int) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO to stderr; the sandbox's callers have their own logs.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._server.start()
        self.port: int = self._server.get_host_and_port()[1]

    def stop(self) -> None:
        """Shut the werkzeug server down and join its thread."""
        self._server.stop()


def launch(host: str, port: int, data_dir: Path) -> MotoServer:
    """Start moto on ``host:port`` (0 = ephemeral)."""
    return MotoServer(host, port)


def s3_client(endpoint_url: str) -> Any:
    """A boto3 S3 client pointed at the sandbox."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )


def create_bucket(endpoint: Endpoint) -> None:
    """Create the sandbox bucket (idempotent)."""
    client = s3_client(endpoint.url)
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    if BUCKET not in existing:
        client.create_bucket(Bucket=BUCKET)


def connections(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """``aws_default`` pointed at moto (reference/airflow3.md section 4)."""
    return {
        "aws_default": {
            "conn_type": "aws",
            "login": ACCESS_KEY,
            "password": SECRET_KEY,
            "extra": {"region_name": REGION, "endpoint_url": endpoint.url},
        }
    }


SERVICE = ServiceSpec(
    name="s3",
    default_port=5055,
    tls=False,
    connections=connections,
    launcher=launch,
    health_path="/moto-api/data.json",
    after_start=create_bucket,
    description=f"AWS S3 via moto's server; bucket {BUCKET} is created at start",
)


class MotoAdmin:
    """The admin surface moto offers: health and a full reset (the bucket is recreated)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    def health(self) -> dict[str, Any]:
        """Probe moto's dashboard data."""
        from sandbox.admin_client import sandbox_session

        with sandbox_session(None) as session:
            response = session.get(self.endpoint.url + SERVICE.health_path, timeout=10)
        response.raise_for_status()
        return {"status": "ok", "service": SERVICE.name}

    def reset(self) -> None:
        """Drop all moto state, then recreate the sandbox bucket."""
        from sandbox.admin_client import sandbox_session

        with sandbox_session(None) as session:
            session.post(self.endpoint.url + "/moto-api/reset", timeout=10).raise_for_status()
        create_bucket(self.endpoint)
