"""The nightly Salesforce -> Mobile Commons profile sync: extract, classify and the profile pusher.

Everything here runs inside tasks with the run's :class:`SyncRun`, never at DAG parse time.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from crm_sync.exceptions import ConfigurationError, RecordRejected, RetriableApiError
from crm_sync.hooks.mobile_commons import MobileCommonsHook, Profile
from crm_sync.hooks.salesforce import SalesforceSyncHook
from crm_sync.hooks.soql import Fragment, fragment, select, validate_sf_id
from crm_sync.integrations.mobile_commons import categories as cat
from crm_sync.integrations.mobile_commons.fieldmap import PROFILE_FIELDS, ProfileMap
from crm_sync.integrations.mobile_commons.runtime import (
    NIGHTLY,
    QUOTA_API,
    daily_budget,
    guard_credentials,
    load_config,
    take,
)
from crm_sync.operators.context import SyncRun
from crm_sync.sync.adapters import is_blank
from crm_sync.sync.diff import iter_changes
from crm_sync.sync.ledger import apply_outcomes
from crm_sync.sync.records import Action, Change, Outcome, Status

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

INTEGRATION = NIGHTLY
ENTITY = "profile"
KEY = "key"
KEY_HEADING = "Contact ID"
"""The report column holding the Salesforce record id (the vendor's "Contact ID" column)."""


# ---- extract ----------------------------------------------------------------------------------


def requested_ids(run: SyncRun) -> list[str]:
    """The ``keys`` Param (the dashboard's retry): Salesforce ids, each checked before any query.

    Raises:
        ConfigurationError: naming the key that is not a Salesforce id.
    """
    keys = run.requested_keys()
    for key in keys:
        try:
            validate_sf_id(key)
        except ValueError as exc:
            raise ConfigurationError(f"Param 'keys': {exc}") from exc
    return keys


def _soql_rows(
    sf: SalesforceSyncHook, pmap: ProfileMap, keys: Sequence[str]
) -> Iterator[tuple[Mapping[str, Any], str]]:
    config = pmap.config
    # soql_filter is trusted configuration (like a view definition), not data.
    where = fragment(config.soql_filter) if config.soql_filter else None
    if keys:
        only = fragment("Id IN {}", list(keys))
        where = Fragment(f"({where}) AND {only}") if where else only
    query = select(config.salesforce_object, pmap.api_names, where=where, order_by=["Id"])
    for row in sf.query(str(query)):
        yield row, str(row["Id"])


def _report_rows(sf: SalesforceSyncHook, pmap: ProfileMap) -> Iterator[tuple[Mapping[str, Any], str]]:
    parts = urlsplit(str(pmap.config.report_url))
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    response = sf.client.call("rest", "GET", target, idempotent=True, stream=True)
    try:
        lines = response.iter_lines(decode_unicode=True)
        reader = csv.DictReader(line.lstrip("\ufeff") if isinstance(line, str) else line for line in lines)
        header = list(reader.fieldnames or [])
        pmap.check_header(header, KEY_HEADING)
        for position, row in enumerate(reader, start=2):
            key = (row.get(KEY_HEADING) or "").strip()
            if not key:
                log.warning("report line %d has no %s: not synced", position, KEY_HEADING)
                continue
            yield {name: (None if value == "" else value) for name, value in row.items()}, key
    finally:
        response.close()


def profile_records(run: SyncRun) -> Iterator[dict[str, Any]]:
    """Salesforce records shaped as profile payloads (Conservative: opted-in records only).

    A run given ``keys`` (Salesforce ids) reads only those records: the SOQL source asks for
    them by Id; the report source (a fixed export) keeps only their rows.
    """
    from crm_sync.hooks.database import StagingHook

    keys = requested_ids(run)
    config = load_config(run)
    pmap = ProfileMap(config)
    sf = SalesforceSyncHook()
    if config.source == "report":
        wanted = set(keys)
        rows = (r for r in _report_rows(sf, pmap) if not wanted or r[1] in wanted)
    else:
        rows = _soql_rows(sf, pmap, keys)
    excluded = 0
    iterator = iter(rows)
    engine = StagingHook().get_engine()
    while True:
        try:
            row, key = guard_credentials(engine, run, sf.conn_id, lambda: next(iterator))
        except StopIteration:
            break
        payload = pmap.shape(row, key)
        if pmap.excluded(payload):
            excluded += 1
            continue
        yield payload
    if excluded:
        log.info("conservative sync: %d records without opt-in are not synced", excluded)


# ---- classify ---------------------------------------------------------------------------------


def classify(run: SyncRun, engine: Engine, entity: str = ENTITY) -> dict[str, int]:
    """Before the push: records sharing a phone are Skipped Members; unchanged ones No New Changes.

    Two streaming passes over this run's staged records (memory: one counter of phones).
    """
    phones: Counter[str] = Counter()
    scope = {"run_id": run.run_id, "integration": run.integration, "entity": entity}
    everything = ("create", "update", "unchanged")
    for chunk in iter_changes(engine, actions=everything, **scope):
        phones.update(
            p for c in chunk if c.payload and (p := c.payload.get("phone_number")) and "skip" not in c.payload
        )
    shared = {phone for phone, count in phones.items() if count > 1}
    counts: Counter[str] = Counter()

    def outcomes() -> Iterator[Outcome]:
        for chunk in iter_changes(engine, actions=everything, **scope):
            for change in chunk:
                payload = change.payload or {}
                if payload.get("phone_number") in shared and "skip" not in payload:
                    counts[cat.SKIPPED_MEMBERS] += 1
                    yield cat.not_written(
                        change, cat.SKIPPED_MEMBERS, "several Salesforce records share this mobile number"
                    )
                elif change.action == Action.UNCHANGED:
                    counts[cat.NO_NEW_CHANGES] += 1
                    yield cat.not_written(change, cat.NO_NEW_CHANGES, None)

    apply_outcomes(engine, outcomes=outcomes(), **scope)
    log.info("classified before the push: %s", dict(counts))
    return dict(counts)


# ---- push -------------------------------------------------------------------------------------


class ProfilePusher:
    """Sends changed records to ``profile_update``: one call per record, in parallel, within quota."""

    def __init__(self, run: SyncRun, engine: Engine) -> None:
        self.run = run
        self.engine = engine
        self.config = load_config(run)
        self.budget = daily_budget(engine, self.config)

    @cached_property
    def mc(self) -> MobileCommonsHook:
        """The Mobile Commons hook."""
        return MobileCommonsHook()

    def push(self, changes: Sequence[Change]) -> list[Outcome]:
        """Write ``changes``; one outcome per change."""
        return guard_credentials(
            self.engine, self.run, self.mc.mobile_commons_conn_id, lambda: self._push(changes)
        )

    def _push(self, changes: Sequence[Change]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        ready = []
        for change in changes:
            skip = (change.payload or {}).get("skip")
            if skip:
                outcomes.append(
                    cat.not_written(change, skip["category"], skip["message"], field=skip.get("field"))
                )
            else:
                ready.append(change)
        existing = self.mc.profiles_by_phone([c.payload["phone_number"] for c in ready if c.payload])
        writes: list[tuple[Change, dict[str, Any], int | None, str]] = []
        for change in ready:
            decided = self._decide(
                change, existing.get(change.payload["phone_number"]) if change.payload else None
            )
            if isinstance(decided, Outcome):
                outcomes.append(decided)
            else:
                writes.append(decided)
        granted = take(self.budget, len(writes))
        for change, *_ in writes[granted:]:
            outcomes.append(Outcome.parked(change, cat.DEFERRED, "daily quota reached; sent after the reset"))
        with ThreadPoolExecutor(max_workers=self.mc.max_concurrent) as pool:
            outcomes.extend(pool.map(lambda write: self._write(*write), writes[:granted]))
        return outcomes

    def _decide(
        self, change: Change, profile: Profile | None
    ) -> Outcome | tuple[Change, dict[str, Any], int | None, str]:
        payload = change.payload or {}
        column = self.config.constituent_column
        fields = {name: payload.get(name) for name in PROFILE_FIELDS if not is_blank(payload.get(name))}
        fields[column] = change.key  # the Salesforce id as the profile's Constituent ID
        if profile is not None:
            owner = profile.custom.get(column)
            if owner and owner != change.key:
                return cat.not_written(
                    change,
                    cat.FIELD_CONFLICT,
                    "the profile's Constituent ID names another Salesforce record",
                    field=column,
                )
            current = {**profile.fields, **profile.custom}
            if all(str(current.get(name, "")) == str(value) for name, value in fields.items()):
                return Outcome(
                    key=change.key,
                    action=change.action,
                    status=Status.SUCCESS,
                    target_id=profile.id,
                    error_code=cat.NO_DIFFERENCE,
                    row_hash=change.row_hash,
                )
        path = None
        note = "created" if profile is None else "updated"
        if profile is None and payload.get("opt_in") is not False:
            path = self.config.path_for(payload.get("group"))
        elif profile is not None and profile.opted_out:
            # Opt-in law: an opted-out number is never re-subscribed by this sync.
            note = "updated; opted out, not re-subscribed"
        return change, fields, path, note

    def _write(self, change: Change, fields: dict[str, Any], path: int | None, note: str) -> Outcome:
        try:
            profile = self.mc.profile_update(
                change.payload["phone_number"], fields, opt_in_path_id=path, key=change.key
            )
        except RecordRejected as exc:
            return Outcome.rejected(change, cat.UNABLE_TO_UPDATE, f"{exc.code}: {exc.reason}")
        except RetriableApiError as exc:
            return Outcome.failed(change, cat.PROCESSING_ERROR, f"{exc.code or exc.status}: retried next run")
        message = f"{note}{f'; opt-in path {path}' if path else ''}"
        return Outcome(
            key=change.key,
            # What happened in Mobile Commons (a record new to the sync may update a profile).
            action=Action.CREATE if note == "created" else Action.UPDATE,
            status=Status.SUCCESS,
            target_id=profile.id,
            message=message,
            row_hash=change.row_hash,
        )

    def api_calls(self) -> Mapping[str, int]:
        """Mobile Commons calls made so far."""
        return {"mobile_commons": self.mc.calls}

    def budget_left(self) -> Mapping[str, int | None]:
        """Records left in today's shared quota (None: unlimited)."""
        return {QUOTA_API: self.budget.remaining()}


def profile_pusher(run: SyncRun, engine: Engine) -> ProfilePusher:
    """The PushChangesOperator factory."""
    return ProfilePusher(run, engine)
