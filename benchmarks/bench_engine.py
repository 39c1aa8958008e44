"""Benchmark the sync engine's stage and diff steps at scale, one fresh process per backend.

Usage:
    .venv/bin/python benchmarks/bench_engine.py [--rows N] [--backends sqlite,postgres] [--out FILE]

For each backend a worker subprocess (so peak RSS is per backend) builds a ``sync_state`` of
about N rows by bulk insert (not measured), then times ``stage_records`` over N contact-like
records (1% changed, 0.5% new, and 0.5% of the state deleted) and ``compute_diff``. The stage
time includes generating the records, as an extract would; by default they arrive in a
scattered key order (``--order key`` sorts them, which flatters B-tree inserts). The worker
checks the diff counts, so a fast but wrong engine cannot pass. The machine's 1-minute load
average is reported with each figure: on a shared machine it explains most of the variance.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
INTEGRATION = "bench"
ENTITY = "contact"
BAR_SECONDS = 20.0
BAR_MB = 400.0

FIRST = ["Ann", "Bob", "Chloé", "Dan", "Eve", "Femi", "Gao", "Hana", "Ivan", "Jo"]
LAST = ["Smith", "Okafor", "García", "Nguyen", "Müller", "Kowalski", "Haddad", "Ito"]
CITY = ["New York", "Boston", "Chicago", "Denver", "Seattle", "Austin", "Miami"]


def contact(i: int, version: int = 1) -> dict[str, object]:
    """One contact-like record; ``version`` 0 is the older copy behind a 'changed' row."""
    return {
        "Id": f"P{i:09d}",
        "FirstName": FIRST[i % 10],
        "LastName": LAST[i % 8],
        "Email": f"user{i}@example.org",
        "Phone": f"+1555{(i * 7 + version) % 10_000_000:07d}",
        "MailingStreet": f"{i % 997} Main Street",
        "MailingCity": CITY[i % 7],
        "MailingState": "NY",
        "MailingPostalCode": f"{i % 99_999:05d}",
        "Birthdate": date(1950 + i % 50, 1 + i % 12, 1 + i % 28),
        "HasOptedOutOfEmail": i % 7 == 0,
    }


def plan(rows: int) -> dict[str, int]:
    """Key ranges: staged keys [0, rows); the last `new` are not in the state; the state also
    holds `deleted` keys [rows, rows + deleted); every 100th key of the state is changed."""
    new = rows // 200
    deleted = rows // 200
    return {"rows": rows, "new": new, "deleted": deleted, "changed": len(range(0, rows - new, 100))}


def state_rows(rows: int) -> Iterator[tuple[str, str, str, str, str, str]]:
    """The prior sync_state: (integration, entity, key, row_hash, target_id, run_id)."""
    from crm_sync.sync.hashing import row_hash

    shape = plan(rows)
    for i in range(rows - shape["new"]):
        record = contact(i, version=0 if i % 100 == 0 else 1)
        yield INTEGRATION, ENTITY, record["Id"], row_hash(record), f"003{i:015d}", "previous"
    for i in range(rows, rows + shape["deleted"]):
        yield INTEGRATION, ENTITY, f"P{i:09d}", "0" * 64, f"003{i:015d}", "previous"


def staged_records(rows: int, order: str = "shuffled") -> Iterator[dict[str, object]]:
    """This run's extract, in key order or in a scattered order (as unsorted sources give)."""
    if order == "key":
        for i in range(rows):
            yield contact(i)
        return
    step = _coprime_step(rows)
    for i in range(rows):
        yield contact(i * step % rows)  # a cheap permutation of range(rows): memory stays flat


def _coprime_step(rows: int) -> int:
    step = 1_000_003
    while math.gcd(step, rows) != 1:
        step += 2
    return step


