"""RapidProHook contract tests against the RapidPro emulator over real HTTP.

Connections come from AIRFLOW_CONN_* variables rendered by the sandbox, as in production;
nothing of ours is patched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crm_sync.exceptions import AuthError, ConfigurationError, RecordRejected, RetriableApiError
from crm_sync.hooks.rapidpro import (
    OP_KEY_PARAM,
    Contact,
    FlowStart,
    RapidProHook,
    order_urns,
    params_fingerprint,
    rapidpro_errors,
)
from crm_sync.http import READ_ERROR, HttpPolicy
from sandbox.testing import Sandbox, start_sandbox
from tests.environ import environ_set

NEW_FLOW = "0a1b2c3d-0000-4000-8000-00000000000a"
UPDATE_FLOW = "0a1b2c3d-0000-4000-8000-00000000000b"
PHONE, PHONE_DIGITS = "+27821234567", "27821234567"
FAST = HttpPolicy(non_idempotent_retry_statuses=frozenset({429}), backoff_factor=0.05, max_retries=3)

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The RapidPro emulator, with rapidpro_default and two broken variants in os.environ."""
    with start_sandbox(["rapidpro"], tmp_dir=Path(tmp_path_factory.mktemp("rapidpro"))) as started:
        env = started.conn_env()
        default = json.loads(env["AIRFLOW_CONN_RAPIDPRO_DEFAULT"])
        env["AIRFLOW_CONN_RAPIDPRO_WRONG_TOKEN"] = json.dumps({**default, "password": "wrong-token-123"})
        env["AIRFLOW_CONN_RAPIDPRO_OTHER_ORG"] = json.dumps({**default, "extra": {"org": "Elsewhere"}})
        with environ_set(env):
            yield started


@pytest.fixture
def admin(sandbox: Sandbox) -> Any:
    """The emulator after a reset, seeded with GP Connect's fields and two flows."""
    admin = sandbox.admin("rapidpro")
    admin.reset()
    admin.seed(
        {
            "fields": [
                {"key": "has_whatsapp", "label": "Has WhatsApp", "value_type": "text"},
                {"key": "patients_tested_positive", "label": "Tested positive", "value_type": "numeric"},
                {"key": "first_name", "label": "First name", "value_type": "text"},
            ],
            "flows": [
                {"uuid": NEW_FLOW, "name": "GP Connect new contact", "sets_fields_from_params": True},
                {"uuid": UPDATE_FLOW, "name": "GP Connect contact update", "sets_fields_from_params": True},
            ],
        }
    )
    return admin


@pytest.fixture
def hook(admin: Any) -> RapidProHook:
    return RapidProHook(http_policy=FAST)


def seed_contact(admin: Any, *urns: str) -> str:
    return admin.seed({"contacts": [{"urns": list(urns)}]})["contacts"][0]


def calls(admin: Any, route: str) -> int:
    return admin.calls()["by_route"].get(route, 0)


# ---- workspace, fields, flows -------------------------------------------------------------------


def test_workspace_fields_and_flows(hook: RapidProHook, admin: Any) -> None:
    assert hook.check_workspace().name == "GP Connect"
    fields = hook.fields()
    assert fields["patients_tested_positive"].value_type == "number"
    assert fields["has_whatsapp"].label == "Has WhatsApp"
    assert set(hook.require_fields(["has_whatsapp", "first_name"])) >= {"has_whatsapp", "first_name"}
    with pytest.raises(ConfigurationError, match="lacks contact fields \\['surname'\\]"):
        hook.require_fields(["surname", "first_name"])
    assert {f.uuid for f in hook.flows()} == {NEW_FLOW, UPDATE_FLOW}
    assert hook.flow(NEW_FLOW).name == "GP Connect new contact"
    with pytest.raises(ConfigurationError, match="missing"):
        hook.flow("0a1b2c3d-0000-4000-8000-0000000000ff")
    assert hook.test_connection() == (True, "connected to RapidPro workspace 'GP Connect'")


