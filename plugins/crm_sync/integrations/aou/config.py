"""The knobs of the AOU -> Salesforce sync, with the seed's values as defaults."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from crm_sync.exceptions import ConfigurationError

__all__ = ["AouConfig"]

_SALESFORCE_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class AouConfig:
    """Configuration of one AOU sync; build it from Params/Variables with :meth:`from_mapping`.

    Attributes:
        account_id: the Account every participant Contact belongs to (seed: Columbia's).
        paired_organization: the HealthPro paired organisation whose participants are synced.
        readiness_threshold: today's load must hold more participants than this.
        owner_id: the user that owns the Contacts the sync creates (the seed's ``OwnerId``).
        pardot_user_1: first Pardot connector user; owns Pardot-created Contacts.
        pardot_user_2: second Pardot connector user.
        sovereign_user: the other integration user whose Contacts the sync also manages.
        contact_object: Salesforce object of participants.
        external_id: the Contact/journey field holding the PMI ID (the upsert key).
        journey_object: Salesforce object of journeys.
    """

    account_id: str = "0010a00001Qa6gPAAR"
    paired_organization: str = "COLUMBIA_COLUMBIA"
    readiness_threshold: int = 100
    # Placeholders shaped like real user ids; production sets the org's own.
    owner_id: str = "0050a00000AouOwnAA"
    pardot_user_1: str = "0050a00000AouPd1AA"
    pardot_user_2: str = "0050a00000AouPd2AA"
    sovereign_user: str = "0050a00000AouSovAA"
    contact_object: str = "Contact"
    external_id: str = "HP_PMI_ID__c"
    journey_object: str = "Opportunity"

    _ID_PREFIXES: ClassVar[dict[str, str]] = {
        "account_id": "001",
        "owner_id": "005",
        "pardot_user_1": "005",
        "pardot_user_2": "005",
        "sovereign_user": "005",
    }
    _API_NAMES: ClassVar[tuple[str, ...]] = ("contact_object", "external_id", "journey_object")

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            expected = int if field.type in ("int", int) else str
            if isinstance(value, bool) or not isinstance(value, expected):
                raise ConfigurationError(f"AOU setting {field.name!r} must be {expected.__name__}")
        for name, prefix in self._ID_PREFIXES.items():
            value = getattr(self, name)
            if not _SALESFORCE_ID.match(value) or not value.startswith(prefix):
                raise ConfigurationError(
                    f"AOU setting {name!r} must be a 15- or 18-character Salesforce id starting {prefix}"
                )
        for name in self._API_NAMES:
            if not _API_NAME.match(getattr(self, name)):
                raise ConfigurationError(f"AOU setting {name!r} must be a Salesforce API name")
        if not self.paired_organization.strip():
            raise ConfigurationError("AOU setting 'paired_organization' must not be empty")
        if self.readiness_threshold < 0:
            raise ConfigurationError("AOU setting 'readiness_threshold' must be >= 0")

    @property
    def pardot_owner_ids(self) -> tuple[str, str]:
        """Owners of the Pardot-created Contacts the claim may take over."""
        return (self.pardot_user_1, self.pardot_user_2)

    @property
    def managed_owner_ids(self) -> tuple[str, ...]:
        """Owners of every Contact the sync reads back (the seed's snapshot filter)."""
        return (self.owner_id, self.pardot_user_1, self.pardot_user_2, self.sovereign_user)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AouConfig:
        """Build a config from a mapping (DAG Params, an Airflow Variable's JSON).

        Missing keys keep their defaults; ``None`` values are treated as missing.

        Raises:
            ConfigurationError: a key is unknown, or a value has the wrong type or form.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(str(key) for key in values if key not in known)
        if unknown:
            raise ConfigurationError(
                f"unknown AOU setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
            )
        return cls(**{key: value for key, value in values.items() if value is not None})
