"""``python -m sandbox up|down|status``: run the emulators as one detached process group."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sandbox import registry
from sandbox.admin_client import sandbox_session
from sandbox.connections import conn_env, write_env_file
from sandbox.servers import start_services, stop_services
from sandbox.spec import Endpoint, ServiceSpec

log = logging.getLogger(__name__)

PID_FILE = "sandbox.pid"
SERVICES_FILE = "services.json"
ENV_FILE = "connections.env"
LOG_FILE = "sandbox.log"
UP_TIMEOUT_S = 30.0
DOWN_TIMEOUT_S = 10.0
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=".sandbox", type=Path, help="state directory (default .sandbox)")


def _add_ports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--services", default=None, help="comma-separated services (default: all)")
    for spec in registry.SERVICES.values():
        parser.add_argument(
            f"--port-{spec.name.replace('_', '-')}",
            dest=f"port_{spec.name}",
            type=int,
            default=None,
            help=f"port for {spec.name} (default {spec.default_port}, env {spec.env_port_var})",
        )


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start emulators in the background and write connections.env")
    _add_common(up)
    _add_ports(up)
    down = commands.add_parser("down", help="stop what `up` started")
    _add_common(down)
    status = commands.add_parser("status", help="health of each service; non-zero exit if any is down")
    _add_common(status)
    serve = commands.add_parser("serve", help="run emulators in the foreground (what `up` detaches)")
    _add_common(serve)
    _add_ports(serve)
    commands.add_parser("list", help="registered services and their default ports")
    return parser


def _selected(args: argparse.Namespace) -> list[ServiceSpec]:
    names = args.services.split(",") if args.services else None
    return registry.resolve(names)


def _ports(args: argparse.Namespace, specs: Sequence[ServiceSpec]) -> dict[str, int]:
    overrides = {spec.name: getattr(args, f"port_{spec.name}") for spec in specs}
    return {spec.name: registry.port_for(spec, overrides) for spec in specs}


def _endpoints(state_dir: Path) -> dict[str, Endpoint]:
    raw = json.loads((state_dir / SERVICES_FILE).read_text())
    return {
        name: Endpoint(service=name, port=info["port"], tls=info["tls"], data_dir=state_dir)
        for name, info in raw["services"].items()
    }


def _healthy(spec: ServiceSpec, endpoint: Endpoint) -> tuple[bool, str]:
    try:
        with sandbox_session(endpoint.ca_path) as session:
            response = session.get(endpoint.url + spec.health_path, timeout=3)
    except OSError as exc:  # requests' ConnectionError is an OSError
        return False, type(exc).__name__
    return response.ok, f"HTTP {response.status_code}"


def _read_pid(state_dir: Path) -> int | None:
    try:
        return int((state_dir / PID_FILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _is_our_server(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _group_alive(pid)
    return b"sandbox" in cmdline and b"serve" in cmdline


def cmd_up(args: argparse.Namespace) -> int:
    """Start the selected services detached, wait for health, write connections.env."""
    state_dir: Path = args.dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    pid = _read_pid(state_dir)
    if pid is not None and _group_alive(pid) and _is_our_server(pid):
        print(f"sandbox already running (pid {pid}); run `python -m sandbox down --dir {args.dir}` first")  # noqa: T201
        return 1
    specs = _selected(args)
    ports = _ports(args, specs)
    for name in (SERVICES_FILE, ENV_FILE, PID_FILE):
        (state_dir / name).unlink(missing_ok=True)
    command = [sys.executable, "-m", "sandbox", "serve", "--dir", str(state_dir)]
    command += ["--services", ",".join(spec.name for spec in specs)]
    for name, port in ports.items():
        command += [f"--port-{name.replace('_', '-')}", str(port)]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])),
    )
    with open(state_dir / LOG_FILE, "ab") as log_file:
        child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            command,
            cwd=PACKAGE_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    (state_dir / PID_FILE).write_text(f"{child.pid}\n")
    deadline = time.monotonic() + UP_TIMEOUT_S
    while not (state_dir / SERVICES_FILE).exists():
        if child.poll() is not None or time.monotonic() > deadline:
            _terminate_group(child.pid)
            (state_dir / PID_FILE).unlink(missing_ok=True)
            tail = (state_dir / LOG_FILE).read_text(errors="replace")[-3000:]
            print(f"sandbox failed to start; log {state_dir / LOG_FILE}:\n{tail}", file=sys.stderr)  # noqa: T201
            return 1
        time.sleep(0.05)
    endpoints = _endpoints(state_dir)
    for spec in specs:
        while True:
            ok, detail = _healthy(spec, endpoints[spec.name])
            if ok:
                break
            if time.monotonic() > deadline:
                _terminate_group(child.pid)
                print(f"{spec.name} never became healthy ({detail})", file=sys.stderr)  # noqa: T201
                return 1
            time.sleep(0.1)
    env_file = write_env_file(state_dir / ENV_FILE, conn_env((spec, endpoints[spec.name]) for spec in specs))
    for spec in specs:
        print(f"{spec.name:<16} {endpoints[spec.name].url}  up")  # noqa: T201
    print(f"connections: {env_file}  (load: set -a; . {env_file}; set +a)")  # noqa: T201
    return 0


def _terminate_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + DOWN_TIMEOUT_S
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                return
            break
        time.sleep(0.05)


def cmd_down(args: argparse.Namespace) -> int:
    """Stop the process group `up` started; succeeds when nothing is running."""
    state_dir: Path = args.dir.resolve()
    pid = _read_pid(state_dir)
    if pid is None:
        print("sandbox not running")  # noqa: T201
        return 0
    if _group_alive(pid) and _is_our_server(pid):
        _terminate_group(pid)
        print(f"sandbox stopped (pid {pid})")  # noqa: T201
    else:
        print("sandbox not running (stale pid file removed)")  # noqa: T201
    for name in (PID_FILE, SERVICES_FILE, ENV_FILE):
        (state_dir / name).unlink(missing_ok=True)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print each service's health; return 1 if any service (or the sandbox) is down."""
    state_dir: Path = args.dir.resolve()
    if not (state_dir / SERVICES_FILE).exists():
        print(f"sandbox not running (no {state_dir / SERVICES_FILE})")  # noqa: T201
        return 1
    all_ok = True
    for name, endpoint in _endpoints(state_dir).items():
        spec = registry.SERVICES[name]
        ok, detail = _healthy(spec, endpoint)
        all_ok &= ok
        print(f"{name:<16} {endpoint.url:<28} {'ok' if ok else 'DOWN'} ({detail})")  # noqa: T201
    return 0 if all_ok else 1


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the services until SIGTERM/SIGINT; write services.json once they listen."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state_dir: Path = args.dir.resolve()
    specs = _selected(args)
    stop = threading.Event()

    def on_signal(signum: int, _: Any) -> None:
        log.info("signal %s: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    started = start_services(specs, _ports(args, specs), state_dir)
    try:
        services = {
            s.spec.name: {"port": s.endpoint.port, "tls": s.endpoint.tls, "url": s.endpoint.url}
            for s in started
        }
        tmp = state_dir / (SERVICES_FILE + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "services": services}, indent=2))
        tmp.replace(state_dir / SERVICES_FILE)
        log.info("serving %s", ", ".join(f"{n} {i['url']}" for n, i in services.items()))
        while not stop.wait(0.5):
            pass
    finally:
        stop_services(started)
    return 0


def cmd_list(_: argparse.Namespace) -> int:
    """Print the registered services."""
    for spec in registry.SERVICES.values():
        scheme = "https" if spec.tls else "http"
        print(f"{spec.name:<16} {scheme}  default port {spec.default_port:<6} {spec.description}")  # noqa: T201
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return {
            "up": cmd_up,
            "down": cmd_down,
            "status": cmd_status,
            "serve": cmd_serve,
            "list": cmd_list,
        }[args.command](args)
    except registry.UnknownServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 2
