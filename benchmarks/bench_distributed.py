"""The distributed test mode's timings: a real CeleryExecutor stack, two runs, a killed worker.

Runs ``tests/distributed`` (``make test-distributed``) and turns the timings it records in
``test-artifacts/distributed/timings.json`` into a table.

    .venv/bin/python benchmarks/bench_distributed.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMINGS = ROOT / "test-artifacts" / "distributed" / "timings.json"


def main() -> int:
    """Run the distributed tests once and write their timings as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    TIMINGS.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/distributed", "-m", "distributed", "-q"],
        cwd=ROOT,
        check=False,
    )
    total = time.perf_counter() - started
    if proc.returncode:
        return proc.returncode
    timings = json.loads(TIMINGS.read_text())
    per_worker = ", ".join(f"{w}: {n}" for w, n in sorted(timings.get("tasks_per_worker", {}).items()))
    rows = [
        ("`airflow db migrate` + pools import", f"{timings['migrate_and_pools_s']:.0f} s"),
        ("from nothing to 6 components healthy (incl. the above)", f"{timings['start_to_healthy_s']:.0f} s"),
        ("Contacts written when the worker was killed", f"{timings['killed_after_contacts']:,} of 1,024"),
        (
            "kill → run success (heartbeat timeout 30 s + retry delay + rerun)",
            f"{timings['kill_to_run_end_s']:.0f} s",
        ),
        ("task tries per worker over both runs", per_worker),
        ("whole distributed test (stack up, 2 runs, kill, teardown)", f"{total:.0f} s"),
    ]
    table = "\n".join(["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    if args.out:
        args.out.write_text(table + "\n")
    else:
        print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
