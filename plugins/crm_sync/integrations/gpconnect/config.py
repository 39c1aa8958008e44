"""The knobs of the GP Connect import: where files are, how to read them, which flows to start.

Three layers, later ones winning: the defaults here (the seed's), the file
``include/config/gpconnect.yaml`` (flows per org), then the Airflow Variable
``gpconnect_rapidpro_import_config`` (JSON, same shape), then the run's ``config`` Param.
``orgs`` entries are merged per org and per flow type, so a Variable may set one flow only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crm_sync.exceptions import ConfigurationError

__all__ = ["FLOW_TYPES", "GpConnectConfig", "OrgConfig", "config_file", "load_config"]

#: Flow types of the seed's Flow model: a new contact, or a contact whose row changed.
FLOW_TYPES = ("new_contact", "contact_update")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_REGION = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class OrgConfig:
    """One organisation: its RapidPro workspace, its WhatsApp number and its flows."""

    name: str
    rapidpro_conn_id: str = "rapidpro_default"
    whatsapp_conn_id: str = "whatsapp_default"
    flows: Mapping[str, str] = field(default_factory=dict)

    def flow(self, flow_type: str) -> str:
        """The flow UUID of ``flow_type`` (``new_contact`` or ``contact_update``).

        Raises:
            ConfigurationError: no flow of that type is configured for the org (the seed's
                ``Flow.DoesNotExist``), or it is not a UUID.
        """
        uuid = self.flows.get(flow_type)
        if not uuid:
            raise ConfigurationError(
                f"no {flow_type!r} flow configured for org {self.name!r}; set orgs.{self.name}.flows."
                f"{flow_type} in include/config/gpconnect.yaml or the Variable "
                "gpconnect_rapidpro_import_config"
            )
        if not _UUID.match(uuid):
            raise ConfigurationError(f"org {self.name!r}: flow {flow_type!r} must be a UUID, got {uuid!r}")
        return uuid


@dataclass(frozen=True)
class GpConnectConfig:
    """Configuration of the import (see the module docstring for where it comes from).

    Attributes:
        bucket: the S3 bucket the reports are uploaded to.
        prefix: the key prefix searched (the seed's ``GP_CONNECT_FILE_DIR``).
        aws_conn_id: the Airflow connection S3Hook uses.
        default_org: the org of scheduled runs (the seed's ``GP_CONNECT_ORG_NAME``).
        extensions: file name endings imported (case-insensitive).
        sheet: the worksheet read from an .xlsx file.
        first_sheet_fallback: read the first worksheet when ``sheet`` is missing.
        default_region: ISO country of phone numbers written without a country code.
        files_per_run: how many files one run imports (the seed: one).
        whatsapp_batch: numbers per WhatsApp contacts check.
        max_reject_ratio: the share of rejected rows above which the run fails.
        orgs: the organisations by name.
    """

    bucket: str = "crm-sync-sandbox"
    prefix: str = "uploads/"
    aws_conn_id: str = "aws_default"
    default_org: str = "GP Connect"
    extensions: tuple[str, ...] = (".xlsx", ".csv")
    sheet: str = "GP Connect daily report"
    first_sheet_fallback: bool = True
    default_region: str = "ZA"
    files_per_run: int = 1
    whatsapp_batch: int = 500
    max_reject_ratio: float = 0.2
    orgs: Mapping[str, OrgConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.bucket.strip():
            raise ConfigurationError("GP Connect setting 'bucket' must not be empty")
        if not _REGION.match(self.default_region):
            raise ConfigurationError(
                "GP Connect setting 'default_region' must be an ISO country code like ZA"
            )
        if not 1 <= self.files_per_run <= 100:
            raise ConfigurationError("GP Connect setting 'files_per_run' must be 1 to 100")
        if not 1 <= self.whatsapp_batch <= 1000:
            raise ConfigurationError("GP Connect setting 'whatsapp_batch' must be 1 to 1000")
        if not 0 <= self.max_reject_ratio <= 1:
            raise ConfigurationError("GP Connect setting 'max_reject_ratio' must be between 0 and 1")
        if not self.extensions or any(not e.startswith(".") for e in self.extensions):
            raise ConfigurationError("GP Connect setting 'extensions' must list endings like .xlsx")

    def org(self, name: str | None) -> OrgConfig:
        """The org called ``name`` (the default org when None or empty).

        Raises:
            ConfigurationError: the org is not configured.
        """
        wanted = (name or self.default_org).strip()
        for org_name, org in self.orgs.items():
            if org_name.strip().lower() == wanted.lower():
                return org
        known = ", ".join(sorted(self.orgs)) or "none"
        raise ConfigurationError(f"org {wanted!r} is not configured for GP Connect (known: {known})")

    def wants(self, key: str) -> bool:
        """Whether an S3 key is a report to import (under the prefix, with a known ending)."""
        return (
            key.startswith(self.prefix)
            and key != self.prefix
            and not key.endswith("/")
            and key.lower().endswith(tuple(e.lower() for e in self.extensions))
        )

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> GpConnectConfig:
        """Build from one merged mapping (file, Variable and Param layers already merged).

        Raises:
            ConfigurationError: an unknown key or a value of the wrong type.
        """
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in values if k not in known)
        if unknown:
            raise ConfigurationError(
                f"unknown GP Connect setting(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(sorted(known))}"
            )
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            if name == "orgs":
                kwargs["orgs"] = _orgs(value)
            elif name == "extensions":
                kwargs["extensions"] = tuple(str(v) for v in _list(value, name))
            else:
                kwargs[name] = _typed(name, value, known[name].type)
        return cls(**kwargs)


def _typed(name: str, value: Any, declared: Any) -> Any:
    expected = {"str": str, "bool": bool, "int": int, "float": float}.get(str(declared), str)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is not bool and isinstance(value, bool):
        raise ConfigurationError(f"GP Connect setting {name!r} must be {expected.__name__}")
    if not isinstance(value, expected):
        raise ConfigurationError(f"GP Connect setting {name!r} must be {expected.__name__}")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise ConfigurationError(f"GP Connect setting {name!r} must be a list")
    return list(value)


def _orgs(value: Any) -> dict[str, OrgConfig]:
    if not isinstance(value, Mapping):
        raise ConfigurationError("GP Connect setting 'orgs' must map org names to settings")
    orgs = {}
    for name, raw in value.items():
        raw = raw or {}
        if not isinstance(raw, Mapping):
            raise ConfigurationError(f"GP Connect org {name!r}: settings must be a mapping")
        unknown = sorted(set(raw) - {"rapidpro_conn_id", "whatsapp_conn_id", "flows"})
        if unknown:
            raise ConfigurationError(f"GP Connect org {name!r}: unknown setting(s) {unknown}")
        flows = raw.get("flows") or {}
        if not isinstance(flows, Mapping) or set(flows) - set(FLOW_TYPES):
            raise ConfigurationError(f"GP Connect org {name!r}: flows takes only {list(FLOW_TYPES)}")
        orgs[str(name)] = OrgConfig(
            name=str(name),
            rapidpro_conn_id=str(raw.get("rapidpro_conn_id") or "rapidpro_default"),
            whatsapp_conn_id=str(raw.get("whatsapp_conn_id") or "whatsapp_default"),
            flows={str(k): str(v) for k, v in flows.items() if v},
        )
    return orgs


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``; ``orgs`` merged per org and per flow type."""
    merged = {**base, **{k: v for k, v in override.items() if k != "orgs"}}
    orgs: dict[str, Any] = {name: dict(org or {}) for name, org in (base.get("orgs") or {}).items()}
    for name, org in (override.get("orgs") or {}).items():
        current = orgs.setdefault(name, {})
        org = dict(org or {})
        flows = {**(current.get("flows") or {}), **(org.pop("flows", None) or {})}
        current.update(org)
        current["flows"] = flows
    if orgs:
        merged["orgs"] = orgs
    return merged


def config_file() -> Path | None:
    """``include/config/gpconnect.yaml`` of the checkout or image this module belongs to."""
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "include" / "config" / "gpconnect.yaml"
        if candidate.is_file():
            return candidate
    return None


def read_file(path: Path | None) -> dict[str, Any]:
    """The settings in a YAML file (empty when there is no file).

    Raises:
        ConfigurationError: the file is not a YAML mapping.
    """
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(loaded, Mapping):
        raise ConfigurationError(f"{path}: must hold a mapping of settings")
    return dict(loaded)


def load_config(*layers: Mapping[str, Any] | None, path: Path | None = None) -> GpConnectConfig:
    """The file's settings with ``layers`` (Variable, then Param) merged over them in order."""
    values = read_file(path if path is not None else config_file())
    for layer in layers:
        if layer:
            if not isinstance(layer, Mapping):
                raise ConfigurationError("GP Connect config overrides must be a JSON object")
            values = merge(values, layer)
    return GpConnectConfig.from_mapping(values)
