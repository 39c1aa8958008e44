"""Run every benchmark and write their tables into one Markdown file (`make bench`)."""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (title, script, extra args). Each script prints nothing we need; it writes its table to --out.
BENCHES: list[tuple[str, str, list[str]]] = [
    ("Engine: stage + diff, 1,000,000 records against a 1,000,000-row state", "bench_engine.py", []),
    ("Salesforce hook: upsert through Collections and Bulk API 2.0", "bench_salesforce.py", []),
    (
        "aou_salesforce_sync end to end: 100,000 participants, first load and a 1%-changed day",
        "bench_aou.py",
        [],
    ),
    ("gpconnect_rapidpro_import: a 10,000-row workbook end to end", "bench_gpconnect.py", []),
    ("salesforce_maxio_billing: provisioning 200 closed-won opportunities", "bench_maxio_billing.py", []),
    (
        "marketo_pipedrive_sync: changed leads and deals in one window, then the same window again",
        "bench_marketo_pipedrive.py",
        [],
    ),
    ("salesforce_mobile_commons_nightly: 50,000 Salesforce Contacts", "bench_mobile_commons.py", []),
    (
        "Distributed: CeleryExecutor stack from docker-compose settings, two workers, one killed mid-push",
        "bench_distributed.py",
        [],
    ),
]


def _machine() -> str:
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GiB"
        cores = psutil.cpu_count()
    except ImportError:
        mem, cores = "?", "?"
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {cores} cores, {mem}, Python {platform.python_version()}"


def _previous_sections(path: Path) -> dict[str, str]:
    """Title -> body of each section of an existing report (empty when there is none)."""
    if not path.exists():
        return {}
    found: dict[str, str] = {}
    title = None
    body: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            if title:
                found[title] = "\n".join(body).strip()
            title, body = line[3:].strip(), []
        elif title:
            body.append(line)
    if title:
        found[title] = "\n".join(body).strip()
    return found


def main() -> int:
    """Run the benchmarks named on the command line (all by default) and write the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--only", nargs="*", help="script names to run (default: all)")
    args = parser.parse_args()

    sections = [
        "# Benchmark results",
        "",
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {_machine()}.",
        "Each figure comes from one run; rerun `make bench` to refresh them.",
        "",
    ]
    failed = 0
    previous = _previous_sections(args.out) if args.only else {}
    for title, script, extra in BENCHES:
        if args.only and script not in args.only:
            # A partial run keeps the other benchmarks' last figures.
            if title in previous:
                sections += [f"## {title}", "", previous[title], ""]
            continue
        if not (HERE / script).exists():
            continue
        with tempfile.NamedTemporaryFile("r", suffix=".md") as table:
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, str(HERE / script), "--out", table.name, *extra], check=False
            )
            elapsed = time.perf_counter() - started
            body = Path(table.name).read_text().strip()
        sections += [f"## {title}", ""]
        if proc.returncode != 0:
            failed += 1
            note = f"**FAILED** (exit {proc.returncode}) after {elapsed:.0f} s; see the console output."
            sections += [note, ""]
        else:
            sections += [body, "", f"_(`benchmarks/{script}`, {elapsed:.0f} s including set-up)_", ""]
    args.out.write_text("\n".join(sections))
    print(f"wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
