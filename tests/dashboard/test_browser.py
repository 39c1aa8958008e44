"""The one real-browser test: headless Chromium logs in to a real Airflow API server, opens
Browse -> CRM Sync after a demo run, checks the numbers against the ledger and saves a
screenshot to test-artifacts/dashboard/.

Needs Debian's chromium and chromium-driver (``.ci/install-browser``) and selenium. Fails in
CI when they are missing; skips locally.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.testing import start_sandbox
from tests.conftest import IN_CI, ROOT
from tests.dashboard.conftest import PASSWORDS

pytestmark = [pytest.mark.usefixtures("airflow_db"), pytest.mark.slow, pytest.mark.sandbox]

ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
AOU = "aou_salesforce_sync"
PARTICIPANTS = 500  # enough alike names for the demo's Pardot mix


def _browser_or_reason() -> str | None:
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (run .ci/install-browser)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed in .venv"
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    reason = _browser_or_reason()
    if reason:
        if IN_CI:
            pytest.fail(f"the browser test must run in CI: {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def demo_ledger(browser_ready: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Run the aou part of the demo against the Salesforce emulator; return the staging URL."""
    from demo import aou

    work = tmp_path_factory.mktemp("demo")
    staging = f"sqlite:///{work / 'staging.db'}"
    saved = dict(os.environ)
    with start_sandbox(aou.SERVICES, tmp_dir=work) as sandbox:
        os.environ.update(sandbox.conn_env())
        os.environ["AIRFLOW_CONN_CRM_SYNC_STAGING"] = json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": staging}}
        )
        try:
            aou.run(sandbox, work, participants=PARTICIPANTS)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return staging


@pytest.fixture(scope="module")
def airflow_server(demo_ledger: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``airflow api-server`` in a subprocess: SimpleAuthManager logins, the test metadata DB."""
    home = tmp_path_factory.mktemp("airflow-ui")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        # The metadata DB the demo's dag.test runs wrote to: run detail shows their steps.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(40),
        "AIRFLOW_CONN_CRM_SYNC_STAGING": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": demo_ledger}}
        ),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    log = (home / "api-server.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "airflow"), "api-server", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, home / "api-server.log")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(home / "api-server.log", ARTIFACTS / "api-server.log")


def _wait_healthy(url: str, process: subprocess.Popen, log: Path) -> None:
    import requests

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"api-server exited {process.returncode}: {log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise RuntimeError(f"api-server not healthy after 120 s: {log.read_text()[-3000:]}")


@pytest.fixture
def chrome() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def _ledger_counts(staging: str) -> dict[str, int]:
    """The latest aou run's counts, straight from run_summary (what the task log reports)."""
    import sqlalchemy as sa

    from crm_sync.sync.ledger import run_summary
    from crm_sync.sync.schema import sync_run
    from crm_sync.sync.staging import make_engine

    engine = make_engine(staging)
    with engine.connect() as conn:
        run_id = conn.execute(
            sa.select(sync_run.c.run_id)
            .where(sync_run.c.integration == AOU)
            .order_by(sync_run.c.started_at.desc())
            .limit(1)
        ).scalar_one()
    summary = run_summary(engine, integration=AOU, run_id=run_id)
    outcomes = summary["outcomes"]
    return {
        "created": outcomes.get("create", {}).get("success", 0),
        "updated": outcomes.get("update", {}).get("success", 0) + outcomes.get("claim", {}).get("success", 0),
        "unchanged": summary["planned"]["unchanged"],
        "rejected": summary["rejected"],
        "failed": summary["by_status"]["failed"],
        "skipped": summary["by_status"]["skipped"],
        "api_calls": summary["api_calls"].get("total", sum(summary["api_calls"].values())),
    }


def test_browse_crm_sync_shows_the_ledger(airflow_server: str, demo_ledger: str, chrome: Any):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(chrome, 60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        # Log in through Airflow's own login page.
        chrome.get(f"{airflow_server}/")
        user = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "input[name='username']")))
        user.send_keys("admin")
        chrome.find_element(By.CSS_SELECTOR, "input[name='password']").send_keys(PASSWORDS["admin"])
        chrome.find_element(By.CSS_SELECTOR, "button[type='submit']").click()

        # Browse -> CRM Sync.
        wait.until(ec.element_to_be_clickable((By.XPATH, "//button[normalize-space()='Browse']"))).click()
        wait.until(
            ec.element_to_be_clickable((By.XPATH, "//*[@role='menuitem'][normalize-space()='CRM Sync']"))
        )
        chrome.find_element(By.XPATH, "//*[@role='menuitem'][normalize-space()='CRM Sync']").click()
        wait.until(lambda d: "/plugin/crm-sync" in d.current_url)
        frame = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "iframe")))
        chrome.switch_to.frame(frame)
        row = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, f"#overview tr[data-integration='{AOU}']"))
        )
        shown = {
            cell.get_attribute("data-count"): int(cell.text)
            for cell in row.find_elements(By.CSS_SELECTOR, "td[data-count]")
        }
        assert row.find_elements(By.CSS_SELECTOR, "svg.trend")
        chrome.switch_to.default_content()
        chrome.save_screenshot(str(ARTIFACTS / "crm-sync-overview.png"))

        expected = _ledger_counts(demo_ledger)
        assert {k: shown[k] for k in expected} == expected
        assert expected["unchanged"] > 0, "the demo's last run re-reads everyone and changes nothing"

        # Run detail of that run, inside the same iframe: the steps come from Airflow.
        chrome.switch_to.frame(chrome.find_element(By.CSS_SELECTOR, "iframe"))
        chrome.find_element(
            By.CSS_SELECTOR, f"#overview tr[data-integration='{AOU}'] td:nth-child(2) a"
        ).click()
        steps = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#steps tbody")))
        assert "push_contacts" in steps.text
        chrome.switch_to.default_content()
        chrome.save_screenshot(str(ARTIFACTS / "crm-sync-run.png"))
    except Exception:
        chrome.save_screenshot(str(ARTIFACTS / "failure.png"))
        (ARTIFACTS / "failure.html").write_text(chrome.page_source)
        raise
