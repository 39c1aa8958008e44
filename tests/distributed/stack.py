"""A real Airflow 3.3 on CeleryExecutor on this machine, configured from docker-compose.yaml.

The environment of every component is docker-compose.yaml's ``x-airflow-common`` block (and
the worker's own block) with only the addresses rewritten for one machine: the compose
service names become loopback ports, the PostgreSQL user becomes the local one, and the
Redis database index becomes a dedicated one. So what this test proves is what users deploy.

Each component runs in its own process group (``start_new_session``) with its own hostname
and log-server port; ``stop()`` kills every group, and any task process that outlived its
worker, whatever happened before.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
POOLS_FILE = ROOT / "config" / "pools.json"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ADMIN = ("admin", "admin")

# Test-only overrides of the compose settings, each for speed, none for correctness:
# detecting a killed worker's task takes the heartbeat timeout (compose: 120 s).
TEST_OVERRIDES = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def compose_environment(service: str = "airflow-worker") -> dict[str, str]:
    """The environment docker-compose.yaml gives ``service`` (common block merged in)."""
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    env = dict(compose["services"][service].get("environment") or {})
    return {str(k): str(v) for k, v in env.items()}


@dataclass
class Databases:
    """Dedicated PostgreSQL databases on the machine's server, recreated for each stack."""

    admin_url: str  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test
    prefix: str = "crm_sync_dist"

    def url(self, name: str, *, driver: str = "psycopg") -> str:
        """The SQLAlchemy URL of database ``<prefix>_<name>``."""
        base = sa.make_url(self.admin_url).set(database=f"{self.prefix}_{name}")
        return base.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)

    def recreate(self, *names: str) -> None:
        """Drop (terminating leftover sessions) and create each database."""
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in names:
                db = f"{self.prefix}_{name}"
                conn.execute(
                    sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
                    {"db": db},
                )
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}"'))
                conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
        engine.dispose()


