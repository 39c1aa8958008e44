"""The knobs of the Salesforce -> Maxio billing integration, loaded from include/config."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crm_sync.exceptions import ConfigurationError

__all__ = ["CONFIG_FILE", "VARIABLE", "BillingConfig", "Fallbacks"]

CONFIG_FILE = Path(__file__).resolve().parents[4] / "include" / "config" / "maxio_billing.yaml"
VARIABLE = "salesforce_maxio_billing_config"
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_HANDLE = re.compile(r"^[a-z0-9][a-z0-9_:-]*$")


@dataclass(frozen=True)
class Fallbacks:
    """Values for a Maxio customer whose Account lacks them (the original's defaults)."""

    email: str = "noemailprovided@testco.com"
    address: str = "123 No St."
    city: str = "NoTown"
    state: str = "NS"
    zip: str = "55555"
    phone: str = "555-555-5555"


@dataclass(frozen=True)
class BillingConfig:
    """What to provision and how; see include/config/maxio_billing.yaml for each key."""

    closed_won_stage: str = "Closed Won"
    opportunity_type: str | None = "New Logo"
    window_field: str = "LastModifiedDate"
    product_code_contains: str = "CASH"
    complete_field: str = "Maxio_Provisioned__c"
    subscription_id_field: str | None = "Maxio_Subscription_Id__c"
    product_handle: str = "monthly-usage"
    customer_first_name: str = "Accounts"
    customer_last_name: str = "Payable"
    customer_country: str = "US"
    customer_locale: str = "en-US"
    fallbacks: Fallbacks = field(default_factory=Fallbacks)
    core_register_contains: str | None = "cashe"
    product_components: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("window_field", "complete_field"):
            if not _API_NAME.match(str(getattr(self, name))):
                raise ConfigurationError(f"maxio_billing setting {name!r} must be a Salesforce API name")
        if self.subscription_id_field is not None and not _API_NAME.match(self.subscription_id_field):
            raise ConfigurationError(
                "maxio_billing setting 'subscription_id_field' must be an API name or null"
            )
        if not _HANDLE.match(self.product_handle):
            raise ConfigurationError("maxio_billing setting 'product_handle' is not a Maxio handle")
        if not self.product_code_contains.strip():
            raise ConfigurationError("maxio_billing setting 'product_code_contains' must not be empty")
        if not self.product_components:
            raise ConfigurationError("maxio_billing setting 'product_components' maps no product")
        for product, component in self.product_components.items():
            if isinstance(component, bool) or not isinstance(component, int) or component < 1:
                raise ConfigurationError(
                    f"maxio_billing product_components[{product!r}] must be a positive component id"
                )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> BillingConfig:
        """Build from a mapping (the YAML file merged with overrides).

        Raises:
            ConfigurationError: an unknown key, or a value of the wrong form.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(key) for key in values if key not in known)
        if unknown:
            raise ConfigurationError(f"unknown maxio_billing setting(s) {unknown}; known: {sorted(known)}")
        data = dict(values)
        raw_fallbacks = data.pop("fallbacks", None) or {}
        fallback_names = {f.name for f in dataclasses.fields(Fallbacks)}
        if not isinstance(raw_fallbacks, Mapping) or set(raw_fallbacks) - fallback_names:
            raise ConfigurationError(f"maxio_billing 'fallbacks' takes only {sorted(fallback_names)}")
        try:
            return cls(fallbacks=Fallbacks(**{k: str(v) for k, v in raw_fallbacks.items()}), **data)
        except TypeError as exc:
            raise ConfigurationError(f"maxio_billing config: {exc}") from exc

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, path: Path = CONFIG_FILE) -> BillingConfig:
        """Read the YAML file and apply ``overrides`` (e.g. the Airflow Variable's JSON) on top."""
        try:
            base = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"cannot read {path}: {exc}") from exc
        merged = {**base, **dict(overrides or {})}
        if overrides and "fallbacks" in overrides:
            merged["fallbacks"] = {**(base.get("fallbacks") or {}), **(overrides["fallbacks"] or {})}
        return cls.from_mapping(merged)

    def component_for(self, product_name: str | None) -> int | None:
        """The Maxio component a Salesforce product bills through, or None when unmapped."""
        return self.product_components.get(product_name or "")
