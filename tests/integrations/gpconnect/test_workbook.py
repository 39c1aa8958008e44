"""Reading GP Connect reports: every malformed-workbook case has its own outcome.

Real .xlsx files written by openpyxl to tmp_path (and patched at the XML level where openpyxl
cannot write the case, e.g. a formula with a calculated value), read by the real parser.
"""

from __future__ import annotations

import re
import zipfile
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook

from crm_sync.exceptions import RecordRejected
from crm_sync.integrations.gpconnect.generator import (
    FIELDS,
    HEADERS,
    SHEET,
    patient_rows,
    write_csv,
    write_xlsx,
)
from crm_sync.integrations.gpconnect.rows import ParseStats, columns_for, shape_rows
from crm_sync.integrations.gpconnect.workbook import FileRejected, open_report

TYPES = {key: {"numeric": "number"}.get(kind, kind) for key, _, kind in FIELDS}
TZ = ZoneInfo("Africa/Johannesburg")


def parse(
    path: Path, *, sheet: str = SHEET, fallback: bool = True
) -> tuple[list[dict], list[RecordRejected], ParseStats]:
    stats = ParseStats()
    records: list[dict] = []
    rejected: list[RecordRejected] = []
    with open_report(path, sheet=sheet, first_sheet_fallback=fallback) as report:
        columns = columns_for(report.headers, TYPES)
        for item in shape_rows(
            report.rows(), columns, import_id="imp", region="ZA", epoch=report.epoch, tz=TZ, stats=stats
        ):
            (rejected if isinstance(item, RecordRejected) else records).append(item)
    return records, rejected, stats


def sheet(
    tmp_path: Path, rows: list[list[Any]], *, title: str = SHEET, name: str = "r.xlsx", edit=None
) -> Path:
    book = Workbook()
    ws = book.active
    ws.title = title
    for row in rows:
        ws.append(row)
    if edit is not None:
        edit(book, ws)
    path = tmp_path / name
    book.save(path)
    return path


HEAD = ["telephone_no", "patients_tested_positive", "first_name", "date_of_test", "age"]


def test_a_clean_report_is_read_with_e164_phones_iso_dates_and_typed_values(tmp_path: Path):
    path = sheet(tmp_path, [HEAD, ["082 123 4567", 1, " Ann ", datetime(2026, 11, 3), 40]])
    [record], rejected, stats = parse(path)
    assert rejected == []
    assert record == {
        "row_key": "imp:0000002",
        "row": 2,
        "phone": "+27821234567",
        "params": {
            "patients_tested_positive": 1,
            "first_name": "Ann",
            "date_of_test": "2026-11-03",
            "age": 40,
        },
    }
    assert (stats.rows_total, stats.rows_kept) == (1, 1)


def test_missing_sheet_falls_back_to_the_first_sheet_or_fails_when_told_not_to(tmp_path: Path):
    path = sheet(tmp_path, [HEAD, ["0821234567", 1, "A", None, 3]], title="Sheet1")
    records, _, _ = parse(path)
    assert len(records) == 1
    with pytest.raises(FileRejected) as caught:
        parse(path, fallback=False)
    assert caught.value.code == "MISSING_SHEET"
    assert "'Sheet1'" in str(caught.value)


def test_the_named_sheet_wins_over_the_first(tmp_path: Path):
    def add_notes(book, ws):
        notes = book.create_sheet("Notes", 0)
        notes.append(["not", "the", "report"])

    path = sheet(tmp_path, [HEAD, ["0821234567", 1, "A", None, 3]], edit=add_notes)
    assert len(parse(path)[0]) == 1


