"""Pure parts of the dashboard: message scrubbing, the SVG trend chart, the counts mapping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from crm_sync.dashboard.charts import trend_svg
from crm_sync.dashboard.privacy import scrub
from crm_sync.dashboard.queries import outcome_counts

SVG = "{http://www.w3.org/2000/svg}"


def test_scrub_masks_personal_data_and_secrets_but_keeps_codes_and_ids():
    text = (
        "INVALID_EMAIL_ADDRESS: invalid email address: ann.smith@example.org; "
        "phone +27 82 555 1234 refused; value: 'Ann' too long; access_token=abc123; "
        "duplicate of 003000000000001AAA"
    )
    cleaned = scrub(text)
    assert "ann.smith" not in cleaned
    assert "555 1234" not in cleaned
    assert "'Ann'" not in cleaned
    assert "abc123" not in cleaned
    assert "INVALID_EMAIL_ADDRESS" in cleaned
    assert "003000000000001AAA" in cleaned
    assert scrub(None) is None
    assert len(scrub("x" * 2000, limit=100)) == 100


def test_trend_svg_is_well_formed_with_one_bar_per_day():
    points = [
        {"day": "2026-11-01", "synced": 0, "rejected": 0, "runs": 0},
        {"day": "2026-11-02", "synced": 30, "rejected": 10, "runs": 2},
        {"day": "2026-11-03", "synced": 40, "rejected": 0, "runs": 1},
    ]
    root = ET.fromstring(trend_svg(points, title="aou <sync>"))
    assert root.tag == f"{SVG}svg"
    assert root.attrib["aria-label"].startswith("aou <sync>")
    rects = root.iter(f"{SVG}rect")
    heights = [(r.attrib["fill"], float(r.attrib["height"])) for r in rects]
    # Empty day: a 1px baseline; day 2: green 30 and red 10; day 3 is the tallest (the scale's top).
    assert heights == [("#e0e0e0", 1.0), ("#2e7d32", 30.0), ("#c62828", 10.0), ("#2e7d32", 40.0)]
    assert "http" not in trend_svg(points, title="x").replace("http://www.w3.org/2000/svg", "")


def test_outcome_counts_from_a_run_summary():
    summary = {
        "planned": {"create": 3, "update": 2, "unchanged": 90},
        "outcomes": {
            "create": {"success": 2, "rejected": 1},
            "update": {"success": 1, "failed": 1},
            "claim": {"success": 1},
            "delete": {"success": 4},
        },
        "by_status": {"success": 8, "rejected": 1, "failed": 1, "skipped": 0, "parked": 0},
        "quarantined": 2,
    }
    assert outcome_counts(summary) == {
        "created": 2, "updated": 2, "deleted": 4, "unchanged": 90,
        "rejected": 3, "skipped": 0, "failed": 1, "parked": 0,
    }  # fmt: skip
    assert outcome_counts({})["created"] == 0
