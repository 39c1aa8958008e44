"""Pipedrive organization -> Marketo company, 300 organizations at a time (seed 001).

Per batch: echoes of this sync's own writes are skipped; the others are mapped, matched with
at most three company queries (the org's ``marketoid``, ``pd-organization-<id>``, the
name) and written with at most two Marketo calls (new companies by their dedupe field,
changed ones by id). ``externalCompanyId`` is the dedupe key, fixed once the company exists.
The organization then gets ``marketoid`` (the company id) where it differs and is remembered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from crm_sync.hooks.pipedrive import PipedriveRecord
from crm_sync.integrations.marketo_pipedrive import to_marketo
from crm_sync.integrations.marketo_pipedrive.records import flatten
from crm_sync.integrations.marketo_pipedrive.results import Synced, non_blank, unchanged
from crm_sync.integrations.marketo_pipedrive.to_marketo import Pending
from crm_sync.sync.mapping import changed_fields

if TYPE_CHECKING:
    from crm_sync.integrations.marketo_pipedrive.entities import EntitySync

__all__ = ["organizations_to_companies"]


def organizations_to_companies(sync: EntitySync, orgs: Sequence[PipedriveRecord]) -> list[Synced]:
    """Create or update the company of each organization and write ``marketoid`` back; in order."""
    fields = sync.fields("organizations")

    def flat(org: PipedriveRecord) -> dict[str, Any]:
        return flatten(org, fields)

    def snapshot(org: PipedriveRecord) -> dict[str, Any]:
        values = flat(org)
        return {name: values.get(name) for name in sync.org_watch}

    mapping = sync.mappings.organization_to_company
    out: list[Synced] = []
    for batch in to_marketo.batches(orgs, "organization"):
        live = to_marketo.prepare(
            sync, batch, entity="organization", snapshot=snapshot, flat=flat, mapping=mapping
        )
        if to_marketo.match(live, sync.matcher.companies_for_organizations):
            creates: list[tuple[Pending, dict[str, Any], dict[str, Any]]] = []
            updates: list[tuple[Pending, dict[str, Any], dict[str, Any]]] = []
            for org in live:
                if not org.match.found:
                    sent = non_blank(org.payload)
                    creates.append((org, sent, sent))
                    continue
                wanted = {k: v for k, v in org.payload.items() if k != "externalCompanyId"}
                diff = changed_fields(wanted, org.target, no_clobber=mapping.no_clobber_fields)
                if diff:
                    updates.append((org, {"id": org.target["id"], **diff}, diff))
                else:
                    org.result = unchanged(org.key, org.target["id"], org.match.step)
            to_marketo.send(
                creates, lambda records, keys: sync.marketo.sync_companies(records, keys=keys), create=True
            )
            to_marketo.send(
                updates,
                lambda records, keys: sync.marketo.sync_companies(
                    records, action="updateOnly", dedupe_by="idField", keys=keys
                ),
                create=False,
            )
            for org in live:
                record = to_marketo.write_back(sync, org, "organizations") if org.written else None
                if record is not None and sync.memory:
                    sync.memory.remember("organization", record.id, snapshot(record))
        out.extend(o.result for o in batch if o.result is not None)
    return out
