"""Secrets never survive redaction: in free text, URLs, bodies, headers and log records."""

from __future__ import annotations

import json
import logging
import string
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from crm_sync.redaction import (
    MASK,
    RedactingFilter,
    install_redaction,
    is_sensitive_key,
    redact,
    redact_url,
    safe_excerpt,
)

SECRET = "Zq7-secret-VALUE-9x"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SF_SESSION = "00D5e000000XXXXEAA!AQ0AQH4.abc_DEF123xyz"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        (f"Authorization: Bearer {SECRET}", SECRET, "Authorization: Bearer ***"),
        (f"authorization: Basic {SECRET}\r\nAccept: */*", SECRET, "authorization: Basic ***"),
        (f"{{'Authorization': 'Token {SECRET}', 'Accept': 'a/b'}}", SECRET, "'Token ***', 'Accept': 'a/b'"),
        (f'{{"Authorization": "OAuth {SECRET}"}}', SECRET, '"Authorization": "OAuth ***"'),
        (f"Proxy-Authorization: {SECRET}", SECRET, "Proxy-Authorization: ***"),
        (f"login failed: password={SECRET}&user=bob", SECRET, "password=***&user=bob"),
        (f"passwd={SECRET}", SECRET, "passwd=***"),
        (f"GET /v1/leads?api_key={SECRET}&limit=5", SECRET, "api_key=***&limit=5"),
        (f"?hapikey={SECRET}", SECRET, "hapikey=***"),
        (f"/persons?api_token={SECRET}&start=0", SECRET, "api_token=***&start=0"),
        (f"/rest/v1/leads.json?access_token={SECRET}", SECRET, "access_token=***"),
        (
            f"grant_type=refresh_token&refresh_token={SECRET}",
            SECRET,
            "grant_type=refresh_token&refresh_token=***",
        ),
        (f"client_id=abc&client_secret={SECRET}", SECRET, "client_id=abc&client_secret=***"),
        (
            f'{{"security_token": "{SECRET}", "domain": "test"}}',
            SECRET,
            '"security_token": "***", "domain": "test"',
        ),
        (f"token={SECRET}; Path=/", SECRET, "token=***; Path=/"),
        (f"X-API-Token: {SECRET}", SECRET, "X-API-Token: ***"),
        (f"Set-Cookie: sid={SF_SESSION}; Path=/", SF_SESSION, "Path=/"),
        (f"session {SF_SESSION} expired", "AQ0AQH4.abc_DEF123xyz", "00D5e000000XXXXEAA!***"),
        (f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "aws_secret_access_key = ***"),
        (f'{{"SecretAccessKey": "{AWS_SECRET}"}}', AWS_SECRET, '"SecretAccessKey": "***"'),
        (f"leaked {AWS_SECRET} in a stack trace", AWS_SECRET, "leaked *** in"),
        (f'{{"username": "u", "password": "p\\"{SECRET}"}}', SECRET, '"username": "u", "password": "***"'),
        (f"{{'api_key': '{SECRET}', 'n': 1}}", SECRET, "'api_key': '***', 'n': 1"),
        (f"<n1:password>{SECRET}</n1:password>", SECRET, "<n1:password>***</n1:password>"),
        (f"<sessionId>{SF_SESSION}</sessionId>", SF_SESSION, "<sessionId>***</sessionId>"),
        (f"postgresql://airflow:{SECRET}@db:5432/x", SECRET, "postgresql://airflow:***@db:5432/x"),
        (f"https://{SECRET}:x@acme.chargify.com/customers.json", SECRET, "https://***:***@acme.chargify.com"),
        (f"an error mentioning Bearer {SECRET}", SECRET, "Bearer ***"),
        (f'{{"error": "bad", "password": "{SECRET}', SECRET, '"password": "***'),  # cut-off body
    ],
)
def test_each_kind_of_secret_is_masked(text: str, secret: str, kept: str) -> None:
    redacted = redact(text)

    assert secret not in redacted
    assert kept in redacted


