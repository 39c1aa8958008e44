"""`python -m demo`: every integration end to end against the sandbox, with a table per DAG."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

from demo.airflow_local import ROOT, configure

# One module per integration, in the order they run: each has SERVICES (the emulators it
# needs), DAG_ID (or DAG_TITLE) and run(sandbox, workdir) -> (rows, note).
PARTS = ["aou", "gpconnect", "maxio_billing", "mobile_commons", "marketo_pipedrive"]


def _title(part: object) -> str:
    return str(getattr(part, "DAG_TITLE", None) or getattr(part, "DAG_ID", None) or part.__name__)


def main() -> int:
    """Set up a throwaway Airflow home and sandbox, run the DAGs, print what they did."""
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("--participants", type=int, default=2000, help="AOU participants to generate")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".demo", help="scratch folder (recreated)")
    args = parser.parse_args()

    shutil.rmtree(args.workdir, ignore_errors=True)
    configure(args.workdir / "airflow", quiet=True)
    staging_url = f"sqlite:///{args.workdir / 'staging.db'}"
    os.environ["AIRFLOW_CONN_CRM_SYNC_STAGING"] = json.dumps(
        {"conn_type": "generic", "extra": {"sqlalchemy_url": staging_url}}
    )

    from demo.airflow_local import reset_metadata_db
    from demo.report import render
    from sandbox.testing import start_sandbox

    parts = [importlib.import_module(f"demo.{name}") for name in PARTS]
    services = sorted({service for part in parts for service in part.SERVICES})
    started = time.perf_counter()
    out = sys.stdout
    out.write("Setting up Airflow's metadata database and the sandbox emulators...\n")
    reset_metadata_db()
    with start_sandbox(services, tmp_dir=args.workdir / "sandbox") as sandbox:
        os.environ.update(sandbox.conn_env())
        for part in parts:
            options = {"participants": args.participants} if part.__name__ == "demo.aou" else {}
            rows, note = part.run(sandbox, args.workdir, **options)
            out.write("\n" + render(f"{_title(part)}: {note}", rows) + "\n")
    out.write(
        f"\nDone in {time.perf_counter() - started:.0f} s. Ledger: {args.workdir / 'staging.db'} "
        "(tables sync_run, sync_log; views contact_log, journey_log).\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
