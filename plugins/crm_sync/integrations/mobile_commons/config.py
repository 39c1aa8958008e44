"""The knobs of the Salesforce <-> Mobile Commons sync, with the vendor's defaults (seed 003)."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm_sync.exceptions import ConfigurationError

__all__ = ["CONFIG_VARIABLE", "KEY_FIELDS", "MobileCommonsConfig", "SyncType"]

CONFIG_VARIABLE = "mobile_commons_sync_config"
MAPPING_DIR = Path(__file__).resolve().parents[4] / "include" / "mappings"
#: Mobile Commons fields the vendor says never to mark Required: they are required already.
KEY_FIELDS = ("phone_number", "email", "opt_in")
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_COLUMN = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]{0,63}$")


class SyncType:
    """Liberal syncs every record; Conservative only records whose opt-in is true."""

    LIBERAL = "liberal"
    CONSERVATIVE = "conservative"


@dataclass(frozen=True)
class MobileCommonsConfig:
    """Configuration of the sync (the vendor's Salesforce configuration form).

    Attributes:
        sync_type: ``liberal`` or ``conservative``.
        source: ``soql`` (query ``salesforce_object``) or ``report`` (``report_url``'s CSV export).
        salesforce_object: the object synced (Contact).
        report_url: the report's Custom Export URL (path or full URL ending ``xf=csv``).
        soql_filter: an extra SOQL condition for the ``soql`` source (trusted configuration).
        mapping_file: the field mapping, relative to include/mappings.
        required_fields: Mobile Commons fields whose empty value skips the record (the
            "Required?" boxes); None keeps the mapping file's flags.
        default_opt_in_path_id: the web opt-in path new subscribers join (None: no subscription).
        group_paths: Salesforce group -> opt-in path id, overriding the default path.
        default_first_name: used for records without a first name (vendor: ``Contact``).
        default_last_name: used for records without a last name (vendor: blank).
        source_code: written to the records the sync creates in Salesforce (``LeadSource``).
        optin_field: the Boolean Salesforce opt-in field. The vendor form shows
            ``Mobile_Subscriber_c``; Salesforce custom fields always end ``__c``, so the API
            name is ``Mobile_Subscriber__c``.
        profile_id_field: the Salesforce external id holding the Mobile Commons profile id,
            so a record created from an opt-in is an idempotent upsert.
        constituent_column: the profile's custom column holding the Salesforce record id.
        daily_quota: records synced per day by both DAGs together (None: unlimited).
        report_dir: where the synchronization report files go (None: ``CRM_SYNC_REPORT_DIR``,
            else ``$AIRFLOW_HOME/crm_sync_reports``).
    """

    sync_type: str = SyncType.LIBERAL
    source: str = "soql"
    salesforce_object: str = "Contact"
    report_url: str | None = None
    soql_filter: str | None = None
    mapping_file: str = "mobile_commons_profile.yaml"
    required_fields: list[str] | None = None
    default_opt_in_path_id: int | None = None
    group_paths: dict[str, int] = field(default_factory=dict)
    default_first_name: str = "Contact"
    default_last_name: str = ""
    source_code: str = "Mobile Commons"
    optin_field: str = "Mobile_Subscriber__c"
    profile_id_field: str = "Mobile_Commons_Profile_Id__c"
    constituent_column: str = "constituent_id"
    daily_quota: int | None = None
    report_dir: str | None = None

    def __post_init__(self) -> None:
        if self.sync_type not in (SyncType.LIBERAL, SyncType.CONSERVATIVE):
            raise ConfigurationError("Mobile Commons setting 'sync_type' must be liberal or conservative")
        if self.source not in ("soql", "report"):
            raise ConfigurationError("Mobile Commons setting 'source' must be soql or report")
        if self.source == "report" and not (self.report_url and "xf=csv" in self.report_url.lower()):
            raise ConfigurationError(
                "Mobile Commons setting 'report_url' must be the report's CSV export URL (ending xf=csv)"
            )
        for name in ("salesforce_object", "optin_field", "profile_id_field"):
            if not _API_NAME.match(str(getattr(self, name))):
                raise ConfigurationError(f"Mobile Commons setting {name!r} must be a Salesforce API name")
        if not _COLUMN.match(self.constituent_column):
            raise ConfigurationError("Mobile Commons setting 'constituent_column' must be a column name")
        if self.daily_quota is not None and (isinstance(self.daily_quota, bool) or self.daily_quota < 0):
            raise ConfigurationError("Mobile Commons setting 'daily_quota' must be blank or >= 0")
        ticked = sorted(set(self.required_fields or ()) & set(KEY_FIELDS))
        if ticked:
            # The vendor: "Do not select Required for Phone number, Email, or Opt-in status".
            raise ConfigurationError(
                f"Mobile Commons setting 'required_fields' must not list {ticked}: "
                "phone, email and opt-in have their own rules (no import / no export / sync type)"
            )
        for group, path in self.group_paths.items():
            if not isinstance(path, int) or isinstance(path, bool):
                raise ConfigurationError(f"Mobile Commons group_paths[{group!r}] must be an opt-in path id")

    @property
    def conservative(self) -> bool:
        """Whether only opted-in records are synced."""
        return self.sync_type == SyncType.CONSERVATIVE

    @property
    def report_path(self) -> Path:
        """The directory of the synchronization report files."""
        if self.report_dir:
            return Path(self.report_dir)
        if os.environ.get("CRM_SYNC_REPORT_DIR"):
            return Path(os.environ["CRM_SYNC_REPORT_DIR"])
        return Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser() / "crm_sync_reports"

    @property
    def mapping_path(self) -> Path:
        """The mapping file."""
        path = Path(self.mapping_file)
        return path if path.is_absolute() else MAPPING_DIR / path

    def path_for(self, group: str | None) -> int | None:
        """The opt-in path of a new subscriber: their group's, else the default one."""
        if group and group in self.group_paths:
            return self.group_paths[group]
        return self.default_opt_in_path_id

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MobileCommonsConfig:
        """Build from a mapping (the Variable's JSON, the ``config`` Param); None keeps a default.

        Raises:
            ConfigurationError: an unknown key or a bad value.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(key) for key in values if key not in known)
        if unknown:
            raise ConfigurationError(
                f"unknown Mobile Commons setting(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**{key: value for key, value in values.items() if value is not None})
        except TypeError as exc:
            raise ConfigurationError(f"Mobile Commons settings: {exc}") from None