@pytest.mark.parametrize(
    "text",
    [
        "record key=123 failed: REQUIRED_FIELD_MISSING on LastName",
        "Content-Type: application/json; charset=utf-8",
        '{"token_type": "bearer", "expires_in": 3600}',
        "row_hash 356a192b7913b04c54574d18c28d46e6395428ab unchanged",
        "GET https://x.my.salesforce.com/services/data/v59.0/sobjects/Contact/003000000000001AAA",
        "Basic authentication is configured",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_url_masks_query_values_and_userinfo_keeping_the_rest() -> None:
    url = "https://bob:pa%24s@api.example.com:8443/v1/persons?start=0&api_token=abc&q=a%20b&Password=x"

    assert (
        redact_url(url)
        == "https://bob:***@api.example.com:8443/v1/persons?start=0&api_token=***&q=a%20b&Password=***"
    )


def test_redact_url_masks_an_api_key_used_as_username() -> None:
    assert redact_url(f"https://{SECRET}:x@acme.chargify.com/subscriptions.json") == (
        "https://***:***@acme.chargify.com/subscriptions.json"
    )
    assert redact_url(f"https://{SECRET}@host/x") == "https://***@host/x"
    assert redact(f"clone https://{SECRET}@host/x.git") == "clone https://***@host/x.git"


def test_redact_url_leaves_a_clean_url_unchanged() -> None:
    url = "https://api.pipedrive.com/v1/persons?start=0&limit=500"

    assert redact_url(url) == url


def test_sensitive_key_names() -> None:
    assert all(
        is_sensitive_key(name)
        for name in ["Authorization", "api_token", "X-API-Key", "client_secret", "sessionId", "sid", "passwd"]
    )
    assert not any(is_sensitive_key(name) for name in ["key", "id", "token_type", "external_id", "username"])


def test_safe_excerpt_masks_secrets_and_personal_data_and_fits_one_line() -> None:
    body = json.dumps(
        {
            "errors": [
                {"message": "Email: invalid email address: ann@example.org", "phone": "+447700900123"}
            ],
            "password": SECRET,
            "at": "2026-11-22 10:00:00",
        },
        indent=2,
    )

    excerpt = safe_excerpt(body)

    assert "\n" not in excerpt
    assert "ann@example.org" not in excerpt
    assert "+447700900123" not in excerpt
    assert SECRET not in excerpt
    assert "2026-11-22 10:00:00" in excerpt
    assert len(safe_excerpt("x" * 1000)) == 300
    assert safe_excerpt("x" * 1000).endswith("...")


def test_filter_redacts_message_args_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("crm_sync.tests.redaction_filter")
    install_redaction("crm_sync")
    caplog.set_level(logging.INFO, logger=logger.name)

    logger.info("calling %s with %s", f"https://h/x?api_token={SECRET}", {"password": SECRET})
    try:
        raise ValueError(f"refused: Authorization: Bearer {SECRET}")
    except ValueError:
        logger.exception("push failed for token=%s", SECRET)

    assert SECRET not in caplog.text
    assert caplog.records[0].getMessage() == "calling https://h/x?api_token=*** with {'password': '***'}"
    assert "Authorization: Bearer ***" in caplog.text  # the traceback text was redacted too


def test_install_redaction_is_idempotent_and_covers_handlers() -> None:
    logger = logging.getLogger("crm_sync_tests_isolated")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        install_redaction("crm_sync_tests_isolated")
        install_redaction("crm_sync_tests_isolated")

        assert sum(isinstance(f, RedactingFilter) for f in logger.filters) == 1
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
    finally:
        logger.removeHandler(handler)


def test_filter_keeps_lines_with_a_broken_format_string() -> None:
    record = logging.LogRecord("crm_sync", logging.INFO, __file__, 1, "token=%s %s", (SECRET,), None)

    assert RedactingFilter().filter(record) is True
    assert SECRET not in record.getMessage()


# Secrets as they might really be: printable, no whitespace or delimiters of the raw
# `key=value` form (those cannot be told apart from the text around them), no mask character.
_SECRET_ALPHABET = string.ascii_letters + string.digits + "-_.~!$()+/:=@[]{}^|%#?"
_TEMPLATES = [
    lambda s: f"https://api.example.com/v1/persons?start=0&api_token={quote(s, safe='')}&limit=100",
    lambda s: f"grant_type=password&username=u&password={quote_plus(s)}&client_secret={quote_plus(s)}",
    lambda s: json.dumps({"username": "u", "password": s, "nested": {"refresh_token": s}}),
    lambda s: str({"Authorization": f"Bearer {s}", "Accept": "application/json"}),
    lambda s: f"POST /x HTTP/1.1\r\nAuthorization: Token {s}\r\nAccept: */*\r\n",
    lambda s: f"login rejected: password={s} for user bob",
    lambda s: f"X-API-Token: {s}",
    lambda s: f"<n1:password>{s}</n1:password>",
    lambda s: f"postgresql://airflow:{quote(s, safe='')}@db:5432/airflow",
    lambda s: f"{{'access_token': '{s}', 'instance_url': 'https://x'}}",
]


@given(
    secret=st.text(alphabet=_SECRET_ALPHABET, min_size=6, max_size=64),
    template=st.sampled_from(_TEMPLATES),
)
def test_a_random_secret_never_survives_redaction(secret: str, template: object) -> None:
    render = template  # type: ignore[assignment]
    text = render(secret)  # type: ignore[operator]
    skeleton = render("\x00")  # type: ignore[operator]
    encoded = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    assume(not any(form in part for form in encoded for part in skeleton.split("\x00")))

    redacted = redact(text)

    assert MASK in redacted
    for form in encoded:
        assert form not in redacted
