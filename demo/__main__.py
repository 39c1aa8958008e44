"""`python -m demo`: every integration end to end against the sandbox, with a table per DAG."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from demo.airflow_local import ROOT, configure


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

    from demo import aou
    from demo.airflow_local import reset_metadata_db
    from demo.report import render
    from sandbox.testing import start_sandbox

    started = time.perf_counter()
    out = sys.stdout
    out.write("Setting up Airflow's metadata database and the sandbox emulators...\n")
    reset_metadata_db()
    with start_sandbox(["salesforce"], tmp_dir=args.workdir / "sandbox") as sandbox:
        os.environ.update(sandbox.conn_env())
        rows, note = aou.run(sandbox, args.workdir, participants=args.participants)
        out.write("\n" + render(f"aou_salesforce_sync: {note}", rows) + "\n")
    out.write(
        f"\nDone in {time.perf_counter() - started:.0f} s. Ledger: {args.workdir / 'staging.db'} "
        "(tables sync_run, sync_log; views contact_log, journey_log).\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
