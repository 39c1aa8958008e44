"""Read a GP Connect report (.xlsx or .csv) row by row, in constant memory.

An .xlsx file is read with openpyxl in read-only mode twice, in lockstep: once for the values
Excel calculated (``data_only=True``, what the seed read) and once for the formulas, so a
formula cell without a calculated value (a file written by a script and never opened in
Excel) is reported instead of silently read as empty. Read-only mode does not expose merged
cells, so their ranges are read from the sheet's XML: a merged range in the data fills every
cell it covers with its top-left value (as it is displayed); a merged header fails the file.
Headers are in row 1; rows that are entirely empty are skipped.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils.cell import get_column_letter, range_boundaries
from openpyxl.utils.datetime import CALENDAR_WINDOWS_1900

# openpyxl's iterparse: defusedxml's when installed, as openpyxl parses the sheets themselves.
from openpyxl.xml.functions import iterparse

from crm_sync.exceptions import FatalError

__all__ = ["FileRejected", "RawRow", "Report", "open_report"]

_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"


class FileRejected(FatalError):
    """The whole file cannot be imported (no sheet, bad headers, unreadable); nothing was written.

    Args:
        code: ``MISSING_SHEET``, ``UNREADABLE_FILE``, ``EMPTY_FILE``, ``NO_HEADER``,
            ``DUPLICATE_HEADER``, ``MERGED_HEADER``, ``MISSING_HEADER`` or ``UNKNOWN_HEADERS``.
        message: what is wrong, naming sheets, columns and headers (never cell values).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


@dataclass(frozen=True, slots=True)
class RawRow:
    """One data row: its number in the sheet, its values by header, and formula problems."""

    number: int
    values: dict[str, Any]
    uncalculated: tuple[str, ...] = ()
    """Headers whose cell holds a formula without a calculated value."""


@dataclass
class Report:
    """An open report: its headers and a one-pass iterator over its data rows."""

    path: Path
    sheet_name: str | None
    headers: list[str]
    epoch: datetime = CALENDAR_WINDOWS_1900
    fell_back: bool = False
    """True when the configured sheet was missing and the first sheet was read instead."""
    _rows: Iterator[RawRow] | None = None
    _closers: list[Any] = field(default_factory=list)

    def rows(self) -> Iterator[RawRow]:
        """The data rows, once (empty rows skipped)."""
        if self._rows is None:
            raise RuntimeError("rows() can be iterated once")
        rows, self._rows = self._rows, None
        return rows

    def close(self) -> None:
        """Close the underlying workbooks or file."""
        for closer in self._closers:
            closer.close()
        self._closers.clear()

    def __enter__(self) -> Report:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_report(path: Path, *, sheet: str, first_sheet_fallback: bool = True) -> Report:
    """Open a report file and read its header row.

    Raises:
        FileRejected: unreadable file, missing sheet, or a header row that is empty, merged or
            has a blank or repeated header over data.
    """
    if path.suffix.lower() == ".csv":
        return _open_csv(path)
    return _open_xlsx(path, sheet=sheet, first_sheet_fallback=first_sheet_fallback)


def _open_csv(path: Path) -> Report:
    handle = path.open(newline="", encoding="utf-8-sig")
    reader = csv.reader(handle)
    first = next(reader, None)
    if first is None:
        handle.close()
        raise FileRejected("EMPTY_FILE", f"{path.name} is empty")
    headers = _headers(first)

    def rows() -> Iterator[RawRow]:
        for number, cells in enumerate(reader, start=2):
            row = _row(number, headers, list(cells))
            if row is not None:
                yield row

    report = Report(path=path, sheet_name=None, headers=headers, _rows=rows())
    report._closers.append(handle)
    return report


def _open_xlsx(path: Path, *, sheet: str, first_sheet_fallback: bool) -> Report:
    try:
        values_book = load_workbook(path, read_only=True, data_only=True)
        formula_book = load_workbook(path, read_only=True, data_only=False)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise FileRejected(
            "UNREADABLE_FILE", f"{path.name} is not a readable .xlsx workbook ({type(exc).__name__})"
        ) from None
    closers = [values_book, formula_book]
    try:
        name, fell_back = _sheet_name(values_book.sheetnames, sheet, first_sheet_fallback, path.name)
        values_sheet, formula_sheet = values_book[name], formula_book[name]
        values_sheet.reset_dimensions()
        formula_sheet.reset_dimensions()
        merged = _merged_ranges(path, values_sheet._worksheet_path)
        value_rows = values_sheet.iter_rows(values_only=True)
        formula_rows = formula_sheet.iter_rows(values_only=True)
        first = next(value_rows, None)
        next(formula_rows, None)
        headers = _header_row(first, merged, name, path.name)
    except BaseException:
        for book in closers:
            book.close()
        raise
    report = Report(
        path=path,
        sheet_name=name,
        headers=headers,
        epoch=values_book.epoch,
        fell_back=fell_back,
        _rows=_xlsx_rows(headers, value_rows, formula_rows, merged),
    )
    report._closers.extend(closers)
    return report


