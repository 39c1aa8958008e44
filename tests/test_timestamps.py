from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from crm_sync.timestamps import parse_instant

NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["2026-11-25T12:00:00Z", "2026-11-25T12:00:00+00:00", "2026-11-25T12:00:00+0000", "2026-11-25 12:00:00",
     "2026-11-25T13:00:00+01:00", " 2026-11-25T12:00:00Z "],
)  # fmt: skip
def test_every_notation_of_one_instant_reads_the_same(text: str) -> None:
    assert parse_instant(text) == NOON
    assert parse_instant(text).tzinfo is not None


def test_datetimes_pass_through_and_naive_ones_are_utc() -> None:
    plus_two = NOON.astimezone(timezone(timedelta(hours=2)))
    assert parse_instant(plus_two) is plus_two
    assert parse_instant(datetime(2026, 11, 25, 12, 0)) == NOON


@pytest.mark.parametrize("value", [None, "", "   ", "yesterday", "2026-13-45T00:00:00Z", 42])
def test_blank_or_invalid_is_none(value: object) -> None:
    assert parse_instant(value) is None
