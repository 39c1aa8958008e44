"""Per-emulator knobs set through ``POST /_sandbox/config``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from sandbox.emulator import AdminError


@dataclass
class SfConfig:
    """Current configuration of one Salesforce emulator (see sandbox/README.md)."""

    daily_api_limit: int = 100_000
    token_lifetime_s: float = 7200.0
    automation: bool = True
    journey_stage: str = "Prospecting"
    duplicate_email_rule: bool = False
    bulk_processing_delay_s: float = 0.2
    bulk_unprocessed_records: int = 0
    query_batch_size: int = 2000
    lock_rows: dict[str, int] = field(default_factory=dict)

    def apply(self, knobs: dict[str, Any], valid_stages: tuple[str, ...]) -> None:
        """Validate and set knobs (``api_usage`` is handled by the caller)."""
        names = {f.name for f in fields(self)}
        unknown = set(knobs) - names
        if unknown:
            raise AdminError(f"unknown salesforce config knobs: {sorted(unknown)}; known: {sorted(names)}")
        if "lock_rows" in knobs:
            self.lock_rows = self._parse_lock_rows(knobs["lock_rows"])
        for name in ("daily_api_limit", "bulk_unprocessed_records"):
            if name in knobs:
                setattr(self, name, self._int(name, knobs[name], minimum=0))
        if "query_batch_size" in knobs:
            size = self._int("query_batch_size", knobs["query_batch_size"], minimum=1)
            if not 200 <= size <= 2000:
                raise AdminError("query_batch_size must be between 200 and 2000")
            self.query_batch_size = size
        for name in ("token_lifetime_s", "bulk_processing_delay_s"):
            if name in knobs:
                value = knobs[name]
                if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                    raise AdminError(f"{name} must be a non-negative number")
                setattr(self, name, float(value))
        for name in ("automation", "duplicate_email_rule"):
            if name in knobs:
                if not isinstance(knobs[name], bool):
                    raise AdminError(f"{name} must be true or false")
                setattr(self, name, knobs[name])
        if "journey_stage" in knobs:
            if knobs["journey_stage"] not in valid_stages:
                raise AdminError(f"journey_stage must be one of {list(valid_stages)}")
            self.journey_stage = knobs["journey_stage"]

    @staticmethod
    def _int(name: str, value: Any, *, minimum: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise AdminError(f"{name} must be an integer >= {minimum}")
        return value

    @staticmethod
    def _parse_lock_rows(raw: Any) -> dict[str, int]:
        if raw is None:
            return {}
        if not isinstance(raw, dict) or not isinstance(raw.get("keys"), list):
            raise AdminError('lock_rows takes {"keys": [record ids or external id values], "times": N}')
        times = raw.get("times", 1)
        if not isinstance(times, int) or times < 1:
            raise AdminError("lock_rows.times must be a positive integer")
        return {str(key): times for key in raw["keys"]}

    def as_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