def test_cursor_paging_through_temba_client(hook: RapidProHook, admin: Any) -> None:
    admin.config(page_size=2)
    admin.seed({"flows": [{"name": f"Flow {i}"} for i in range(5)]})
    assert len(hook.flows()) == 7
    assert calls(admin, "GET /api/v2/flows.json") == 4


def test_wrong_token_and_wrong_workspace(admin: Any) -> None:
    with pytest.raises(AuthError, match="token was refused"):
        RapidProHook("rapidpro_wrong_token", http_policy=FAST).fields()
    with pytest.raises(ConfigurationError, match="belongs to workspace 'GP Connect', not 'Elsewhere'"):
        RapidProHook("rapidpro_other_org", http_policy=FAST).check_workspace()


def test_legacy_server_field_names(hook: RapidProHook, admin: Any) -> None:
    admin.config(server_version="legacy")
    fields = hook.fields()
    assert (fields["patients_tested_positive"].label, fields["patients_tested_positive"].value_type) == (
        "Tested positive",
        "number",
    )


# ---- contacts -------------------------------------------------------------------------------------


def test_find_contact_looks_up_tel_first_then_whatsapp(hook: RapidProHook, admin: Any) -> None:
    by_tel = seed_contact(admin, f"tel:{PHONE}")
    by_whatsapp = seed_contact(admin, "whatsapp:27829990000")
    admin.reset_calls()

    found = hook.find_contact([f"whatsapp:{PHONE_DIGITS}", "tel:082 123 4567"])
    assert isinstance(found, Contact)
    assert found.uuid == by_tel
    assert found.urns == (f"tel:{PHONE}",)
    assert calls(admin, "GET /api/v2/contacts.json") == 1

    found = hook.find_contact(["tel:+27829990000", "whatsapp:27829990000"])
    assert found is not None
    assert found.uuid == by_whatsapp
    assert calls(admin, "GET /api/v2/contacts.json") == 3

    assert hook.find_contact(["tel:+27820000001", "whatsapp:27820000001"]) is None
    assert order_urns(["mailto:a@b.c", "whatsapp:1", "tel:+1"]) == ["tel:+1", "whatsapp:1", "mailto:a@b.c"]


def test_create_and_update_contact_urns(hook: RapidProHook, admin: Any) -> None:
    created = hook.create_contact([f"tel:{PHONE}", f"whatsapp:{PHONE_DIGITS}"], fields={"first_name": "Ann"})
    assert created.urns == (f"tel:{PHONE}", f"whatsapp:{PHONE_DIGITS}")
    assert created.fields == {"has_whatsapp": None, "patients_tested_positive": None, "first_name": "Ann"}
    assert created.urns_of("whatsapp") == (f"whatsapp:{PHONE_DIGITS}",)

    updated = hook.update_contact_urns(created.uuid, ["tel:+27821234568"])
    assert updated.uuid == created.uuid
    assert updated.urns == ("tel:+27821234568",)
    assert hook.find_contact([f"tel:{PHONE}"]) is None
    assert hook.get_contact(created.uuid) == updated


