"""Server-rendered SVG charts: no script, no fonts or assets fetched from anywhere."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["trend_svg"]

WIDTH = 186  # 31 days x 6 px
HEIGHT = 40
SYNCED = "#2e7d32"
REJECTED = "#c62828"
EMPTY = "#e0e0e0"


def trend_svg(points: Sequence[Mapping[str, Any]], *, title: str) -> str:
    """Return a stacked bar chart (synced over rejected, one bar a day) as inline SVG markup.

    Args:
        points: ``{"day", "synced", "rejected", "runs"}`` per day, oldest first.
        title: the accessible title (the integration).
    """
    n = max(len(points), 1)
    slot = WIDTH / n
    bar = max(slot - 1, 1)
    peak = max((int(p["synced"]) + int(p["rejected"]) for p in points), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}: 30-day trend">',
        f"<title>{escape(title)}: records synced (green) and rejected (red) per day</title>",
    ]
    for i, point in enumerate(points):
        x = round(i * slot, 2)
        synced, rejected = int(point["synced"]), int(point["rejected"])
        tip = f"{point['day']}: {synced} synced, {rejected} rejected, {point.get('runs', 0)} runs"
        if not synced and not rejected:
            parts.append(
                f'<rect x="{x}" y="{HEIGHT - 1}" width="{round(bar, 2)}" height="1" fill="{EMPTY}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            continue
        h_ok = HEIGHT * synced / peak
        h_bad = HEIGHT * rejected / peak
        parts.append(f"<g><title>{escape(tip)}</title>")
        if synced:
            parts.append(
                f'<rect x="{x}" y="{round(HEIGHT - h_ok, 2)}" width="{round(bar, 2)}" '
                f'height="{round(h_ok, 2)}" fill="{SYNCED}"/>'
            )
        if rejected:
            parts.append(
                f'<rect x="{x}" y="{round(HEIGHT - h_ok - h_bad, 2)}" width="{round(bar, 2)}" '
                f'height="{round(max(h_bad, 1), 2)}" fill="{REJECTED}"/>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)
