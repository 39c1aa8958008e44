"""Parse one DAG file in a fresh interpreter and report its I/O at import and its parse time.

Run as a script by tests/dags/test_dag_integrity.py: ``python _parse_probe.py DAG_FILE``.
Prints one JSON line: dag ids, import errors, parse seconds, and every file opened outside
the interpreter, the installed packages and the project's code, every socket, subprocess
and database connection made while the DAG file was parsed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

dag_file = Path(sys.argv[1]).resolve()
root = dag_file.parents[1]

# Airflow's own start-up (config, settings) is not the DAG's doing: import it first.
from airflow.dag_processing.dagbag import DagBag  # noqa: E402

allowed_dirs = [Path(p).resolve() for p in {sys.prefix, sys.base_prefix, sys.exec_prefix}]
code_dirs = [root / "dags", root / "plugins"]
events: list[str] = []


def _is_allowed(path: Path) -> bool:
    if any(path.is_relative_to(d) for d in allowed_dirs):
        return True
    if any(path.is_relative_to(d) for d in code_dirs):
        # Importing code reads .py files; reading data files at import is what we forbid.
        return path.suffix in {".py", ".pyc", ""} or path.name == ".airflowignore"
    return str(path).startswith(("/dev/", "/proc/", "/sys/"))


def _audit(event: str, args: tuple) -> None:
    if event == "open":
        target = args[0]
        if isinstance(target, int):
            return
        path = Path(os.fsdecode(target)).resolve()
        if not _is_allowed(path):
            events.append(f"open {path}")
    elif event in {
        "socket.connect",
        "socket.getaddrinfo",
        "subprocess.Popen",
        "sqlite3.connect",
        "os.system",
    }:
        events.append(f"{event} {args[:2]!r}")


sys.addaudithook(_audit)
started = time.perf_counter()
bag = DagBag(dag_folder=str(dag_file), bundle_name="dags-folder")
elapsed = time.perf_counter() - started
sys.stdout.write(
    json.dumps(
        {
            "dag_ids": sorted(bag.dag_ids),
            "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
            "parse_seconds": round(elapsed, 3),
            "io": events,
        }
    )
    + "\n"
)