def test_contact_rejections_carry_codes_but_no_phone_numbers(
    sandbox: Sandbox, hook: RapidProHook, admin: Any
) -> None:
    owner = seed_contact(admin, f"tel:{PHONE}")
    with pytest.raises(RecordRejected) as taken:
        hook.create_contact([f"tel:{PHONE}"])
    assert (taken.value.code, taken.value.field) == ("URN_IN_USE", "urns")
    assert PHONE_DIGITS not in str(taken.value)

    admin.config(server_version="legacy")
    other = hook.create_contact(["tel:+27821234568"])
    with pytest.raises(RecordRejected) as legacy:
        hook.update_contact_urns(other.uuid, [f"tel:{PHONE}"])
    assert (legacy.value.code, legacy.value.key) == ("URN_IN_USE", other.uuid)
    assert PHONE_DIGITS not in str(legacy.value)

    with pytest.raises(RecordRejected) as unknown_field:
        hook.create_contact(["tel:+27821234569"], fields={"nope": "x"})
    assert unknown_field.value.code == "INVALID_FIELD_KEY"
    with pytest.raises(RecordRejected) as invalid:
        hook.find_contact(["tel:12"])
    assert invalid.value.code == "INVALID_URN"

    with pytest.raises(RecordRejected) as gone:
        hook.update_contact_urns("ad6acad9-959b-4d70-b144-5de2891e4d00", ["tel:+27821234561"])
    assert (gone.value.code, gone.value.key) == ("NOT_FOUND", "ad6acad9-959b-4d70-b144-5de2891e4d00")
    assert admin.state()["counts"]["contacts"] == 2
    assert owner != other.uuid

    api = sandbox.session("rapidpro")
    token = sandbox.connection("rapidpro_default")["password"]
    deleted = api.delete(
        sandbox.url("rapidpro") + "/api/v2/contacts.json",
        params={"uuid": other.uuid},
        headers={"Authorization": f"Token {token}"},
        timeout=10,
    )
    assert deleted.status_code == 204
    with pytest.raises(RecordRejected) as was_deleted:
        hook.update_contact_urns(other.uuid, ["tel:+27821234568"])
    assert (was_deleted.value.code, was_deleted.value.key) == ("CONTACT_DELETED", other.uuid)


def test_create_with_lost_answer_is_recovered_by_lookup(hook: RapidProHook, admin: Any) -> None:
    admin.faults([{"method": "POST", "path": "/contacts.json", "times": 1, "lost_response": True}])
    contact = hook.create_contact([f"tel:{PHONE}"])
    assert contact.urns == (f"tel:{PHONE}",)
    assert admin.state()["counts"]["contacts"] == 1
    assert calls(admin, "POST /api/v2/contacts.json") == 1


# ---- flow starts ----------------------------------------------------------------------------------


def test_start_flow_sends_params_and_extra_and_the_flow_sets_fields(hook: RapidProHook, admin: Any) -> None:
    contact = hook.create_contact([f"tel:{PHONE}"])
    row = {"first_name": "Ann", "patients_tested_positive": 1, "has_whatsapp": False, "tested_on": None}
    start = hook.start_flow(NEW_FLOW, contacts=[contact.uuid], params=row)
    assert isinstance(start, FlowStart)
    assert (start.flow_uuid, start.contacts, start.status) == (NEW_FLOW, (contact.uuid,), "pending")
    assert start.params == {**row, "tested_on": ""}
    assert start.fingerprint == params_fingerprint(row)
    stored = admin.state(flow_starts=1)["flow_starts"][0]
    assert stored["restart_participants"] is True

    # the flow saved the params into the contact's fields, so the next import sees them
    refreshed = hook.get_contact(contact.uuid)
    assert refreshed is not None
    assert refreshed.fields == {"has_whatsapp": "false", "patients_tested_positive": "1", "first_name": "Ann"}

    # an older server reads only `extra`: the same call still sets the fields
    admin.config(server_version="legacy")
    legacy = hook.start_flow(UPDATE_FLOW, contacts=[contact.uuid], params={"first_name": "Anne"})
    assert legacy.params == {"first_name": "Anne"}
    refreshed = hook.get_contact(contact.uuid)
    assert refreshed is not None
    assert refreshed.fields["first_name"] == "Anne"