def _header_row(
    first: tuple[Any, ...] | None, merged: list[tuple[int, int, int, int]], sheet: str, file_name: str
) -> list[str]:
    if first is None:
        raise FileRejected("EMPTY_FILE", f"sheet {sheet!r} of {file_name} is empty")
    for min_col, min_row, max_col, max_row in merged:
        if min_row == 1:
            cells = f"{get_column_letter(min_col)}1:{get_column_letter(max_col)}{max_row}"
            raise FileRejected(
                "MERGED_HEADER",
                f"sheet {sheet!r}: the header row has merged cells {cells}; one header per column",
            )
    return _headers(list(first))


def _sheet_name(names: Sequence[str], wanted: str, fallback: bool, file_name: str) -> tuple[str, bool]:
    for name in names:
        if name.strip().lower() == wanted.strip().lower():
            return name, False
    if fallback and names:
        return names[0], True
    raise FileRejected(
        "MISSING_SHEET", f"{file_name} has no sheet {wanted!r} (sheets: {', '.join(map(repr, names))})"
    )


def _merged_ranges(path: Path, sheet_path: str) -> list[tuple[int, int, int, int]]:
    """``(min_col, min_row, max_col, max_row)`` of every merged range of the sheet."""
    ranges = []
    with zipfile.ZipFile(path) as archive, archive.open(sheet_path.lstrip("/")) as source:
        for _, element in iterparse(source, events=("end",)):
            if element.tag == f"{_MAIN_NS}mergeCell":
                bounds = range_boundaries(element.get("ref", ""))
                ranges.append(tuple(int(b) for b in bounds))  # type: ignore[arg-type]
            elif element.tag == f"{_MAIN_NS}row":
                element.clear()  # keep memory flat on large sheets
    return ranges  # type: ignore[return-value]


def _headers(cells: list[Any]) -> list[str]:
    """Row 1 as headers (trailing blank cells dropped).

    Raises:
        FileRejected: no header at all, a blank header between others, or a repeated one.
    """
    texts = [str(c).strip() if c is not None else "" for c in cells]
    while texts and not texts[-1]:
        texts.pop()
    if not texts:
        raise FileRejected("NO_HEADER", "row 1 holds no headers")
    blank = [get_column_letter(i) for i, text in enumerate(texts, start=1) if not text]
    if blank:
        raise FileRejected("NO_HEADER", f"column(s) {', '.join(blank)} of row 1 have no header")
    seen: dict[str, str] = {}
    for index, text in enumerate(texts, start=1):
        key = text.lower()
        if key in seen:
            raise FileRejected(
                "DUPLICATE_HEADER",
                f"header {text!r} appears in columns {seen[key]} and {get_column_letter(index)}",
            )
        seen[key] = get_column_letter(index)
    return texts


def _row(
    number: int, headers: list[str], cells: list[Any], uncalculated: tuple[str, ...] = ()
) -> RawRow | None:
    if len(cells) < len(headers):
        cells = cells + [None] * (len(headers) - len(cells))
    values = dict(zip(headers, cells[: len(headers)], strict=True))
    if all(v is None or (isinstance(v, str) and not v.strip()) for v in values.values()):
        return None
    return RawRow(number=number, values=values, uncalculated=uncalculated)


def _is_formula(value: Any) -> bool:
    if isinstance(value, str):
        return value.startswith("=")
    return type(value).__name__ in {"ArrayFormula", "DataTableFormula"}


def _xlsx_rows(
    headers: list[str],
    value_rows: Iterator[tuple[Any, ...]],
    formula_rows: Iterator[tuple[Any, ...]],
    merged: list[tuple[int, int, int, int]],
) -> Iterator[RawRow]:
    # (row, col) of every merged cell but the top-left -> the top-left it copies.
    fills: dict[tuple[int, int], tuple[int, int]] = {}
    for min_col, min_row, max_col, max_row in merged:
        for r in range(min_row, max_row + 1):
            for c in range(min_col, max_col + 1):
                if (r, c) != (min_row, min_col):
                    fills[(r, c)] = (min_row, min_col)
    anchors = set(fills.values())
    anchor_values: dict[tuple[int, int], Any] = {}
    width = len(headers)
    for number, (values, formulas) in enumerate(zip(value_rows, formula_rows, strict=False), start=2):
        cells = list(values[:width]) + [None] * max(0, width - len(values))
        uncalculated = tuple(
            headers[i]
            for i, formula in enumerate(formulas[:width])
            if cells[i] is None and _is_formula(formula)
        )
        if fills or anchors:
            for col in range(1, width + 1):
                if (number, col) in anchors:
                    anchor_values[(number, col)] = cells[col - 1]
                source = fills.get((number, col))
                if source is not None and cells[col - 1] is None:
                    cells[col - 1] = anchor_values.get(source)
        row = _row(number, headers, cells, uncalculated)
        if row is not None:
            yield row
