"""The sandbox framework: in-process start/stop, connections, admin API, fault injection."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import requests

from sandbox.admin_client import AdminError
from sandbox.connections import read_env_file, write_env_file
from sandbox.testing import start_sandbox

from .conftest import SfApi

pytestmark = pytest.mark.sandbox


def test_start_stop_leaves_no_threads_and_renders_connections(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    with start_sandbox(["salesforce", "s3"], tmp_dir=tmp_path) as sandbox:
        env = sandbox.conn_env()
        assert set(env) == {"AIRFLOW_CONN_SALESFORCE_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT"}
        sf_conn = json.loads(env["AIRFLOW_CONN_SALESFORCE_DEFAULT"])
        assert sf_conn["extra"]["instance_url"] == sandbox.url("salesforce")
        assert sf_conn["extra"]["instance_url"].startswith("https://127.0.0.1:")
        assert Path(sf_conn["extra"]["ca_bundle"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
        assert aws == {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"region_name": "us-east-1", "endpoint_url": sandbox.url("s3")},
        }
        assert sandbox.admin("salesforce").health() == {"status": "ok", "service": "salesforce"}

        from sandbox.s3 import BUCKET, s3_client

        client = s3_client(sandbox.url("s3"))
        client.put_object(Bucket=BUCKET, Key="in/file.txt", Body=b"hello")
        assert client.get_object(Bucket=BUCKET, Key="in/file.txt")["Body"].read() == b"hello"
        sandbox.admin("s3").reset()
        assert client.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
    leftover = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leftover == []


def test_https_only_and_ca_required(sf: SfApi) -> None:
    plain = sf.base.replace("https://", "http://")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(plain + "/_sandbox/health", timeout=5)
    untrusted = requests.Session()
    untrusted.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        untrusted.get(sf.base + "/_sandbox/health", timeout=5)


def test_env_file_round_trip(tmp_path: Path) -> None:
    env = {"AIRFLOW_CONN_X": json.dumps({"conn_type": "http", "extra": {"q": 'it\'s "quoted"'}})}
    path = write_env_file(tmp_path / "connections.env", env)
    assert read_env_file(path) == env


def test_calls_are_counted_per_route_template(sf: SfApi) -> None:
    sf.admin.reset_calls()
    sf.call("POST", "sobjects/Account", json={"Name": "A"})
    sf.call("POST", "sobjects/Account/", json={"Name": "B"})
    sf.query("SELECT Id FROM Account")
    sf.admin.state(object="Account")  # admin calls are not counted
    calls = sf.admin.calls()
    assert calls["total"] == 3
    assert calls["by_route"] == {
        "POST /services/data/v{version}/sobjects/{sobject}": 2,
        "GET /services/data/v{version}/query": 1,
    }
    sf.admin.reset_calls()
    assert sf.admin.calls() == {"total": 0, "by_route": {}}


def test_fault_status_is_served_n_times_then_clears(sf: SfApi) -> None:
    sf.admin.faults(
        [
            {
                "method": "POST",
                "path": r"/sobjects/Account$",
                "times": 2,
                "status": 503,
                "body": [{"errorCode": "SERVER_UNAVAILABLE", "message": "down"}],
                "headers": {"Retry-After": "3"},
            }
        ]
    )
    for _ in range(2):
        response = sf.call("POST", "sobjects/Account", json={"Name": "A"})
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "3"
        assert response.json()[0]["errorCode"] == "SERVER_UNAVAILABLE"
    assert sf.call("POST", "sobjects/Account", json={"Name": "A"}).status_code == 201
    assert len(sf.rows("Account")) == 1


def test_fault_latency_delays_then_processes(sf: SfApi) -> None:
    live = sf.admin.faults([{"path": "/limits", "latency_ms": 50}])
    assert live == [{"method": None, "path": "/limits", "times": 1, "effect": "latency_ms", "hits": 0}]
    response = sf.call("GET", "limits")
    assert response.status_code == 200
    assert response.json()["DailyApiRequests"]["Max"] == 100000
    assert sf.admin.faults([]) == []  # used up


def test_fault_drop_closes_without_processing(sf: SfApi) -> None:
    sf.admin.faults([{"method": "POST", "path": "/sobjects/Account", "drop": True}])
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.call("POST", "sobjects/Account", json={"Name": "Dropped"})
    assert sf.rows("Account") == []
    assert sf.call("POST", "sobjects/Account", json={"Name": "Kept"}).status_code == 201


def test_fault_lost_response_applies_the_write(sf: SfApi) -> None:
    sf.admin.faults([{"method": "POST", "path": "/sobjects/Account", "lost_response": True}])
    with pytest.raises(requests.exceptions.ConnectionError):
        sf.call("POST", "sobjects/Account", json={"Name": "Ghost"})
    assert [row["Name"] for row in sf.rows("Account")] == ["Ghost"]


def test_fault_daily_limit_exhausted(sf: SfApi) -> None:
    sf.admin.faults([{"path": "/query", "daily_limit_exhausted": True, "times": None}])
    for _ in range(2):
        response = sf.query("SELECT Id FROM Account")
        assert response.status_code == 403
        assert response.json() == [
            {"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}
        ]
        assert response.headers["Sforce-Limit-Info"] == "api-usage=100000/100000"
    assert sf.call("GET", "limits").status_code == 200
    sf.admin.clear_faults()
    assert sf.query("SELECT Id FROM Account").status_code == 200


@pytest.mark.parametrize(
    "rule",
    [
        {"path": "x"},
        {"path": "x", "drop": True, "status": 500},
        {"path": "(", "drop": True},
        {"path": "x", "drop": True, "times": 0},
        {"path": "x", "explode": True},
    ],
)
def test_bad_fault_rules_are_rejected(sf: SfApi, rule: dict) -> None:
    with pytest.raises(AdminError, match="400"):
        sf.admin.faults([rule])


def test_reset_clears_data_faults_and_config(sf: SfApi) -> None:
    sf.call("POST", "sobjects/Account", json={"Name": "A"})
    sf.admin.faults([{"path": "/never", "status": 500}])
    sf.admin.config(daily_api_limit=5)
    sf.admin.reset()
    assert sf.rows("Account") == []
    assert sf.admin.faults([]) == []
    assert sf.admin.config()["daily_api_limit"] == 100000


def test_unknown_config_knob_is_rejected(sf: SfApi) -> None:
    with pytest.raises(AdminError, match="unknown salesforce config knobs"):
        sf.admin.config(no_such_knob=1)


def test_a_body_that_is_not_json_gets_each_apis_own_400(tmp_path: Path) -> None:
    with start_sandbox(["pipedrive", "rapidpro", "maxio"], tmp_dir=tmp_path) as sandbox:
        sends = {
            "pipedrive": ("/api/v2/persons", "request body is not valid JSON"),
            "rapidpro": ("/api/v2/contacts.json", "JSON parse error"),
        }
        for name, (path, message) in sends.items():
            session = sandbox.session(name)
            for body in (b"{not json", b"\xff\xfe"):  # broken JSON, then bytes that are not UTF-8
                answer = session.post(
                    sandbox.url(name) + path, data=body, headers={"Content-Type": "application/json"}
                )
                assert (answer.status_code, message in answer.text) == (400, True), (name, answer.text)
        for name in ("pipedrive", "rapidpro", "maxio"):  # the admin API every emulator shares
            answer = sandbox.session(name).post(sandbox.url(name) + "/_sandbox/config", data=b"{bad")
            assert answer.status_code == 400
            assert answer.json()["error"].startswith("body is not JSON: ")
