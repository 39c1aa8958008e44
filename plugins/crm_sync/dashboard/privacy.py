"""Keep personal data off the dashboard: keys and codes are shown, field values are not.

The ledger stores the target system's own error message, which can quote the value it
refused ("invalid email: ann@example.org"). Messages pass through the secret redaction
and then lose anything shaped like an e-mail address or a phone number.
"""

from __future__ import annotations

import re

from crm_sync.redaction import MASK, redact

__all__ = ["scrub"]

_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")
# Seven or more digits, optionally led by + and broken by spaces, dots, dashes or brackets.
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d\s().-]{5,}\d(?!\w)")
# A value quoted right after a colon or equals sign: "value 'Ann' is too long" style echoes.
_QUOTED = re.compile(r"""(?<=[:=]\s)(['"]).*?\1|(?<=[:=])(['"]).*?\2""")


def scrub(text: str | None, limit: int = 500) -> str | None:
    """Return ``text`` without secrets, e-mail addresses, phone numbers or quoted values."""
    if text is None:
        return None
    cleaned = redact(text)
    cleaned = _EMAIL.sub(MASK, cleaned)
    cleaned = _PHONE.sub(MASK, cleaned)
    cleaned = _QUOTED.sub(MASK, cleaned)
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"
