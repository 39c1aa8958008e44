"""The synchronization report: the last 24 hours of both DAGs by the vendor's categories.

Built from the ledger (``sync_log``: one row per profile and run, with the category in
``error_code``; keys are Salesforce ids and Mobile Commons profile ids, never personal data)
and rendered as Markdown for the task log and as an HTML file.
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from crm_sync.integrations.mobile_commons.categories import CATEGORIES, category_of
from crm_sync.integrations.mobile_commons.runtime import NIGHTLY, OPTINS
from crm_sync.sync.schema import sync_log

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["SyncReport", "build_report", "render_html", "render_markdown", "write_report"]

DETAILS_PER_CATEGORY = 50
DIRECTION = {NIGHTLY: "Salesforce -> Mobile Commons", OPTINS: "Mobile Commons -> Salesforce"}


@dataclass
class SyncReport:
    """Counts per category and the first per-profile details of each."""

    start: datetime
    end: datetime
    counts: Counter[str] = field(default_factory=Counter)
    details: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A small JSON view (for XCom): counts only."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "counts": dict(self.counts)}


def build_report(engine: Engine, *, end: datetime | None = None, hours: int = 24) -> SyncReport:
    """Read the ledger rows of both DAGs logged in the ``hours`` before ``end``."""
    end = end or datetime.now(UTC)
    report = SyncReport(start=end - timedelta(hours=hours), end=end)
    query = (
        sa.select(
            sync_log.c.integration,
            sync_log.c.entity,
            sync_log.c.key,
            sync_log.c.action,
            sync_log.c.status,
            sync_log.c.target_id,
            sync_log.c.error_code,
            sync_log.c.message,
            sync_log.c.field,
            sync_log.c.logged_at,
        )
        .where(
            sync_log.c.integration.in_((NIGHTLY, OPTINS)),
            sync_log.c.logged_at >= report.start,
            sync_log.c.logged_at <= end,
        )
        .order_by(sync_log.c.logged_at, sync_log.c.id)
    )
    with engine.connect() as conn:
        for row in conn.execute(query):
            category = category_of(row.status, row.action, row.error_code)
            report.counts[category] += 1
            details = report.details.setdefault(category, [])
            if len(details) < DETAILS_PER_CATEGORY:
                details.append(
                    {
                        "direction": DIRECTION.get(row.integration, row.integration),
                        "record": row.key,
                        "target": row.target_id,
                        "field": row.field,
                        "message": row.message,
                    }
                )
    return report


def render_markdown(report: SyncReport) -> str:
    """The report as Markdown: a summary table, then per-profile details per category."""
    lines = [
        "# Mobile Commons synchronization report: "
        f"{report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC",
        "",
        "| Category | Records |",
        "|---|---:|",
    ]
    lines += [f"| {label} | {report.counts.get(name, 0)} |" for name, label in CATEGORIES.items()]
    for name, label in CATEGORIES.items():
        rows = report.details.get(name)
        if not rows:
            continue
        shown = f" (first {len(rows)} of {report.counts[name]})" if report.counts[name] > len(rows) else ""
        lines += [
            "",
            f"## {label}{shown}",
            "",
            "| Direction | Record | Target | Field | Detail |",
            "|---|---|---|---|---|",
        ]
        lines += [
            "| "
            + " | ".join(_cell(r[k]) for k in ("direction", "record", "target", "field", "message"))
            + " |"
            for r in rows
        ]
    return "\n".join(lines) + "\n"


def _cell(text: Any) -> str:
    return str(text or "").replace("|", "/").replace("\n", " ")


def render_html(report: SyncReport) -> str:
    """The report as a self-contained HTML page."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>Mobile Commons synchronization report</title>",
        "<style>body{font-family:sans-serif}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px}</style></head><body>",
        "<h1>Synchronization report</h1>",
        f"<p>{esc(report.start.isoformat())} to {esc(report.end.isoformat())}</p>",
        "<table><tr><th>Category</th><th>Records</th></tr>",
    ]
    parts += [
        f"<tr><td>{esc(label)}</td><td>{report.counts.get(name, 0)}</td></tr>"
        for name, label in CATEGORIES.items()
    ]
    parts.append("</table>")
    for name, label in CATEGORIES.items():
        rows = report.details.get(name)
        if not rows:
            continue
        parts.append(
            f"<h2>{esc(label)}</h2><table><tr><th>Direction</th><th>Record</th><th>Target</th><th>Field</th><th>Detail</th></tr>"
        )
        parts += [
            "<tr>"
            + "".join(
                f"<td>{esc(str(r[k] or ''))}</td>"
                for k in ("direction", "record", "target", "field", "message")
            )
            + "</tr>"
            for r in rows
        ]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: SyncReport, directory: Path, run_id: str) -> tuple[Path, Path]:
    """Write ``<stamp>.md`` and ``<stamp>.html`` under ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = report.end.strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in run_id)[:80]
    markdown = directory / f"mobile_commons_sync_{stamp}_{safe}.md"
    page = markdown.with_suffix(".html")
    markdown.write_text(render_markdown(report), encoding="utf-8")
    page.write_text(render_html(report), encoding="utf-8")
    return markdown, page
