from __future__ import annotations

import logging

import pytest

from crm_sync.sync.progress import Progress, format_duration


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticker():
    return Ticker()


def lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "crm_sync.progress"]


def test_logs_at_a_steady_pace_with_rate_eta_and_extra(caplog, ticker):
    caplog.set_level(logging.INFO, logger="crm_sync.progress")
    progress = Progress(
        1_000_000, "stage contacts", every_s=10.0, clock=ticker, extra=lambda: "budget 4,321 left"
    )
    for _ in range(4):
        ticker.now += 4.0
        progress.advance(50_000)
    assert lines(caplog) == [
        "stage contacts: 150,000/1,000,000 (15.0%), 12,500/s, ETA 1m08s, budget 4,321 left",
    ]
    ticker.now += 6.0
    progress.advance(50_000)
    assert len(lines(caplog)) == 2
    assert lines(caplog)[-1].startswith("stage contacts: 250,000/1,000,000 (25.0%), 11,364/s, ETA 1m06s")


def test_unknown_total_has_no_eta(caplog, ticker):
    caplog.set_level(logging.INFO, logger="crm_sync.progress")
    progress = Progress(None, "read opt-ins", every_s=1.0, clock=ticker)
    ticker.now += 2.0
    progress.advance(10)
    assert lines(caplog) == ["read opt-ins: 10, 5.0/s"]


def test_finish_logs_one_final_line(caplog, ticker):
    caplog.set_level(logging.INFO, logger="crm_sync.progress")
    with Progress(3, "push", clock=ticker) as progress:
        ticker.now += 3725.0
        progress.advance(3)
        progress.finish()
    assert lines(caplog) == ["push: 3/3 (100.0%), 0.0/s, ETA 0s", "push: finished 3/3 in 1h02m (0.0/s)"]


def test_a_custom_logger_receives_the_lines(caplog, ticker):
    logger = logging.getLogger("tests.progress")
    caplog.set_level(logging.INFO, logger="tests.progress")
    progress = Progress(10, "x", logger=logger, every_s=0.0, clock=ticker)
    ticker.now += 1.0
    progress.advance()
    assert [record.getMessage() for record in caplog.records if record.name == "tests.progress"] == [
        "x: 1/10 (10.0%), 1.0/s, ETA 9s"
    ]


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.4, "59s"), (61, "1m01s"), (7260, "2h01m")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