def test_start_flow_limits_and_configuration_errors(hook: RapidProHook, admin: Any) -> None:
    contact = hook.create_contact([f"tel:{PHONE}"])
    with pytest.raises(ValueError, match="1 to 100 contacts"):
        hook.start_flow(NEW_FLOW, contacts=[f"c{i}" for i in range(101)], params={})
    with pytest.raises(RecordRejected) as too_large:
        hook.start_flow(NEW_FLOW, contacts=[contact.uuid], params={"x": "a" * 10_001})
    assert too_large.value.code == "PARAMS_TOO_LARGE"
    with pytest.raises(ConfigurationError, match="cannot be started"):
        hook.start_flow("0a1b2c3d-0000-4000-8000-0000000000ff", contacts=[contact.uuid], params={})
    with pytest.raises(RecordRejected) as missing:
        hook.start_flow(NEW_FLOW, contacts=["ad6acad9-959b-4d70-b144-5de2891e4d00"], params={})
    assert (missing.value.code, missing.value.field) == ("NOT_FOUND", "contacts")
    assert calls(admin, "POST /api/v2/flow_starts.json") == 2


def test_find_flow_start_by_op_key_and_by_fingerprint(hook: RapidProHook, admin: Any) -> None:
    ann = hook.create_contact([f"tel:{PHONE}"])
    bob = hook.create_contact(["tel:+27821234568"])
    before = datetime.now(UTC) - timedelta(minutes=5)
    params = {"first name": "Ann", "visits": [1, 2], "note": None}
    tagged = hook.start_flow(NEW_FLOW, contacts=[ann.uuid], params=params, op_key="op-123")
    assert tagged.op_key == "op-123"
    assert tagged.params[OP_KEY_PARAM] == "op-123"
    hook.start_flow(NEW_FLOW, contacts=[bob.uuid], params={"first_name": "Bob"})
    hook.start_flow(UPDATE_FLOW, contacts=[ann.uuid], params={"first_name": "Ann"})

    found = hook.find_flow_start(NEW_FLOW, ann.uuid, created_after=before, op_key="op-123")
    assert found is not None
    assert (found.uuid, found.status, found.params) == (tagged.uuid, "completed", tagged.params)
    # the server normalised the keys and values; the fingerprint still matches
    by_print = hook.find_flow_start(
        NEW_FLOW, ann.uuid, created_after=before, fingerprint=params_fingerprint(params)
    )
    assert by_print is not None
    assert by_print.uuid == tagged.uuid
    assert hook.find_flow_start(NEW_FLOW, bob.uuid, created_after=before, op_key="op-123") is None
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert hook.find_flow_start(NEW_FLOW, ann.uuid, created_after=later, op_key="op-123") is None
    assert [s.flow_uuid for s in hook.find_flow_starts(UPDATE_FLOW, created_after=before)] == [UPDATE_FLOW]


# ---- the HTTP policy ------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after_even_for_a_flow_start(hook: RapidProHook, admin: Any) -> None:
    contact = seed_contact(admin, f"tel:{PHONE}")
    throttled = {"detail": "Request was throttled. Expected available in 1 second."}
    admin.faults(
        [
            {
                "method": "GET",
                "path": "/contacts.json",
                "status": 429,
                "body": throttled,
                "headers": {"Retry-After": "1"},
            },
            {
                "method": "POST",
                "path": "/flow_starts.json",
                "status": 429,
                "body": throttled,
                "headers": {"Retry-After": "1"},
            },
        ]
    )
    assert hook.find_contact([f"tel:{PHONE}"]) is not None
    start = hook.start_flow(NEW_FLOW, contacts=[contact], params={"first_name": "Ann"})
    assert calls(admin, "GET /api/v2/contacts.json") == 2
    assert calls(admin, "POST /api/v2/flow_starts.json") == 2
    assert [s["uuid"] for s in admin.state(flow_starts=1)["flow_starts"]] == [start.uuid]
    assert hook.api_calls["retries"] == 2


