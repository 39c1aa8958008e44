"""Salesforce record ids: 15-character case-sensitive ids plus the 3-character checksum suffix."""

from __future__ import annotations

import itertools
import re
import threading

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")


def checksum(id15: str) -> str:
    """The suffix that makes a 15-char id case-insensitively unique (one char per 5 chars)."""
    suffix = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if "A" <= char <= "Z")
        suffix += _SUFFIX[bits]
    return suffix


def to_18(value: str) -> str | None:
    """Normalise a 15- or 18-char id to 18 chars; None when it is not a well-formed id."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        return None
    id15 = value[:15]
    full = id15 + checksum(id15)
    if len(value) == 18 and value[15:].upper() != full[15:].upper():
        return None
    return full


class IdFactory:
    """Mints unique ids: ``<prefix>`` + pod ``8V0`` + a base-62 counter + checksum."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        """A fresh 18-char id with the given 3-char key prefix."""
        with self._lock:
            number = next(self._counter)
        digits = ""
        while number:
            number, rem = divmod(number, 62)
            digits = _BASE62[rem] + digits
        id15 = prefix + "8V0" + digits.rjust(9, "0")
        return id15 + checksum(id15)
