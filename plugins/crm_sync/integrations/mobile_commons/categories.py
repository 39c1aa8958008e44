"""The synchronization report's categories (seed-notes section 003) and how outcomes map to them."""

from __future__ import annotations

from crm_sync.sync.records import Change, Outcome, Status

__all__ = ["CATEGORIES", "category_of", "not_written"]

DEFERRED = "deferred_subscription"
FIELD_CONFLICT = "field_conflict"
NO_NEW_CHANGES = "no_new_changes"
NO_DIFFERENCE = "no_difference"
UNABLE_TO_UPDATE = "unable_to_update"
NO_IMPORT = "no_import"
NO_EXPORT = "no_export"
SKIPPED_MEMBERS = "skipped_members"
VALIDATION_ERROR = "validation_error"
PROCESSING_ERROR = "processing_error"
CREATED = "created"
UPDATED = "updated"

CATEGORIES: dict[str, str] = {
    CREATED: "Created",
    UPDATED: "Updated",
    DEFERRED: "Deferred Subscription (daily quota reached; retried after the reset)",
    FIELD_CONFLICT: "Field Conflict (no action taken)",
    NO_NEW_CHANGES: "No New Changes",
    NO_DIFFERENCE: "No Difference",
    UNABLE_TO_UPDATE: "Unable to Update",
    NO_IMPORT: "No Import (missing phone or Required field)",
    NO_EXPORT: "No Export (missing email)",
    SKIPPED_MEMBERS: "Skipped Members (multiple matches)",
    VALIDATION_ERROR: "Validation Error (credentials)",
    PROCESSING_ERROR: "Processing Error",
}


def category_of(status: str, action: str, error_code: str | None) -> str:
    """The report category of one ``sync_log`` row."""
    if error_code in CATEGORIES:
        return str(error_code)
    if status == "parked":
        return DEFERRED
    if status == "success":
        return CREATED if action == "create" else UPDATED
    if status == "rejected":
        return UNABLE_TO_UPDATE
    return PROCESSING_ERROR


def not_written(
    change: Change,
    category: str,
    message: str | None,
    *,
    status: Status = Status.SKIPPED,
    field: str | None = None,
) -> Outcome:
    """The outcome of a record the sync did not write, with its category as the error code."""
    return Outcome(
        key=change.key,
        action=change.action,
        status=status,
        target_id=change.target_id,
        error_code=category,
        message=message,
        field=field,
        row_hash=change.row_hash,
    )
