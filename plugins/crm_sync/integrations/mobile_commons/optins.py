"""The 5-minute Mobile Commons -> Salesforce opt-in push: extract opt-in changes, the Salesforce pusher.

An opt-in of a profile with an email creates or updates the matching Salesforce record with
the opt-in field true; an opt-out sets it false on the matching record; the Salesforce id goes
back to the profile as its Constituent ID. Records are matched by the profile's Constituent
ID, else by email; several matches are reported, never guessed. Records the daily quota left
for later are picked up again by the next run (their staged phone is re-read), so a window
that has passed loses nothing.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crm_sync.exceptions import ConfigurationError, RecordRejected, RetriableApiError
from crm_sync.hooks.mobile_commons import MobileCommonsHook, Profile
from crm_sync.hooks.salesforce import SalesforceSyncHook
from crm_sync.hooks.salesforce_types import RecordResult
from crm_sync.hooks.soql import fragment, select, sf_id_18, validate_sf_id
from crm_sync.integrations.mobile_commons import categories as cat
from crm_sync.integrations.mobile_commons.config import MobileCommonsConfig
from crm_sync.integrations.mobile_commons.runtime import (
    OPTINS,
    QUOTA_API,
    daily_budget,
    guard_credentials,
    load_config,
    take,
)
from crm_sync.operators.context import SyncRun
from crm_sync.sync.records import Action, Change, Outcome, Status
from crm_sync.sync.schema import staged_record, sync_log

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

INTEGRATION = OPTINS
ENTITY = "optin"
KEY = "key"
DEFAULT_WINDOW = timedelta(minutes=5)
SOQL_IN = 200
IN = "in"
OUT = "out"


# ---- extract ----------------------------------------------------------------------------------


def _window(run: SyncRun) -> tuple[datetime, datetime]:
    end = run.window_end or datetime.now(UTC)
    return (run.window_start or end - DEFAULT_WINDOW), end


def _staged_phones(
    engine: Engine, *, keys: Sequence[str] | None = None, statuses: Sequence[str] | None = None
) -> dict[str, str]:
    """Profile id -> phone, read from the staged row of each profile's latest outcome.

    Args:
        engine: the staging database.
        keys: only these profiles (None: all).
        statuses: only profiles whose latest outcome has one of these statuses (None: any).
    """
    latest = sa.select(sync_log.c.key, sa.func.max(sync_log.c.id).label("id")).where(
        sync_log.c.integration == INTEGRATION, sync_log.c.entity == ENTITY
    )
    if keys is not None:
        latest = latest.where(sync_log.c.key.in_(list(keys)))
    latest = latest.group_by(sync_log.c.key).subquery()
    staged = sa.select(sync_log.c.key, staged_record.c.payload).select_from(
        sync_log.join(latest, sync_log.c.id == latest.c.id).join(
            staged_record,
            sa.and_(
                staged_record.c.run_id == sync_log.c.run_id,
                staged_record.c.integration == sync_log.c.integration,
                staged_record.c.entity == sync_log.c.entity,
                staged_record.c.key == sync_log.c.key,
            ),
        )
    )
    if statuses is not None:
        staged = staged.where(sync_log.c.status.in_(list(statuses)))
    with engine.connect() as conn:
        return {key: json.loads(payload)["phone"] for key, payload in conn.execute(staged).all() if payload}


def deferred_phones(engine: Engine) -> list[str]:
    """Phones of profiles whose latest outcome was parked or failed (read from their staged row)."""
    return list(_staged_phones(engine, statuses=("parked", "failed")).values())


def requested_phones(engine: Engine, keys: Sequence[str]) -> dict[str, str]:
    """Profile id -> phone of the ``keys`` a retry asked for (Mobile Commons looks profiles up by phone).

    Raises:
        ConfigurationError: naming the profile ids this integration never staged.
    """
    phones = _staged_phones(engine, keys=keys)
    unknown = [key for key in keys if key not in phones]
    if unknown:
        raise ConfigurationError(
            "Param 'keys': no staged opt-in (so no phone to look up) for profile id(s) "
            + ", ".join(unknown[:10])
        )
    return phones


def _state(profile: Profile) -> str | None:
    if profile.opted_out or (profile.subscriptions and not profile.subscribed):
        return OUT
    return IN if profile.subscribed else None


def _changed_in(profile: Profile, start: datetime, end: datetime) -> bool:
    stamps = [profile.opted_out_at]
    stamps += [s.activated_at for s in profile.subscriptions] + [
        s.opted_out_at for s in profile.subscriptions
    ]
    return any(stamp is not None and start <= stamp < end for stamp in stamps)


def _payload(profile: Profile, config: MobileCommonsConfig, state: str) -> dict[str, Any]:
    return {
        KEY: profile.id,
        "phone": profile.phone,
        "state": state,
        "email": (profile.fields.get("email") or "").strip().lower() or None,
        "first_name": profile.fields.get("first_name"),
        "last_name": profile.fields.get("last_name"),
        "constituent_id": profile.custom.get(config.constituent_column) or None,
    }


def _requested(
    mc: MobileCommonsHook, engine: Engine, config: MobileCommonsConfig, keys: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """The current opt-in state of exactly the ``keys`` profiles, whatever the window."""
    phones = requested_phones(engine, keys)
    wanted = set(keys)
    for profile in mc.profiles_by_phone(sorted(set(phones.values()))).values():
        state = _state(profile)
        if state and profile.id in wanted:
            yield _payload(profile, config, state)


def optin_records(run: SyncRun) -> Iterator[dict[str, Any]]:
    """Opt-in changes of the window: profiles and campaign subscribers, plus deferred ones.

    A run given ``keys`` (profile ids, the dashboard's retry) reads exactly those profiles'
    current state instead, and nothing else.
    """
    from crm_sync.hooks.database import StagingHook

    engine = StagingHook().get_engine()
    config = load_config(run)
    mc = MobileCommonsHook()
    keys = run.requested_keys()
    if keys:
        retried = guard_credentials(
            engine, run, mc.mobile_commons_conn_id, lambda: list(_requested(mc, engine, config, keys))
        )
        log.info("retry: %d of %d requested profiles have an opt-in state", len(retried), len(keys))
        yield from retried
        return
    start, end = _window(run)
    seen: set[str] = set()

    def read() -> Iterator[dict[str, Any]]:
        for profile in mc.iter_profiles(start, end):
            state = _state(profile)
            if state and _changed_in(profile, start, end) and profile.id not in seen:
                seen.add(profile.id)
                yield _payload(profile, config, state)
        extra = {s.phone for c in mc.campaigns() for s in mc.iter_campaign_subscribers(c.id, start, end)}
        extra.update(deferred_phones(engine))
        for profile in mc.profiles_by_phone(sorted(extra)).values():
            state = _state(profile)
            if state and profile.id not in seen:
                seen.add(profile.id)
                yield _payload(profile, config, state)

    yield from guard_credentials(engine, run, mc.mobile_commons_conn_id, lambda: list(read()))
    log.info("opt-in changes between %s and %s: %d profiles", start.isoformat(), end.isoformat(), len(seen))


# ---- push -------------------------------------------------------------------------------------


def _sf_id(raw: Any) -> str | None:
    try:
        return sf_id_18(validate_sf_id(str(raw))) if raw else None
    except ValueError:
        return None


class OptinPusher:
    """Writes the opt-in field to the matching Salesforce record and returns its id as Constituent ID."""

    def __init__(self, run: SyncRun, engine: Engine) -> None:
        self.run = run
        self.engine = engine
        self.config = load_config(run)
        self.budget = daily_budget(engine, self.config)

    @cached_property
    def sf(self) -> SalesforceSyncHook:
        """The Salesforce hook."""
        return SalesforceSyncHook()

    @cached_property
    def mc(self) -> MobileCommonsHook:
        """The Mobile Commons hook (Constituent ID write-back)."""
        return MobileCommonsHook()

    def push(self, changes: Sequence[Change]) -> list[Outcome]:
        """Write ``changes``; one outcome per change."""
        return guard_credentials(self.engine, self.run, self.sf.conn_id, lambda: self._push(changes))

    def _records(self, where: str, values: list[str]) -> list[dict[str, Any]]:
        fields = ["Id", "Email", self.config.optin_field]
        rows: list[dict[str, Any]] = []
        for start in range(0, len(values), SOQL_IN):
            part = values[start : start + SOQL_IN]
            query = select(self.config.salesforce_object, fields, where=fragment(f"{where} IN {{}}", part))
            rows.extend(self.sf.query(str(query), bulk=False))
        return rows

    def _push(self, changes: Sequence[Change]) -> list[Outcome]:
        payloads = {c.key: c.payload or {} for c in changes}
        ids = sorted({i for p in payloads.values() if (i := _sf_id(p.get("constituent_id")))})
        emails = sorted(
            {p["email"] for p in payloads.values() if p.get("email") and not _sf_id(p.get("constituent_id"))}
        )
        by_id = {row["Id"]: row for row in self._records("Id", ids)} if ids else {}
        by_email: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self._records("Email", emails) if emails else []:
            by_email[str(row.get("Email") or "").lower()].append(row)
        outcomes: list[Outcome] = []
        updates: list[tuple[Change, dict[str, Any]]] = []
        creates: list[tuple[Change, dict[str, Any]]] = []
        optin = self.config.optin_field
        for change in changes:
            payload = payloads[change.key]
            want = payload.get("state") == IN
            cid = _sf_id(payload.get("constituent_id"))
            record = None
            if cid:
                record = by_id.get(cid)
                if record is None:
                    outcomes.append(
                        cat.not_written(
                            change,
                            cat.PROCESSING_ERROR,
                            "the Constituent ID's Salesforce record no longer exists",
                        )
                    )
                    continue
            elif payload.get("email"):
                matches = by_email.get(payload["email"], [])
                if len(matches) > 1:
                    outcomes.append(
                        cat.not_written(
                            change, cat.SKIPPED_MEMBERS, f"{len(matches)} Salesforce records share this email"
                        )
                    )
                    continue
                record = matches[0] if matches else None
                if record is None and not want:
                    outcomes.append(
                        self._same(change, None, "no matching Salesforce record: nothing to clear")
                    )
                    continue
            else:
                outcomes.append(
                    cat.not_written(change, cat.NO_EXPORT, "no email and no Constituent ID: not exported")
                )
                continue
            if record is None:
                creates.append((change, self._new_record(change.key, payload)))
            elif bool(record.get(optin)) == want:
                outcomes.append(self._same(change, record["Id"], f"{optin} already {str(want).lower()}"))
            else:
                updates.append((change, {"Id": record["Id"], optin: want}))
        granted = take(self.budget, len(updates) + len(creates))
        writes = [("update", *w) for w in updates] + [("create", *w) for w in creates]
        for _, change, _ in writes[granted:]:
            outcomes.append(
                cat.not_written(
                    change, cat.DEFERRED, "daily quota reached; sent after the reset", status=Status.PARKED
                )
            )
        writes = writes[:granted]
        outcomes += self._send([w for w in writes if w[0] == "update"], "update")
        outcomes += self._send([w for w in writes if w[0] == "create"], "create")
        self._write_back(outcomes, payloads)
        return outcomes

    def _new_record(self, key: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        config = self.config
        return {
            config.profile_id_field: key,
            "FirstName": payload.get("first_name") or None,
            # Salesforce requires a last name: the profile's, else the configured default name.
            "LastName": payload.get("last_name") or config.default_last_name or config.default_first_name,
            "Email": payload.get("email"),
            "MobilePhone": payload.get("phone"),
            "LeadSource": config.source_code,
            config.optin_field: True,
        }

    def _same(self, change: Change, record_id: str | None, message: str) -> Outcome:
        return Outcome(
            key=change.key,
            action=change.action,
            status=Status.SUCCESS,
            target_id=record_id,
            error_code=cat.NO_DIFFERENCE,
            message=message,
            row_hash=change.row_hash,
        )

    def _send(self, writes: list[tuple[str, Change, dict[str, Any]]], kind: str) -> list[Outcome]:
        if not writes:
            return []
        obj = self.config.salesforce_object
        records = [record for _, _, record in writes]
        if kind == "update":
            results = self.sf.update(obj, records)
            keys = [record["Id"] for record in records]
        else:
            results = self.sf.upsert(obj, self.config.profile_id_field, records)
            keys = [record[self.config.profile_id_field] for record in records]
        by_key = {r.key: r for r in results}
        return [
            self._outcome(change, record, by_key.get(key))
            for (_, change, record), key in zip(writes, keys, strict=True)
        ]

    def _outcome(self, change: Change, record: Mapping[str, Any], result: RecordResult | None) -> Outcome:
        optin = self.config.optin_field
        if result is None:
            return cat.not_written(
                change, cat.PROCESSING_ERROR, "Salesforce returned no result", status=Status.FAILED
            )
        if result.success:
            created = "Id" not in record
            kind = "opt-in" if record[optin] else "opt-out"
            return Outcome(
                key=change.key,
                action=Action.CREATE if created else Action.UPDATE,
                status=Status.SUCCESS,
                target_id=result.id or record.get("Id"),
                message=f"{optin} set {str(record[optin]).lower()} ({kind})",
                row_hash=change.row_hash,
            )
        text = f"{result.error_code}: {result.message or ''}"
        if result.parked:
            return cat.not_written(change, cat.DEFERRED, text, status=Status.PARKED)
        if result.transient:
            return cat.not_written(change, cat.PROCESSING_ERROR, text, status=Status.FAILED)
        return Outcome.rejected(
            change, cat.UNABLE_TO_UPDATE, text, field=result.fields[0] if result.fields else None
        )

    def _write_back(self, outcomes: list[Outcome], payloads: Mapping[str, Mapping[str, Any]]) -> None:
        """Store the Salesforce id in each synced profile's Constituent ID (one call per profile)."""
        for index, outcome in enumerate(outcomes):
            payload = payloads[outcome.key]
            if outcome.status != Status.SUCCESS or not outcome.target_id:
                continue
            if _sf_id(payload.get("constituent_id")) == _sf_id(outcome.target_id):
                continue
            try:
                self.mc.profile_update(
                    payload["phone"], {self.config.constituent_column: outcome.target_id}, key=outcome.key
                )
            except (RecordRejected, RetriableApiError) as exc:
                note = f"; Constituent ID not written back ({getattr(exc, 'code', None)})"
                outcomes[index] = Outcome(**{**_fields(outcome), "message": (outcome.message or "") + note})

    def api_calls(self) -> Mapping[str, int]:
        """Calls made so far, by API."""
        calls = dict(self.sf.api_calls) if "sf" in self.__dict__ else {}
        return {
            **{f"salesforce_{k}": v for k, v in calls.items()},
            "mobile_commons": self.mc.calls if "mc" in self.__dict__ else 0,
        }

    def budget_left(self) -> Mapping[str, int | None]:
        """Records left in today's shared quota (None: unlimited)."""
        return {QUOTA_API: self.budget.remaining()}


def _fields(outcome: Outcome) -> dict[str, Any]:
    return {name: getattr(outcome, name) for name in Outcome.__dataclass_fields__}


def optin_pusher(run: SyncRun, engine: Engine) -> OptinPusher:
    """The PushChangesOperator factory."""
    return OptinPusher(run, engine)
