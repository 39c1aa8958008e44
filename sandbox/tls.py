"""A throwaway certificate authority for the HTTPS emulators (generated at every start)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class ServerCert:
    """Files uvicorn needs to serve TLS, plus the CA clients must trust."""

    cert_path: Path
    key_path: Path
    ca_path: Path


class SandboxCA:
    """One CA per sandbox run; it signs a loopback certificate for each TLS service."""

    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="crm_sync sandbox")

    def issue(self, service: str, data_dir: Path, ca_path: Path) -> ServerCert:
        """Write ``<service>-cert.pem``/``-key.pem`` and the CA bundle at ``ca_path``."""
        data_dir.mkdir(parents=True, exist_ok=True)
        leaf = self._ca.issue_cert("127.0.0.1", "localhost")
        cert_path = data_dir / f"{service}-cert.pem"
        key_path = data_dir / f"{service}-key.pem"
        leaf.cert_chain_pems[0].write_to_path(str(cert_path))
        for blob in leaf.cert_chain_pems[1:]:
            blob.write_to_path(str(cert_path), append=True)
        leaf.private_key_pem.write_to_path(str(key_path))
        key_path.chmod(0o600)
        self._ca.cert_pem.write_to_path(str(ca_path))
        return ServerCert(cert_path=cert_path, key_path=key_path, ca_path=ca_path)
