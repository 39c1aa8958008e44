"""What every DAG benchmark shares: the import path, a throwaway Airflow, peak memory, the output."""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB (it includes in-process emulators)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fresh_airflow(name: str) -> Path:
    """A new work folder with its own Airflow home, metadata DB and SQLite staging database.

    Call it before importing Airflow or crm_sync: Airflow reads its configuration on import.
    """
    work = Path(tempfile.mkdtemp(prefix=f"crm-sync-bench-{name}-"))
    from demo.airflow_local import configure

    configure(work / "airflow", quiet=True)
    os.environ["AIRFLOW_CONN_CRM_SYNC_STAGING"] = json.dumps(
        {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{work / 'staging.db'}"}}
    )
    from demo.airflow_local import reset_metadata_db

    reset_metadata_db()
    return work


def emit(lines: list[str], out: Path | None) -> None:
    """Print the Markdown table and, with ``--out``, write it to that file too."""
    table = "\n".join(lines) + "\n"
    sys.stdout.write(table)
    if out:
        out.write_text(table)
