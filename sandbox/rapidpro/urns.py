"""Contact URNs as RapidPro parses, validates and normalises them (``scheme:path``)."""

from __future__ import annotations

import re

import phonenumbers

# The schemes RapidPro knows (temba/contacts/models.py URN schemes); others are invalid.
SCHEMES = frozenset(
    {
        "tel",
        "whatsapp",
        "mailto",
        "twitter",
        "twitterid",
        "facebook",
        "instagram",
        "telegram",
        "viber",
        "line",
        "ext",
        "fcm",
        "jiochat",
        "wechat",
        "freshchat",
        "vk",
        "discord",
        "rocketchat",
        "webchat",
        "slack",
    }
)
_DIGITS = re.compile(r"^\d{1,15}$")


class InvalidUrn(ValueError):
    """A URN RapidPro would refuse."""


def normalize(urn: object, country: str | None) -> str:
    """Return the normalised identity of ``urn`` (``tel`` in E.164, handles lower-cased).

    Args:
        urn: the URN as sent by the client.
        country: the workspace's ISO country code, used for ``tel`` numbers without ``+``.

    Raises:
        InvalidUrn: no known scheme, or a path that scheme does not accept.
    """
    if not isinstance(urn, str) or ":" not in urn:
        raise InvalidUrn(str(urn))
    scheme, _, path = urn.partition(":")
    scheme, path = scheme.strip().lower(), path.strip()
    if scheme not in SCHEMES or not path:
        raise InvalidUrn(urn)
    if scheme == "tel":
        return f"tel:{_e164(path, country, urn)}"
    if scheme == "whatsapp":
        digits = path.lstrip("+")
        if not _DIGITS.match(digits):
            raise InvalidUrn(urn)
        return f"whatsapp:{digits}"
    if scheme == "mailto":
        if "@" not in path:
            raise InvalidUrn(urn)
        return f"mailto:{path.lower()}"
    if scheme == "twitter":
        return f"twitter:{path.lstrip('@').lower()}"
    return f"{scheme}:{path}"


def _e164(path: str, country: str | None, urn: str) -> str:
    try:
        parsed = phonenumbers.parse(path, None if path.startswith("+") else country)
    except phonenumbers.NumberParseException as exc:
        raise InvalidUrn(urn) from exc
    # RapidPro accepts any *possible* number (not only assigned ranges), as here.
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidUrn(urn)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
