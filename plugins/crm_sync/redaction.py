"""Mask secrets (tokens, passwords, API keys, session ids) in log lines, URLs and error texts.

Redaction is pattern based, so it also catches secrets that never went through a connection
object: a token echoed in an error body, an ``api_token`` in a query string, a Salesforce
session id in a SOAP login response. Masks keep the key and drop the value, so a log line
still says *which* credential was involved.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

__all__ = [
    "MASK",
    "RedactingFilter",
    "install_redaction",
    "is_sensitive_key",
    "redact",
    "redact_url",
    "safe_excerpt",
]

MASK = "***"

# Key names whose values are secret, matched as a suffix of the key, case-insensitively:
# `x-api-token`, `hapikey`, `client_secret`, `aws_secret_access_key`, `sessionId` ...
_KEY_SUFFIX = (
    r"password|passwd|passphrase|pwd|secret|api[_-]?key|access[_-]?key|private[_-]?key"
    r"|token|session[_-]?id|sid|signature|sig|cookie"
    # Personal data that APIs take as query parameters (RapidPro `?urn=tel:+27...`,
    # Mobile Commons `phone_number=`): logs name records by key, never by phone or email.
    r"|urn|phone|phone[_-]?number|msisdn|email"
)
_KEY = rf"[\w.-]*?(?:{_KEY_SUFFIX})"
_KEY_RE = re.compile(rf"{_KEY}", re.IGNORECASE)

# A value is a quoted string (escapes allowed; an unterminated one runs to the end, so a
# truncated body still gets masked) or a bare run that stops at a delimiter of query strings,
# form bodies, cookies, headers rendered as text and JSON.
_DQ = r'"(?:\\.|[^"\\])*(?:"|$)'
_SQ = r"'(?:\\.|[^'\\])*(?:'|$)"
_BARE = r"""[^\s&"'<>;,]+"""

# `password=x`, `api_token: x`, `"password": "x"`, `'token': 'x'`, `{"token": 123}`.
_KEY_VALUE = re.compile(
    rf"""(?<![\w.-])(?P<q>["']?)(?P<key>{_KEY})(?P=q)(?P<sep>\s*[:=]\s*)"""
    rf"""(?P<val>{_DQ}|{_SQ}|{_BARE})""",
    re.IGNORECASE,
)
# `Authorization: Bearer x`, `'Authorization': 'Basic x'`: keep the scheme, mask the rest.
_AUTH_HEADER = re.compile(
    r"""(?<![\w.-])(?P<q>["']?)(?P<key>(?:proxy-)?authorization)(?P=q)(?P<sep>\s*[:=]\s*)"""
    rf"""(?P<val>{_DQ}|{_SQ}|[^\r\n"']+)""",
    re.IGNORECASE,
)
_AUTH_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][\w-]*\s+)(?=\S)")
# A bearer token outside any header, e.g. echoed in an error message.
_BEARER = re.compile(r"\b(?P<scheme>bearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE)
# `<n1:password>x</n1:password>`, `<sessionId>x</sessionId>` (Salesforce SOAP login).
_XML_ELEMENT = re.compile(rf"(?P<open><(?:[\w.-]+:)?{_KEY}>)[^<]*(?=</)", re.IGNORECASE)
# Salesforce session ids: the 15/18-char org id, `!`, then the secret part. The org id stays.
_SF_SESSION_ID = re.compile(r"\b(?P<org>00D[A-Za-z0-9]{12,15})![A-Za-z0-9._]+")
# `scheme://user:password@host` and `scheme://user@host`.
_USERINFO = re.compile(
    r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^\s/:@?#]*)(?::(?P<password>[^\s@/?#]*))?@",
    re.IGNORECASE,
)
# An AWS secret access key: 40 base64 characters, standing alone.
_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{7,15}|\d{10,15})(?!\w)")
_WHITESPACE = re.compile(r"\s+")


def is_sensitive_key(name: str) -> bool:
    """Return True when a field, header or parameter of this name holds a secret."""
    return bool(_KEY_RE.fullmatch(name.strip())) or name.strip().lower() in {
        "authorization",
        "proxy-authorization",
    }


def _mask_value(value: str) -> str:
    """Mask a value, keeping its quotes so JSON and dict reprs stay readable."""
    if value[:1] in {'"', "'"}:
        return f"{value[0]}{MASK}{value[0]}"
    return MASK


def _mask_key_value(match: re.Match[str]) -> str:
    return f"{match['q']}{match['key']}{match['q']}{match['sep']}{_mask_value(match['val'])}"


