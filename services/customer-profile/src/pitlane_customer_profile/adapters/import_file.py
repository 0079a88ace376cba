"""Reading the files shops have today: CSV (UTF-8, or GBK as Excel in China saves it) or XLSX. Yields each
data row with its spreadsheet row number (the header is row 1), cells as trimmed strings."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime

from openpyxl import load_workbook

from pitlane_platform.errors import InvalidInputError

XLSX_MAGIC = b"PK\x03\x04"
NUL = "\x00"


def read_rows(filename: str, content: bytes) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header cells and an iterator over (row number, cells) of the non-empty data rows."""
    if content.startswith(XLSX_MAGIC) or filename.lower().endswith(".xlsx"):
        return _xlsx(content)
    return _csv(content)


def _csv(content: bytes) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte sequence
        raise InvalidInputError("file", "not a text file in UTF-8 or GBK")
    if NUL in text:
        # PostgreSQL cannot store it in text; a file with one is a broken export, not data.
        row = text.count("\n", 0, text.index(NUL)) + 1
        raise InvalidInputError("file", f"line {row} contains a NUL character")
    records = _csv_records(csv.reader(io.StringIO(text, newline="")))
    header = [cell.strip() for cell in next(records, [])]
    if not any(header):
        raise InvalidInputError("file", "the file is empty: the first row must name the columns")

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, cells in enumerate(records, start=2):
            cells = [cell.strip() for cell in cells]
            if any(cells):
                yield number, cells

    return header, rows()


def _csv_records(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The reader's records; what it cannot parse (a field over its 128 KiB limit, an unclosed quote at
    the end) is a 422 naming the file and the line, not an error escaping the import."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            line = getattr(reader, "line_num", "?")
            raise InvalidInputError("file", f"line {line} cannot be read as CSV ({error})") from None


def _xlsx(content: bytes) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a broken file
        raise InvalidInputError("file", f"not a readable XLSX workbook ({type(exc).__name__})") from None
    sheet = workbook.worksheets[0]
    values = sheet.iter_rows(values_only=True)
    header = [_cell(cell) for cell in next(values, ())]
    if not any(header):
        raise InvalidInputError("file", "the first sheet is empty: its first row must name the columns")

    def rows() -> Iterator[tuple[int, list[str]]]:
        for number, cells in enumerate(values, start=2):
            texts = [_cell(cell) for cell in cells]
            if any(texts):
                yield number, texts
        workbook.close()

    return header, rows()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores 13812345678 and 2019 as floats
    return str(value).strip()