def worker(backend: str, rows: int, profile: bool, order: str) -> dict[str, object]:
    """Run one backend in this process and return its figures."""
    import sqlalchemy as sa

    from crm_sync.sync.diff import compute_diff
    from crm_sync.sync.schema import begin_write, sync_state
    from crm_sync.sync.staging import bulk_insert, make_engine, stage_records

    cleanup = None
    if backend == "sqlite":
        tmp = tempfile.TemporaryDirectory(prefix="crm-sync-bench-")
        url = f"sqlite:///{tmp.name}/staging.db"
        cleanup = tmp.cleanup
    elif backend == "postgres":
        name = f"crm_sync_bench_{os.getpid()}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)

        def cleanup() -> None:
            engine.dispose()
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        raise SystemExit(f"unknown backend {backend!r}")
    try:
        engine = make_engine(url)
        setup_start = time.perf_counter()
        columns = ("integration", "entity", "key", "row_hash", "target_id", "run_id")
        with begin_write(engine) as conn:
            state_count = bulk_insert(conn, sync_state, columns, state_rows(rows))
        if backend == "postgres":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE sync_state"))
        setup_s = time.perf_counter() - setup_start

        load_avg = os.getloadavg()[0]
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        start = time.perf_counter()
        result = stage_records(
            engine,
            run_id="bench-run",
            integration=INTEGRATION,
            entity=ENTITY,
            records=staged_records(rows, order),
            key_field="Id",
        )
        staged_at = time.perf_counter()
        counts = compute_diff(engine, run_id="bench-run", integration=INTEGRATION, entity=ENTITY)
        done = time.perf_counter()
        if profiler:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)

        shape = plan(rows)
        expected = {
            "create": shape["new"],
            "update": shape["changed"],
            "delete": shape["deleted"],
            "unchanged": rows - shape["new"] - shape["changed"],
        }
        got = {name: getattr(counts, name) for name in expected}
        if got != expected or result.staged != rows or result.rejected:
            raise SystemExit(f"{backend}: wrong result: diff {got} != {expected}, stage {result}")
        return {
            "backend": backend,
            "rows": rows,
            "order": order,
            "state_rows": state_count,
            "setup_s": round(setup_s, 2),
            "stage_s": round(staged_at - start, 2),
            "diff_s": round(done - staged_at, 2),
            "total_s": round(done - start, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load_avg": load_avg,
            "counts": got,
        }
    finally:
        if cleanup is not None:
            cleanup()


def table(results: list[dict[str, object]]) -> str:
    """Render the figures as a Markdown table."""
    lines = [
        "| backend | rows | order | stage (s) | diff (s) | stage + diff (s) | rows/s "
        "| peak RSS (MB) | load avg | within bar |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        within = r["total_s"] <= BAR_SECONDS and r["peak_rss_mb"] <= BAR_MB
        rate = int(r["rows"] / r["total_s"]) if r["total_s"] else 0
        lines.append(
            f"| {r['backend']} | {r['rows']:,} | {r['order']} | {r['stage_s']:.2f} | {r['diff_s']:.2f} | "
            f"{r['total_s']:.2f} | {rate:,} | {r['peak_rss_mb']:.0f} | {r['load_avg']:.1f} | "
            f"{'yes' if within else 'NO'} |"
        )
    counts = results[0]["counts"] if results else {}
    lines.append("")
    lines.append(
        f"Diff found {counts}. Bar: stage + diff of 1M rows in at most {BAR_SECONDS:.0f} s and "
        f"{BAR_MB:.0f} MB per backend; each backend ran in a fresh process."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse the arguments and run the workers, or be one."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of stage + diff to stderr")
    parser.add_argument(
        "--order", choices=["shuffled", "key"], default="shuffled", help="order of the staged records"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.profile, args.order)))
        return
    results = []
    for backend in [name.strip() for name in args.backends.split(",") if name.strip()]:
        command = [
            sys.executable,
            __file__,
            "--worker",
            backend,
            "--rows",
            str(args.rows),
            "--order",
            args.order,
        ]
        if args.profile:
            command.append("--profile")
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{backend}: {results[-1]}", file=sys.stderr)
    report = table(results)
    print(report)
    if args.out:
        args.out.write_text(f"## Sync engine: stage + diff\n\n{report}")


if __name__ == "__main__":
    main()