@pytest.mark.parametrize(
    ("headers", "code", "named"),
    [
        (["patients_tested_positive", "first_name"], "MISSING_HEADER", "telephone_no"),
        (["telephone_no", "first_name"], "MISSING_HEADER", "patients_tested_positive"),
        ([*HEAD, "blood_type", "ward"], "UNKNOWN_HEADERS", "'blood_type', 'ward'"),
        (["telephone_no", None, "patients_tested_positive"], "NO_HEADER", "column(s) B"),
        (["telephone_no", "patients_tested_positive", "Telephone_No"], "DUPLICATE_HEADER", "columns A and C"),
        ([], "NO_HEADER", "no headers"),
    ],
)
def test_header_problems_fail_the_file_naming_the_headers(tmp_path: Path, headers, code, named):
    path = sheet(tmp_path, [headers, ["0821234567", 1, "x", "y", "z", "w"]])
    with pytest.raises(FileRejected) as caught:
        parse(path)
    assert caught.value.code == code
    assert named in str(caught.value)


def test_headers_match_field_keys_by_name(tmp_path: Path):
    path = sheet(
        tmp_path, [["Telephone No", "Patients tested positive", "First Name"], ["0821234567", "1", "B"]]
    )
    [record], _, _ = parse(path)
    assert record["params"] == {"patients_tested_positive": "1", "first_name": "B"}


def test_formulas_use_the_calculated_value_and_reject_rows_without_one(tmp_path: Path):
    def formulas(book, ws):
        ws["B2"] = "=0+1"  # positive flag computed, calculated value patched in below
        ws["E3"] = "=20+20"  # age computed, never calculated (written by a script)
        ws["B4"] = "=1"  # positive flag computed, never calculated: cannot tell, rejected

    rows = [
        HEAD,
        ["0821234567", None, "A", None, 1],
        ["0831234567", 1, "B", None, None],
        ["0841234567", None, "C", None, 3],
    ]
    path = sheet(tmp_path, rows, edit=formulas)
    _set_cached_value(path, "B2", "1")
    records, rejected, stats = parse(path)
    assert [r["row"] for r in records] == [2]
    assert [(r.key, r.code, r.field) for r in rejected] == [
        ("imp:0000003", "FORMULA_NOT_CALCULATED", "age"),
        ("imp:0000004", "FORMULA_NOT_CALCULATED", "patients_tested_positive"),
    ]
    assert stats.rows_kept == 3