@dataclass
class Component:
    """One Airflow process group."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it in a new session (its own process group)."""
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [AIRFLOW, *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=ROOT,
            )

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the whole process group; no-op when it is gone."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the group, then SIGKILL what is left."""
        if self.process is None:
            return
        self.kill(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        self.kill(signal.SIGKILL)
        self.process.wait(timeout=timeout)
        self.process = None

    def pids(self) -> set[int]:
        """Every live process in this component's group."""
        if self.process is None:
            return set()
        pgid = self.process.pid
        found = set()
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.info["pid"]) == pgid:
                    found.add(proc.info["pid"])
            except (ProcessLookupError, PermissionError):
                continue
        return found

    def tail(self, lines: int = 40) -> str:
        """The end of its log, for failure messages."""
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class CeleryStack:
    """api-server, scheduler, dag-processor, triggerer and N Celery workers."""

    home: Path
    databases: Databases
    extra_env: Mapping[str, str]
    workers: int = 2
    redis_url: str = "redis://127.0.0.1:6379/7"
    api_port: int = field(default_factory=free_port)
    components: dict[str, Component] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    _token: str | None = None

    # -- configuration -------------------------------------------------------------------
    def environment(self, service: str) -> dict[str, str]:
        """docker-compose's environment for ``service``, addresses rewritten for this machine."""
        env = {k: _localise(v, self) for k, v in compose_environment(service).items()}
        env.pop("AIRFLOW_CONFIG", None)
        env.pop("DUMB_INIT_SETSID", None)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN[0]}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                **TEST_OVERRIDES,
            }
        )
        env.update(self.extra_env)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST"))}
        return {**base, **env}

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Migrate, import the pools, start every component and wait until all are healthy."""
        started = time.perf_counter()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN[0]: ADMIN[1]}))
        self.databases.recreate("airflow", "staging")
        _flush_redis(self.redis_url)
        env = self.environment("airflow-init")
        self._run(["db", "migrate"], env)
        self._run(["pools", "import", str(POOLS_FILE)], env)
        self.timings["migrate_and_pools_s"] = time.perf_counter() - started

        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            service = "airflow-apiserver" if name == "api-server" else f"airflow-{name}"
            comp_env = self.environment(service)
            if name == "triggerer":
                comp_env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(free_port())
            if name == "scheduler":
                comp_env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"] = str(free_port())
            self._add(name, [name], comp_env)
        for index in range(1, self.workers + 1):
            self.start_worker(index)
        self.wait_healthy()
        self.timings["start_to_healthy_s"] = time.perf_counter() - started

    def start_worker(self, index: int) -> None:
        """Start (or restart) Celery worker ``w<index>`` with its own hostname and log port."""
        name = f"worker{index}"
        env = self.environment("airflow-worker")
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        env["CRM_SYNC_WORKER_TAG"] = f"w{index}"
        self._add(name, ["celery", "worker", "-H", f"w{index}@%h"], env)

    def _add(self, name: str, args: list[str], env: dict[str, str]) -> None:
        component = Component(name, args, env, self.home / f"{name}.log")
        component.start()
        self.components[name] = component

    def _run(self, args: list[str], env: dict[str, str]) -> None:
        proc = subprocess.run(
            [AIRFLOW, *args], env=env, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
        )
        if proc.returncode:
            raise RuntimeError(
                f"airflow {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )

    def stop(self) -> None:
        """Kill every component's process group and any task process left behind."""
        leftovers = self.task_pids()
        for component in self.components.values():
            component.stop()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def task_pids(self) -> set[int]:
        """PIDs of task processes Airflow recorded (they run in their own process groups)."""
        try:
            rows = self.sql("SELECT pid FROM task_instance WHERE pid IS NOT NULL")
        except sa.exc.SQLAlchemyError:
            return set()
        return {int(r[0]) for r in rows if psutil.pid_exists(int(r[0]))}

    def wait_healthy(self, timeout: float = 180) -> None:
        """Until the health endpoint says all is well and every worker said ``ready``."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                last = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
                healthy = all(
                    (last.get(part) or {}).get("status") == "healthy"
                    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                )
            except (requests.RequestException, ValueError):
                healthy = False
            workers_ready = all(
                " ready." in c.log.read_text(errors="replace")
                for n, c in self.components.items()
                if n.startswith("worker") and c.log.exists()
            )
            if healthy and workers_ready:
                return
            time.sleep(1)
        raise TimeoutError(f"stack not healthy after {timeout} s: {last}\n{self.logs_tail()}")

    def _check_alive(self) -> None:
        for component in self.components.values():
            if component.process is not None and component.process.poll() is not None:
                raise RuntimeError(f"{component.name} exited early:\n{component.tail()}")

    def logs_tail(self) -> str:
        """The end of every component's log."""
        return "\n".join(f"--- {n}\n{c.tail(15)}" for n, c in self.components.items())

    # -- REST API ------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The api-server's address."""
        return f"http://127.0.0.1:{self.api_port}"

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API as the admin user (token from ``POST /auth/token``)."""
        if self._token is None:
            answer = requests.post(
                f"{self.base_url}/auth/token",
                json={"username": ADMIN[0], "password": ADMIN[1]},
                timeout=30,
            )
            answer.raise_for_status()
            self._token = answer.json()["access_token"]
        response = requests.request(
            method,
            f"{self.base_url}{path}",
            headers={"Authorization": f"Bearer {self._token}"},
            timeout=30,
            **kwargs,
        )
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict[str, Any]:
        """Until the dag-processor has serialised ``dag_id``; its details."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return dict(self.api("GET", f"/api/v2/dags/{dag_id}"))
            except RuntimeError:
                self._check_alive()
                time.sleep(1)
        raise TimeoutError(f"{dag_id} never appeared\n{self.logs_tail()}")

    def unpause(self, dag_id: str) -> None:
        """Let the scheduler run it."""
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, *, logical_date: str | None, conf: Mapping[str, Any] | None = None) -> str:
        """Trigger a run through the REST API; returns its run id."""
        body = {"logical_date": logical_date, "conf": dict(conf or {})}
        return str(self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        """Until the run ends; returns its state."""
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in {"success", "failed"}:
                return state
            self._check_alive_except_workers()
            time.sleep(1)
        raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout} s\n{self.logs_tail()}")

    def _check_alive_except_workers(self) -> None:
        for name, component in self.components.items():
            if name.startswith("worker"):
                continue
            if component.process is not None and component.process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{component.tail()}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        """task_id -> state of one run."""
        tis = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def xcom(self, dag_id: str, run_id: str, task_id: str) -> Any:
        """A task's return value, read over the API."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
        return self.api("GET", path, params={"deserialize": "true"})["value"]

    # -- metadata database -----------------------------------------------------------------
    def sql(self, statement: str, **params: Any) -> list[Any]:
        """Rows of a read-only query against Airflow's metadata database."""
        engine = sa.create_engine(self.databases.url("airflow"))
        try:
            with engine.connect() as conn:
                return list(conn.execute(sa.text(statement), params))
        finally:
            engine.dispose()

    def celery_evidence(self, dag_id: str, run_id: str) -> list[tuple[str, int, str, str, str]]:
        """(task_id, try, celery task id, celery status, worker) for every try of a run.

        The join is the proof: ``external_executor_id`` is the Celery task id, and the result
        backend (same database) recorded which worker ran it (``result_extended``).
        """
        rows = self.sql(
            """
            SELECT t.task_id, t.try_number, t.external_executor_id, m.status, m.worker
            FROM (
                SELECT task_id, try_number, external_executor_id FROM task_instance
                 WHERE dag_id = :dag AND run_id = :run
                UNION ALL
                SELECT task_id, try_number, external_executor_id FROM task_instance_history
                 WHERE dag_id = :dag AND run_id = :run
            ) t
            LEFT JOIN celery_taskmeta m ON m.task_id = t.external_executor_id
            ORDER BY t.task_id, t.try_number
            """,
            dag=dag_id,
            run=run_id,
        )
        return [tuple(r) for r in rows]

    def worker_of(self, pid: int) -> str | None:
        """Which worker component a (task) process descends from."""
        try:
            chain = {p.pid for p in psutil.Process(pid).parents()} | {pid}
        except psutil.NoSuchProcess:
            return None
        for name, component in self.components.items():
            if name.startswith("worker") and chain & component.pids():
                return name
        return None


def _localise(value: str, stack: CeleryStack) -> str:
    """Rewrite one compose value's service addresses to this machine's."""
    airflow_db = stack.databases.url("airflow")
    value = re.sub(r"postgresql\+psycopg://airflow:airflow@postgres/airflow", airflow_db, value)
    value = re.sub(
        r"db\+postgresql://airflow:airflow@postgres/airflow",
        "db+" + stack.databases.url("airflow", driver="psycopg2").replace("+psycopg2", ""),
        value,
    )
    value = re.sub(
        r"postgresql://airflow:airflow@postgres/crm_sync",
        stack.databases.url("staging", driver="psycopg2").replace("+psycopg2", ""),
        value,
    )
    value = re.sub(r"redis://[^ ]*@redis:6379/\d+", stack.redis_url, value)
    return value.replace("http://airflow-apiserver:8080", stack.base_url)


def _flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()