def test_a_long_retry_after_is_left_to_the_caller(hook: RapidProHook, admin: Any) -> None:
    throttled = {"detail": "Request was throttled. Expected available in 3600 seconds."}
    admin.faults([{"method": "GET", "status": 429, "body": throttled, "headers": {"Retry-After": "3600"}}])
    with pytest.raises(RetriableApiError) as parked:
        hook.find_contact([f"tel:{PHONE}"])
    assert (parked.value.status, parked.value.code, parked.value.retry_after) == (429, "THROTTLED", 3600.0)
    assert calls(admin, "GET /api/v2/contacts.json") == 1


def test_emulator_throttle_is_waited_out(hook: RapidProHook, admin: Any) -> None:
    admin.config(rate_limit=1, rate_window_s=1)
    assert hook.find_contact([f"tel:{PHONE}"]) is None
    assert hook.find_contact([f"tel:{PHONE}"]) is None
    assert hook.api_calls == {"total": 2, "GET": 2, "retries": 1}


def test_5xx_is_retried_for_get_but_a_flow_start_is_sent_once(
    hook: RapidProHook, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    contact = seed_contact(admin, f"tel:{PHONE}")
    admin.faults([{"method": "GET", "path": "/contacts.json", "times": 2, "status": 503, "body": "busy"}])
    with caplog.at_level(logging.WARNING, logger="crm_sync.http"):
        assert hook.find_contact([f"tel:{PHONE}"]) is not None
    assert calls(admin, "GET /api/v2/contacts.json") == 3
    retries = [r.getMessage() for r in caplog.records if r.name == "crm_sync.http"]
    assert len(retries) == 2
    assert all("urn=***" in line and PHONE_DIGITS not in line for line in retries)

    admin.faults([{"method": "POST", "path": "/flow_starts.json", "status": 500, "body": {"detail": "boom"}}])
    with pytest.raises(RetriableApiError) as failed:
        hook.start_flow(NEW_FLOW, contacts=[contact], params={"first_name": "Ann"})
    assert failed.value.status == 500
    assert calls(admin, "POST /api/v2/flow_starts.json") == 1
    assert admin.state(flow_starts=1)["flow_starts"] == []


def test_lost_flow_start_answer_is_found_again_by_op_key(hook: RapidProHook, admin: Any) -> None:
    contact = seed_contact(admin, f"tel:{PHONE}")
    claimed_at = datetime.now(UTC)
    admin.faults([{"method": "POST", "path": "/flow_starts.json", "lost_response": True}])
    with pytest.raises(RetriableApiError) as lost:
        hook.start_flow(NEW_FLOW, contacts=[contact], params={"first_name": "Ann"}, op_key="op-9")
    assert lost.value.code == READ_ERROR
    assert calls(admin, "POST /api/v2/flow_starts.json") == 1
    recovered = hook.find_flow_start(
        NEW_FLOW, contact, created_after=claimed_at - timedelta(minutes=1), op_key="op-9"
    )
    assert recovered is not None
    assert recovered.contacts == (contact,)


def test_exhausted_retries_name_no_phone_number(admin: Any) -> None:
    hook = RapidProHook(http_policy=HttpPolicy(max_retries=1, backoff_factor=0.01))
    admin.faults([{"method": "GET", "path": "/contacts.json", "times": None, "status": 502, "body": PHONE}])
    with pytest.raises(RetriableApiError) as failed:
        hook.find_contact([f"tel:{PHONE}"])
    assert failed.value.status == 502
    assert PHONE_DIGITS not in str(failed.value)
    assert "/api/v2/contacts.json" in str(failed.value)
    assert calls(admin, "GET /api/v2/contacts.json") == 2


def test_error_envelopes_are_flattened() -> None:
    assert rapidpro_errors({"urns": {"0": ["URN is in use by another contact."]}, "detail": "x"}) == [
        ("urns", "URN is in use by another contact."),
        (None, "x"),
    ]
    assert rapidpro_errors({"non_field_errors": ["Must specify at least one group, contact or URN"]}) == [
        (None, "Must specify at least one group, contact or URN")
    ]