def _set_cached_value(path: Path, cell: str, value: str) -> None:
    """Give a formula cell a calculated value, as Excel does on save (openpyxl never writes one)."""
    patched = path.with_suffix(".tmp")
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(patched, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                text = data.decode()
                text, count = re.subn(
                    rf'(<c r="{cell}"[^>]*>\s*<f>[^<]*</f>)\s*<v\s*/>', rf"\1<v>{value}</v>", text
                )
                if not count:
                    text, count = re.subn(
                        rf'(<c r="{cell}"[^>]*>\s*<f>[^<]*</f>)\s*<v></v>', rf"\1<v>{value}</v>", text
                    )
                assert count == 1, text[:500]
                data = text.encode()
            target.writestr(item, data)
    patched.replace(path)


def test_merged_cells_fill_their_range_and_a_merged_header_fails(tmp_path: Path):
    def merge(book, ws):
        ws.merge_cells("D2:D4")  # one test date for three rows

    rows = [
        HEAD,
        ["0821234567", 1, "A", date(2026, 11, 2), 1],
        ["0831234567", 1, "B", None, 2],
        ["0841234567", 1, "C", None, 3],
    ]
    records, _, _ = parse(sheet(tmp_path, rows, edit=merge))
    assert [r["params"]["date_of_test"] for r in records] == ["2026-11-02"] * 3

    def merge_header(book, ws):
        ws.merge_cells("A1:B1")

    with pytest.raises(FileRejected) as caught:
        parse(sheet(tmp_path, rows, edit=merge_header, name="h.xlsx"))
    assert caught.value.code == "MERGED_HEADER"
    assert "A1:B1" in str(caught.value)


def test_empty_rows_are_skipped_and_not_counted(tmp_path: Path):
    rows = [
        HEAD,
        ["0821234567", 1, "A", None, 1],
        [None] * 5,
        ["", "  ", None, None, None],
        ["0831234567", 1, "B", None, 2],
    ]
    records, rejected, stats = parse(sheet(tmp_path, rows))
    assert [r["row"] for r in records] == [2, 5]
    assert rejected == []
    assert stats.rows_total == 2


def test_numbers_stored_as_text_and_phones_stored_as_numbers(tmp_path: Path):
    rows = [
        HEAD,
        ["0821234567", "1", "A", None, "40"],
        [27831234567, " 1 ", "B", None, 41],
        [841234567.0, "1.0", "C", None, 42.0],
        ["0851234567", "0", "D", None, 43],
        ["0861234567", "yes", "E", None, 44],
    ]
    records, rejected, _ = parse(sheet(tmp_path, rows))
    assert [(r["phone"], r["params"]["age"]) for r in records] == [
        ("+27821234567", "40"),
        ("+27831234567", 41),
        ("+27841234567", 42),
    ]
    assert rejected == []


def test_excel_date_serials_and_text_dates_become_iso_dates(tmp_path: Path):
    rows = [
        HEAD,
        ["0821234567", 1, "A", 43718, 1],
        ["0831234567", 1, "B", "2019/09/10", 2],
        ["0841234567", 1, "C", "10/09/2019", 3],
        ["0851234567", 1, "D", datetime(2019, 9, 10, 14, 30), 4],
        ["0861234567", 1, "E", "soon", 5],
    ]
    records, rejected, _ = parse(sheet(tmp_path, rows))
    assert [r["params"]["date_of_test"] for r in records] == [
        "2019-09-10",
        "2019-09-10",
        "2019-09-10",
        "2019-09-10T14:30:00+02:00",
    ]
    assert [(r.key, r.code, r.field) for r in rejected] == [("imp:0000006", "INVALID_DATE", "date_of_test")]
    assert "soon" not in str(rejected[0])


def test_phones_local_missing_invalid_and_duplicate(tmp_path: Path):
    rows = [
        HEAD,
        ["082 123 4567", 1, "A", None, 1],
        ["+27 (82) 123-4567", 1, "B", None, 2],
        [None, 1, "C", None, 3],
        ["12345", 1, "D", None, 4],
        ["(083) 765 4321", 1, "E", None, 5],
    ]
    records, rejected, stats = parse(sheet(tmp_path, rows))
    assert [(r["row"], r["phone"]) for r in records] == [(2, "+27821234567"), (6, "+27837654321")]
    assert [(r.key, r.code) for r in rejected] == [
        ("imp:0000003", "DUPLICATE_PHONE"),
        ("imp:0000004", "MISSING_PHONE"),
        ("imp:0000005", "INVALID_PHONE"),
    ]
    assert "row 2" in rejected[0].reason
    assert "12345" not in str(rejected[2])
    assert stats.rows_kept == 5


def test_rows_not_tested_positive_are_not_kept(tmp_path: Path):
    rows = [
        HEAD,
        ["0821234567", 0, "A", None, 1],
        ["0831234567", None, "B", None, 2],
        ["bad", "no", "C", None, 3],
    ]
    records, rejected, stats = parse(sheet(tmp_path, rows))
    assert (records, rejected, stats.rows_total, stats.rows_kept) == ([], [], 3, 0)


def test_a_csv_report_is_read_the_same_way(tmp_path: Path):
    path = write_csv(tmp_path / "r.csv", patient_rows(10, seed=1, positive_ratio=1.0))
    records, rejected, _ = parse(path)
    assert len(records) == 10
    assert rejected == []
    assert records[0]["params"]["date_of_test"].startswith("2026-11-")


def test_ten_thousand_rows_stream_through(tmp_path: Path):
    rows = patient_rows(10_000, seed=2)
    path = write_xlsx(tmp_path / "big.xlsx", rows, headers=HEADERS)
    records, rejected, stats = parse(path)
    kept = sum(1 for r in rows if str(r["patients_tested_positive"]) == "1")
    assert stats.rows_total == 10_000
    assert len(records) == kept
    assert rejected == []
    assert len({r["phone"] for r in records}) == kept
    assert records[-1]["row"] <= 10_001


def test_an_unreadable_file_is_rejected(tmp_path: Path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"not a zip")
    with pytest.raises(FileRejected) as caught:
        parse(path)
    assert caught.value.code == "UNREADABLE_FILE"
