"""Rows of a pair file in any supported format, each with where it came from (file:line or row).

Line formats are read here, line by line, because that gives exact ``FILE:LINE`` errors and streams
files larger than memory: JSON Lines (``.jsonl``/``.json``), tab-separated text (``.tsv``/``.txt``,
split on tabs, no quoting: raw NLI/LCQMC TSVs contain bare quotes) and CSV (``.csv``, RFC 4180
quoting, via the standard library's strict reader). Parquet files, ``datasets`` ``save_to_disk``
directories and Hugging Face hub datasets are :mod:`afqmc.data.dataset_tables`.

A row is a dict of column name -> value. Rows of a headerless TSV/CSV are keyed ``#1``, ``#2``, ...
(field numbers, from 1). A row that cannot be read at all is yielded as a :class:`BadLine`.
"""

from __future__ import annotations

import bisect
import csv
import json
import re
from pathlib import Path
from typing import Any, Iterator

from afqmc.data.charsets import lone_surrogate_field, other_encoding
from afqmc.data.columns import is_header
from afqmc.data.rows import BadLine, Table, WrappedRecords, WrongEncoding
from shared.errors import UserError

_WHITESPACE = re.compile(r"[ \t\r\n]*")  # JSON's whitespace
_ARRAY_START = re.compile(rb"\s*\[\s*(\{|\]|$)")
WHOLE_FILE_LIMIT = 256 << 20  # a file larger than this is not read whole just to explain an error


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line with its end) for every line; BOM stripped."""
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a file")
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                yield number, line
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None


def _decoded(path: Path) -> Iterator[tuple[int, str | BadLine]]:
    """Non-blank lines decoded as UTF-8, line end kept (a line that is not UTF-8: a BadLine)."""
    for number, raw in _lines(path):
        if not raw.strip():
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as e:
            other = other_encoding(raw, number)
            if other is None:
                yield number, BadLine(f"invalid UTF-8 at byte {e.start}")
            else:
                yield number, WrongEncoding(f"invalid UTF-8 at byte {e.start}: the file looks {other}; convert it to "
                                            f"UTF-8, e.g. iconv -f {other.split()[0]} -t UTF-8 {path} > "
                                            f"{path.with_stem(path.stem + '-utf8').name}")


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | BadLine]]:
    for number, text in _decoded(path):
        where = f"{path}:{number}"
        if isinstance(text, BadLine):
            yield where, text
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            yield where, BadLine(f"invalid JSON ({e.msg.removesuffix(' at')} at column {e.colno})")
            continue
        yield where, _json_row(obj, "\\u" in text)


def _json_row(obj: Any, escapes: bool) -> dict[str, Any] | BadLine:
    """One JSON value as a row, or what is wrong with it (``escapes``: its text has ``\\u`` escapes)."""
    if not isinstance(obj, dict):
        return BadLine(f"expected a JSON object, found {type(obj).__name__}")
    if not any(isinstance(v, str) for v in obj.values()) and (wrapped := _wrapped_records(obj)):
        return wrapped
    if escapes and (bad := lone_surrogate_field(obj)):
        return BadLine(f"field {bad[0]!r} {bad[1]}")
    return obj


def _wrapped_records(obj: dict[str, Any]) -> WrappedRecords | None:
    """``{"data": [{...}, ...]}``: the records wrapped in one object (what to do about it), else None."""
    key = next((k for k, v in obj.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)),
               None)
    if key is None:
        return None
    n = len(obj[key])
    return WrappedRecords(f"one JSON object holding {n} record{'' if n == 1 else 's'} under {key!r}, not one "
                          f"record per line; write them one per line (e.g. jq -c '.{key}[]' FILE > pairs.jsonl) "
                          "or as an array of records")


def _whole_file_wrapper(path: Path) -> WrappedRecords | None:
    """A pretty-printed ``{"data": [...]}`` file (its first line alone is not JSON): the wrapper, else None."""
    if path.stat().st_size > WHOLE_FILE_LIMIT:
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return None
    return _wrapped_records(obj) if isinstance(obj, dict) else None


def _json_array_rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | BadLine]]:
    """A file that is one JSON array of objects (``[{...}, {...}]``, e.g. pandas' ``to_json(orient="records")``),
    read whole; each object is named by the line it starts on and its place in the array. A syntax error
    ends the read (nothing after it can be located); an element that is not a pair record is a bad line
    like any other."""
    starts, parts, size = [], [], 0
    for number, text in _decoded(path):
        if isinstance(text, BadLine):
            raise UserError(f"{path}:{number}: {text}")
        starts.append(size)
        parts.append((number, text))
        size += len(text)
    doc = "".join(text for _, text in parts)

    def line(offset: int) -> str:
        return f"{path}:{parts[bisect.bisect_right(starts, offset) - 1][0]}"
    decoder, i, item = json.JSONDecoder(), _WHITESPACE.match(doc, doc.index("[") + 1).end(), 0
    while doc[i:i + 1] != "]":
        try:
            obj, end = decoder.raw_decode(doc, i)
        except json.JSONDecodeError as e:
            column = e.pos - starts[bisect.bisect_right(starts, e.pos) - 1] + 1
            raise UserError(f"{line(e.pos)}: invalid JSON ({e.msg.removesuffix(' at')} at column {column})") from None
        item += 1
        yield f"{line(i)} (item {item})", _json_row(obj, "\\u" in doc[i:end])
        i = _WHITESPACE.match(doc, end).end()
        if doc[i:i + 1] == ",":
            i = _WHITESPACE.match(doc, i + 1).end()
        elif doc[i:i + 1] != "]":
            raise UserError(f"{line(i)}: invalid JSON (expected ',' or ']' after an element of the array)")
    if (after := _WHITESPACE.match(doc, i + 1).end()) < len(doc):
        raise UserError(f"{line(after)}: invalid JSON (text after the array's closing ']')")


def jsonl_table(spec: str) -> Table:
    path = Path(spec)
    first_line = next((line for _, line in _lines(path) if line.strip()), b"")
    # An array of objects starts "[{", "[" alone or "[]"; a first line like ["a", "b"] is JSON Lines of lists.
    rows = _json_array_rows(path) if _ARRAY_START.match(first_line) else _jsonl_rows(path)
    first = next(rows, None)
    if first is None:
        raise UserError(f"{path}: no records (the file is empty)")
    if isinstance(first[1], WrappedRecords):  # the whole file is one object: no line of it can be skipped
        raise UserError(f"{first[0]}: {first[1]}")
    pretty = isinstance(first[1], BadLine) and first_line.lstrip().startswith(b"{")
    if pretty and (wrapper := _whole_file_wrapper(path)):
        raise UserError(f"{path}: {wrapper}")
    columns = list(first[1]) if isinstance(first[1], dict) else []

    def chained() -> Iterator[tuple[str, dict[str, Any] | BadLine]]:
        yield first
        yield from rows
    return Table(spec, "jsonl", columns, None, chained())


def _csv_records(path: Path) -> Iterator[tuple[int, list[str] | BadLine]]:
    """CSV records with the line each starts on; a quoting error is a BadLine for that record."""
    lines = _decoded(path)
    pending: list[tuple[int, str]] = []

    def feed() -> Iterator[str]:
        for number, text in lines:
            if isinstance(text, BadLine):
                raise _LineError(number, text)
            pending.append((number, text))
            yield text

    reader = csv.reader(feed(), strict=True)
    while True:
        pending.clear()
        try:
            record = next(reader)
        except StopIteration:
            return
        except _LineError as e:
            yield e.number, e.bad
            continue
        except csv.Error as e:
            start = pending[0][0] if pending else 0
            yield start, BadLine(f"bad CSV quoting ({e}); quote fields containing commas, quotes or line breaks "
                                 "with \"...\" and double inner quotes")
            return  # the reader cannot find the next record boundary after a quoting error
        yield pending[0][0], record


class _LineError(Exception):
    def __init__(self, number: int, bad: BadLine):
        self.number, self.bad = number, bad


def _delimited_records(path: Path, kind: str) -> Iterator[tuple[int, list[str] | BadLine]]:
    if kind == "csv":
        yield from _csv_records(path)
        return
    for number, text in _decoded(path):
        yield number, text if isinstance(text, BadLine) else text.rstrip("\r\n").split("\t")


def delimited_table(spec: str, kind: str, names_in_use: list[str]) -> Table:
    path = Path(spec)
    records = _delimited_records(path, kind)
    first = next(records, None)
    if first is None:
        raise UserError(f"{path}: no records (the file is empty)")
    number, fields = first
    if isinstance(fields, BadLine):
        raise UserError(f"{path}:{number}: {fields}")
    header = [f.strip() for f in fields] if is_header(fields, names_in_use) else None
    if header and (twice := [name for i, name in enumerate(header) if name in header[:i]]):
        raise UserError(f"{path}:{number}: the header names column {twice[0]!r} more than once; "
                        "rename one (which of the two fields is meant would be a guess)")
    columns = header if header is not None else [f"#{i}" for i in range(1, len(fields) + 1)]
    sep = "tab-separated" if kind == "tsv" else "comma-separated"

    def rows() -> Iterator[tuple[str, dict[str, Any] | BadLine]]:
        if header is None:
            yield from _keyed(path, [first], columns, sep)
        yield from _keyed(path, records, columns, sep)
    return Table(spec, kind, columns, header, rows(), first_line=fields)


def _keyed(path: Path, records: Any, columns: list[str], sep: str) -> Iterator[tuple[str, dict[str, Any] | BadLine]]:
    for number, fields in records:
        where = f"{path}:{number}"
        if isinstance(fields, BadLine):
            yield where, fields
        elif len(fields) != len(columns):
            yield where, BadLine(f"expected {len(columns)} {sep} fields (as in the first line), found {len(fields)}")
        else:
            yield where, dict(zip(columns, fields))
