"""The Marketo <-> Pipedrive field mappings, loaded from include/mappings/marketo_pipedrive/.

Every file is checked when the set loads (``file:line`` for each mistake), and the set is
refused unless it holds each mapping the sync needs. Pipedrive fields are named in the files
(``marketoid``, ``email_domain``); :meth:`MappingSet.pipedrive_names` lists them per entity so
the sync can resolve them to their hash keys from the *Fields endpoints before any record moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from crm_sync.exceptions import MappingError
from crm_sync.sync.mapping import FieldMapping, load_mappings

__all__ = ["DEFAULT_DIR", "MappingSet", "load_mapping_set"]

DEFAULT_DIR = Path(__file__).resolve().parents[4] / "include" / "mappings" / "marketo_pipedrive"
_PREFIX = "marketo_pipedrive."
_NAMES = (
    "lead_to_person",
    "lead_to_organization",
    "person_to_lead",
    "organization_to_company",
    "deal_to_opportunity",
    "deal_to_opportunity_role",
    "lead_to_activity",
)
# Source fields the sync computes itself (not Pipedrive fields): never resolved against the API.
_DERIVED = frozenset({"email", "phone", "active_flag", "org_name", "stage_name", "person_marketoid",
                      "person_job_title", "run_date", "id"})  # fmt: skip


@dataclass(frozen=True)
class MappingSet:
    """The seven mappings of the sync, by role."""

    lead_to_person: FieldMapping
    lead_to_organization: FieldMapping
    person_to_lead: FieldMapping
    organization_to_company: FieldMapping
    deal_to_opportunity: FieldMapping
    deal_to_opportunity_role: FieldMapping
    lead_to_activity: FieldMapping

    def pipedrive_names(self) -> dict[str, set[str]]:
        """Pipedrive field names the mappings write or read, per v2 entity (to resolve at run time)."""
        targets = {
            "persons": set(self.lead_to_person.target_fields),
            "organizations": set(self.lead_to_organization.target_fields),
            "activities": set(self.lead_to_activity.target_fields),
        }
        for entity, mapping in (
            ("persons", self.person_to_lead),
            ("organizations", self.organization_to_company),
            ("deals", self.deal_to_opportunity),
            ("deals", self.deal_to_opportunity_role),
        ):
            # A dotted path (address.locality) reads part of one field.
            names = {name.split(".", 1)[0] for name in mapping.source_fields} - _DERIVED
            targets.setdefault(entity, set()).update(names)
        return targets


def load_mapping_set(directory: str | Path = DEFAULT_DIR) -> MappingSet:
    """Load and check every mapping file of the sync.

    Raises:
        MappingFileError: a file has mistakes (each as ``file:line: message``).
        MappingError: a mapping the sync needs is missing from the directory.
    """
    loaded: Mapping[str, FieldMapping] = load_mappings(directory)
    missing = [name for name in _NAMES if _PREFIX + name not in loaded]
    if missing:
        raise MappingError(
            f"missing mappings: {', '.join(_PREFIX + name for name in missing)}", path=str(directory)
        )
    return MappingSet(**{name: loaded[_PREFIX + name] for name in _NAMES})
