"""The demo's output: one table row per DAG run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunRow:
    """What one DAG run did, from its ``report`` task's summary."""

    label: str
    state: str
    created: int
    updated: int
    claimed: int
    unchanged: int
    rejected: int
    skipped: int
    api_calls: int
    seconds: float

    @classmethod
    def from_summary(cls, label: str, state: str, summary: Mapping[str, Any], seconds: float) -> RunRow:
        """Build from a run summary (``crm_sync.sync.ledger.run_summary``)."""
        outcomes = summary.get("outcomes") or {}

        def ok(action: str) -> int:
            return int((outcomes.get(action) or {}).get("success", 0))

        by_status = summary.get("by_status") or {}
        planned = summary.get("planned") or {}
        return cls(
            label=label,
            state=state,
            created=ok("create"),
            updated=ok("update"),
            claimed=ok("claim"),
            unchanged=int(planned.get("unchanged", 0)),
            rejected=int(summary.get("rejected", 0)),
            skipped=int(by_status.get("skipped", 0)),
            api_calls=int((summary.get("api_calls") or {}).get("total", 0)),
            seconds=seconds,
        )


COLUMNS = (
    "run",
    "state",
    "created",
    "updated",
    "claimed",
    "unchanged",
    "rejected",
    "skipped",
    "API calls",
    "wall s",
)


def render(title: str, rows: Sequence[RunRow]) -> str:
    """A plain-text table."""
    cells = [
        (
            r.label,
            r.state,
            r.created,
            r.updated,
            r.claimed,
            r.unchanged,
            r.rejected,
            r.skipped,
            r.api_calls,
            f"{r.seconds:.1f}",
        )
        for r in rows
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(COLUMNS, *cells, strict=False)]
    line = "  ".join(f"{{:>{w}}}" for w in widths)
    out = [title, line.format(*COLUMNS), line.format(*("-" * w for w in widths))]
    out += [line.format(*map(str, c)) for c in cells]
    return "\n".join(out)