def _mask_auth_header(match: re.Match[str]) -> str:
    value = match["val"]
    quote = value[0] if value[:1] in {'"', "'"} else ""
    inner = value[1:].rstrip(quote) if quote else value
    scheme = _AUTH_SCHEME.match(inner)
    masked = f"{scheme['scheme'] if scheme else ''}{MASK}"
    return f"{match['q']}{match['key']}{match['q']}{match['sep']}{quote}{masked}{quote}"


def _mask_userinfo_parts(user: str, password: str | None) -> str:
    """Mask a URL's userinfo: always the password, and the user when it is the credential.

    An API key used as the user name comes with no password or a one-letter one (Maxio/
    Chargify ``KEY:x@``, Stripe ``sk_...:@``, ``TOKEN@host``); a real password means the user
    name is just a name.
    """
    if password is None or len(password) <= 1:
        return f"{MASK}:{MASK}" if password else MASK
    return f"{user}:{MASK}"


def _mask_userinfo(match: re.Match[str]) -> str:
    return f"{match['scheme']}{_mask_userinfo_parts(match['user'], match['password'])}@"


def _mask_aws_secret(match: re.Match[str]) -> str:
    text = match.group(0)
    # Hex digests (sha1 row hashes) are 40 characters too but never mix case.
    # Paths are mostly slashes; a random key has one or two `/` or `+` on average.
    looks_random = (
        any(c.islower() for c in text)
        and any(c.isupper() for c in text)
        and any(c.isdigit() for c in text)
        and sum(c in "/+" for c in text) <= 5
    )
    return MASK if looks_random else text


def redact(text: str) -> str:
    """Return ``text`` with every recognised secret replaced by ``***``."""
    if not text:
        return text
    text = _USERINFO.sub(_mask_userinfo, text)
    text = _AUTH_HEADER.sub(_mask_auth_header, text)
    text = _BEARER.sub(lambda m: f"{m['scheme']}{MASK}", text)
    text = _XML_ELEMENT.sub(lambda m: f"{m['open']}{MASK}", text)
    text = _KEY_VALUE.sub(_mask_key_value, text)
    text = _SF_SESSION_ID.sub(lambda m: f"{m['org']}!{MASK}", text)
    return _AWS_SECRET.sub(_mask_aws_secret, text)


def _redact_query(query: str) -> str:
    """Mask the values of sensitive parameters, leaving every other byte as it was."""
    parts = []
    for part in query.split("&"):
        key, sep, _ = part.partition("=")
        parts.append(f"{key}={MASK}" if sep and is_sensitive_key(unquote_plus(key)) else part)
    return "&".join(parts)


def redact_url(url: str) -> str:
    """Return ``url`` with its userinfo password and sensitive query values masked."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, has_password, password = userinfo.partition(":")
        netloc = f"{_mask_userinfo_parts(user, password if has_password else None)}@{host}"
    rebuilt = SplitResult(parts.scheme, netloc, parts.path, _redact_query(parts.query), parts.fragment)
    return redact(urlunsplit(rebuilt))


def safe_excerpt(text: str, limit: int = 300) -> str:
    """Return a one-line excerpt of a response body fit for an exception or a log line.

    Secrets are masked, and so are e-mail addresses and phone numbers: error bodies often
    echo the record that was refused, and exception texts must not carry personal data.
    """
    text = redact(text[: limit * 8])
    text = _EMAIL.sub(MASK, text)
    text = _PHONE.sub(MASK, text)
    text = _WHITESPACE.sub(" ", text).strip()
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message, arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        if getattr(record, "crm_sync_redacted", False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A malformed format string: keep the line but not the arguments, which could be
            # values whose key sits in the format string ("token=%s %s").
            message = f"{record.msg} (arguments withheld: they do not fit the format)"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record.crm_sync_redacted = True
        return True


def _add_filter(target: logging.Filterer) -> None:
    if not any(isinstance(existing, RedactingFilter) for existing in target.filters):
        target.addFilter(RedactingFilter())


def install_redaction(logger_name: str = "crm_sync") -> None:
    """Attach a :class:`RedactingFilter` to a logger, its handlers and its existing children.

    Safe to call many times. Logger filters only see records created by that very logger,
    not those its children propagate, hence the walk over descendants that exist now; call
    it again after importing modules that create new loggers (``build_session`` does).
    """
    logger = logging.getLogger(logger_name)
    targets: list[logging.Filterer] = [logger, *logger.handlers]
    prefix = f"{logger_name}."
    for name, child in list(logging.root.manager.loggerDict.items()):
        if name.startswith(prefix) and isinstance(child, logging.Logger):
            targets.extend([child, *child.handlers])
    for target in targets:
        _add_filter(target)
