"""Errors grouped by what the caller does next.

| branch                 | caller's next step                                           |
|------------------------|--------------------------------------------------------------|
| ``RetriableError``     | retry the same request after a backoff (429, 5xx, lock rows) |
| ``QuotaExhausted``     | stop cleanly; park the rest until the quota resets           |
| ``FatalError``         | fail the run: auth, configuration, a bug in a request        |
| ``RecordRejected``     | record the outcome in the ledger, go on with the batch       |

No exception text may carry a secret or a field value: messages name records by their key
and fields by their name, never by content.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "AuthError",
    "ConfigurationError",
    "FatalApiError",
    "FatalError",
    "MappingError",
    "QuotaExhausted",
    "RecordRejected",
    "RetriableApiError",
    "RetriableError",
    "SyncError",
]


class SyncError(Exception):
    """Root of every error raised by crm_sync."""


class RetriableError(SyncError):
    """A transient failure: the same request may succeed after a backoff."""


class RetriableApiError(RetriableError):
    """An API answered with a transient error (429, 5xx, lock contention, dropped link)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class QuotaExhausted(SyncError):
    """A daily or long-window budget is spent: stop, keep what is left for the next run."""

    def __init__(self, message: str, *, api: str, resets_at: datetime | None = None) -> None:
        super().__init__(message)
        self.api = api
        self.resets_at = resets_at


class FatalError(SyncError):
    """The run cannot go on: retrying the same thing will fail the same way."""


class FatalApiError(FatalError):
    """An API refused a request for a reason no retry can fix (4xx other than 429)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(FatalApiError):
    """Credentials were refused (and a token refresh did not help)."""


class ConfigurationError(FatalError):
    """Configuration is missing or wrong: a connection, a Variable, a flow, a field map."""


class MappingError(ConfigurationError):
    """A field-mapping file is invalid; the message names the file and the line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = f"{path}:{line}: " if path and line else (f"{path}: " if path else "")
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class RecordRejected(SyncError):
    """One record cannot be synced; it goes to the ledger and the batch goes on.

    Args:
        key: the record's key (never a field value other than the key itself).
        code: a short machine-readable reason, the target API's own code where it has one.
        message: a human-readable reason naming the field, not its content.
        field: the offending field's name, when one field is to blame.
    """

    def __init__(self, key: str | None, code: str, message: str, *, field: str | None = None) -> None:
        label = f"record {key!r}" if key is not None else "record without a key"
        where = f" field {field!r}" if field else ""
        super().__init__(f"{label}{where}: {code}: {message}")
        self.key = key
        self.code = code
        self.reason = message
        self.field = field
