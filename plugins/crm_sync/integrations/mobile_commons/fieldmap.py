"""The field-mapping table (include/mappings/mobile_commons_profile.yaml) applied with the configuration."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from crm_sync.exceptions import ConfigurationError, RecordRejected
from crm_sync.integrations.mobile_commons import adapters as _adapters  # noqa: F401 - registers adapters
from crm_sync.integrations.mobile_commons.config import MobileCommonsConfig
from crm_sync.sync.adapters import is_blank
from crm_sync.sync.mapping import FieldMapping, FieldRule, load_mapping

__all__ = ["NO_IMPORT", "ProfileMap"]

NO_IMPORT = "no_import"
PROFILE_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "street1",
    "street2",
    "city",
    "state",
    "postal_code",
    "country",
)
_NEEDED = ("phone_number", "email", "opt_in")


class ProfileMap:
    """The loaded mapping with the configured defaults, Required boxes and opt-in field."""

    def __init__(self, config: MobileCommonsConfig) -> None:
        mapping = load_mapping(config.mapping_path)
        missing = [name for name in _NEEDED if name not in mapping.target_fields]
        if missing:
            # The vendor: a misnamed phone, email or opt-in field makes the sync fail.
            raise ConfigurationError(f"{mapping.path}: the mapping must have rules for {missing}")
        rules = []
        for rule in mapping.rules:
            if rule.target == "first_name":
                rule = dataclasses.replace(rule, default=config.default_first_name or None)
            elif rule.target == "last_name":
                rule = dataclasses.replace(rule, default=config.default_last_name or None)
            elif rule.target == "opt_in":
                rule = dataclasses.replace(rule, sources=(config.optin_field, *rule.sources[1:]))
            if config.required_fields is not None:
                rule = dataclasses.replace(rule, required=rule.target in config.required_fields)
            rules.append(rule)
        unknown = sorted(set(config.required_fields or ()) - set(mapping.target_fields))
        if unknown:
            raise ConfigurationError(f"required_fields {unknown} are not fields of {mapping.path}")
        self.mapping: FieldMapping = dataclasses.replace(mapping, rules=tuple(rules))
        self.config = config

    @property
    def api_names(self) -> list[str]:
        """Salesforce fields to SELECT: ``Id`` and each rule's first source, without repeats."""
        names = ["Id"]
        for rule in self.mapping.rules:
            if rule.sources and rule.sources[0] not in names:
                names.append(rule.sources[0])
        return names

    def headings(self) -> dict[str, str]:
        """CSV heading -> Mobile Commons field, for checking a report's header row."""
        return {rule.sources[-1]: rule.target for rule in self.mapping.rules if rule.sources}

    def check_header(self, header: list[str], key_heading: str) -> None:
        """Fail when the report lacks the key, phone, email or opt-in column.

        Raises:
            ConfigurationError: naming the missing headings.
        """
        rules: dict[str, FieldRule] = {rule.target: rule for rule in self.mapping.rules}
        missing = [key_heading] if key_heading not in header else []
        for name in _NEEDED:
            if not any(source in header for source in rules[name].sources):
                missing.append(rules[name].sources[-1])
        if missing:
            raise ConfigurationError(f"the report export has no column(s) {missing}")

    def shape(self, record: Mapping[str, Any], key: str) -> dict[str, Any]:
        """The staged payload of one Salesforce record.

        A record that cannot be imported keeps a ``skip`` entry (category, field, reason)
        instead of failing: the push step reports it as No Import and the next run
        looks at it again.
        """
        payload: dict[str, Any] = {"key": key}
        try:
            mapped = self.mapping.apply(record, key=key)
        except RecordRejected as exc:
            payload["skip"] = {
                "category": NO_IMPORT,
                "field": exc.field,
                "message": f"{exc.code}: {exc.reason}",
            }
            return payload
        payload.update(mapped)
        if is_blank(mapped.get("phone_number")):
            payload["skip"] = {"category": NO_IMPORT, "field": "phone_number", "message": "no mobile number"}
        return payload

    def excluded(self, payload: Mapping[str, Any]) -> bool:
        """Whether a Conservative sync leaves this record out (opt-in not true)."""
        # A record refused while mapping has no opt-in value: it stays, to be reported.
        return self.config.conservative and "opt_in" in payload and payload["opt_in"] is not True
