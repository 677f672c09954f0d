"""Sentence pairs from a user's file: which columns hold the texts, the label and the id, and the label set.

Columns come from ``--text-columns A,B`` / ``--label-column L`` or are detected from the common names
(below, in order). A headerless TSV/CSV is positional: 2 fields are an unlabelled pair, 3 a pair and its
label; for other layouts name the fields by number (``--text-columns 2,3 --label-column 4``).
Labels are kept as written (strings; integers as their decimal text); without ``--labels`` the set is
collected from the training data in numeric-aware order, so ``0``/``1`` stay classes 0/1.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

from afqmc.data.batches import Pair
from afqmc.data.columns import (ID_COLUMNS, LABEL_COLUMNS, TEXT_PAIRS, label_column, looks_like_header, names_in_use,
                                 two_texts_beside_label)
from afqmc.data.dataset_tables import dataset_table
from afqmc.data.rows import BadLine, MissingLabel, Table, WrongEncoding, kind_of
from afqmc.data.tables import delimited_table, jsonl_table
from shared.errors import UserError

log = logging.getLogger("pairtrain")

@dataclass(frozen=True)
class PairFile:
    """A pair file (any supported format) and how its columns are named."""

    spec: str
    text_columns: tuple[str, str] | None = None  # --text-columns; None: detect
    label_column: str | None = None  # --label-column; None: detect

    def __str__(self) -> str:
        return self.spec


@dataclass(frozen=True)
class Columns:
    first: str
    second: str
    label: str | None
    id: str | None


def open_table(spec: str, names_in_use: list[str]) -> Table:
    """Open ``spec`` with the reader for its kind; ``names_in_use`` (groups of column names asked for or
    commonly used, comma-joined) decide whether the first line of a TSV/CSV is a header: it is when it
    holds every name of a group."""
    kind = kind_of(spec)
    if kind == "jsonl":
        return jsonl_table(spec)
    if kind in ("tsv", "csv"):
        return delimited_table(spec, kind, names_in_use)
    return dataset_table(spec, kind)


def _as_file(source: PairFile | str | Any) -> PairFile:
    return source if isinstance(source, PairFile) else PairFile(str(source))


def _key(name: str, table: Table) -> str:
    """A column named on the command line: a header name, or a field number from 1 (for a file with a
    header too: ``--text-columns 1,2`` reads its first two columns)."""
    if table.positional and name.isdigit():
        return f"#{name}"
    if name.isdigit() and name not in table.columns and table.header and 1 <= int(name) <= len(table.header):
        return table.header[int(name) - 1]
    return name


def describe(column: str) -> str:
    return f"field {column[1:]}" if column.startswith("#") else f"field '{column}'"


def resolve_columns(table: Table, pf: PairFile, need_label: bool) -> Columns:
    """Which columns of ``table`` to read; raises UserError naming the file when they are not there."""
    pos, have, schemaless = table.positional, set(table.columns), table.kind == "jsonl"
    if pf.text_columns:
        first, second = (_key(c, table) for c in pf.text_columns)
    elif pos:
        if len(table.columns) not in (2, 3):
            first_line = ", ".join(f.strip()[:20] for f in table.first_line or [])
            if hint := _separator_hint(table):
                raise UserError(f"{table.name}: the first line ({first_line}) is one field: {hint}")
            raise UserError(f"{table.name}: {len(table.columns)} fields per line, and the first line ({first_line}) "
                            "is not a header with known column names; name the columns: --text-columns A,B "
                            "--label-column L (header names, or field numbers from 1 for a headerless file)")
        first, second = "#1", "#2"
    else:
        found = [p for p in TEXT_PAIRS if p[0] in have and p[1] in have]
        if not found and table.header and (beside := two_texts_beside_label(table.header)):
            found = [beside]
            log.info(f"{table.name}: sentence columns {beside[0]!r} and {beside[1]!r} (the header's two columns "
                     "beside the label; name others with --text-columns A,B)")
        if not found and not schemaless:
            raise UserError(f"{table.name}: no sentence columns found among {', '.join(table.columns)} (looked for "
                            f"{', '.join('/'.join(p) for p in TEXT_PAIRS)}); name them with --text-columns A,B")
        first, second = found[0] if found else TEXT_PAIRS[0]
    if pf.label_column:
        label = _key(pf.label_column, table)
    elif pos:
        label = "#3" if len(table.columns) == 3 else None
    else:
        label = label_column(table.columns) or ("label" if schemaless else None)
    wanted = [first, second] + ([label] if label and (pf.label_column or need_label) else [])
    named = [*(pf.text_columns or ()), *([pf.label_column] if pf.label_column else [])]
    if missing := [c for c in wanted if c not in have and (not schemaless or c in named)]:
        _raise_missing(table, missing)
    if label is None and need_label:
        raise MissingLabel(f"{table.name}: no label column (looked for {', '.join(LABEL_COLUMNS)}; name it with "
                           "--label-column; use `predict --file` for unlabelled files)")
    ident = None if pos else next((c for c in ID_COLUMNS if c in have), "id" if schemaless else None)
    return Columns(first, second, label if label in have or schemaless else None, ident)


def _raise_missing(table: Table, missing: list[str]) -> None:
    """Columns asked for that the file lacks; a first line that names some of them but not all was not taken
    for a header, so only the names it lacks are reported (with what it has)."""
    if table.kind == "jsonl":
        shown = f"the first record's fields: {', '.join(table.columns)}"
    elif table.positional:
        first_line = [f.strip() for f in table.first_line or []]
        missing = [c for c in missing if c.startswith("#") or c not in first_line] or missing
        shown = f"{len(table.columns)} fields per line, the first: {', '.join(f[:20] for f in first_line)}"
    else:
        shown = f"columns: {', '.join(table.columns)}"
    raise UserError(f"{table.name}: no {', '.join(describe(c) for c in missing)} ({shown})")


def _near_label(label: str, known: Sequence[str]) -> str:
    """A known label that ``label`` differs from only in case or numeric spelling ("Entailment", "1.0")."""
    def number(text: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            return None
    value = number(label)
    near = next((k for k in known if k.lower() == label.lower() or value is not None and number(k) == value), None)
    return f"; it differs from {near!r} only in spelling: labels are matched exactly as written" if near else ""


def _separator_hint(table: Table) -> str:
    """When every line is one field that another separator would split: which one, and what to do."""
    if len(table.columns) != 1 or not table.first_line:
        return ""
    line = table.first_line[0]
    used = next((sep for sep in ("\t", ",", ";", "|") if sep in line), None)
    if used is None:
        return ""
    fix = {"\t": "name it .tsv", ",": "name it .csv"}.get(used, "save it with commas (.csv) or tabs (.tsv)")
    read_as = "comma" if table.kind == "csv" else "tab"
    return f"its fields look separated by {used!r}, but a .{table.kind} file is read {read_as}-separated; {fix}"


def label_text(value: Any, column: str) -> str | None:
    """A label as written: strings stripped, integers (and integral floats) as decimal text, other floats
    (a similarity score) as Python writes them (``3.8``)."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        raise BadLine(f"{describe(column)} must be a finite number, found {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadLine(f"{describe(column)} must be a string or a number, found {type(value).__name__}")
    text = str(value).strip()
    return text or None


def _text(row: dict[str, Any], column: str) -> str:
    if column not in row:
        raise BadLine(f"missing {describe(column)}")
    value = row[column]
    if value is None:
        raise BadLine(f"{describe(column)} is null")
    if not isinstance(value, str):
        raise BadLine(f"{describe(column)} must be a string, found {type(value).__name__}")
    if not value.strip():
        raise BadLine(f"{describe(column)} is empty")
    return value


def _id(value: Any, column: str) -> int | str | None:
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return int(value) if value.strip().isdigit() else value.strip()
    raise BadLine(f"{describe(column)} must be an integer or a string, found {value!r}")


def _record(row: dict[str, Any] | BadLine, cols: Columns, need_label: bool) -> tuple[str, str, str | None, Any]:
    """(sentence1, sentence2, label text, id) of one row; raises BadLine."""
    if isinstance(row, BadLine):
        raise row
    first, second = _text(row, cols.first), _text(row, cols.second)
    label = label_text(row.get(cols.label), cols.label) if cols.label else None
    if label is None and need_label:
        raise MissingLabel(f"missing {describe(cols.label or 'label')} (this command needs labelled data; "
                           "use `predict --file` for unlabelled files)")
    return first, second, label, _id(row.get(cols.id), cols.id) if cols.id else None


def iter_records(source: PairFile | str, need_label: bool, skip_bad: bool,
                 known: Sequence[str] | None = None,
                 report: bool = True) -> Iterator[tuple[str, str, str, str | None, Any]]:
    """``(where, sentence1, sentence2, label text, id)`` of every valid record in file order.

    A defect raises UserError naming the file and line/row, or with ``skip_bad`` is counted, the first
    five logged, and the total reported at the end (``report``: a streamed epoch re-reads the file
    quietly). With ``known``, a label outside it is a defect.
    """
    pf = _as_file(source)
    table = open_table(pf.spec, names_in_use(pf.text_columns, pf.label_column))
    try:
        cols = resolve_columns(table, pf, need_label)
    except MissingLabel as e:
        raise UserError(str(e)) from None
    skipped = kept = 0
    for where, row in table.rows:
        try:
            first, second, label, ident = _record(row, cols, need_label)
            if known is not None and label is not None and label not in known:
                near = _near_label(label, known)
                raise BadLine(f"unknown label {label!r} (expected one of {', '.join(known)}){near}")
        except BadLine as e:
            if not skip_bad:
                skippable = not isinstance(e, (MissingLabel, WrongEncoding))
                hint = " (use --skip-bad-lines to skip such lines)" if skippable else ""
                raise UserError(f"{where}: {e}{hint}") from None
            skipped += 1
            if skipped <= 5 and report:
                log.warning(f"skipping {where}: {e}")
            continue
        kept += 1
        yield where, first, second, label, ident
    if skipped and report:
        log.warning(f"{pf.spec}: skipped {skipped} bad line(s), kept {kept}")
    if not kept:
        raise UserError(f"{pf.spec}: no records" + (" left after skipping bad lines" if skipped else
                                                    " (the file is empty)"))


def refuse_header_as_data(source: PairFile | str, first: tuple[str, str | None] | None, counts: Counter[str]) -> None:
    """Refuse a headerless TSV/CSV whose first line looks like a header with names we do not know
    (:func:`afqmc.data.columns.looks_like_header`) rather than learn it as a pair (it would add a class)."""
    pf = _as_file(source)
    if first is None or first[1] is None or kind_of(pf.spec) not in ("tsv", "csv"):
        return
    table = open_table(pf.spec, names_in_use(pf.text_columns, pf.label_column))
    where, label = first
    fields = [f.strip() for f in table.first_line or []]
    if table.positional and looks_like_header(fields, label, counts):
        raise UserError(f"{where}: looks like a header, not a pair ({', '.join(fields)}): its label {label!r} "
                        "occurs on no other line. If it is a header, name the columns (--text-columns A,B "
                        f"--label-column L); if {label!r} really is a label, list the labels with --labels")


def sort_labels(labels: set[str]) -> list[str]:
    """Numbers in numeric order first (so "2" < "10"), then other labels alphabetically."""
    def key(label: str) -> tuple[int, float, str]:
        try:
            return (0, float(label), label)
        except ValueError:
            return (1, 0.0, label)
    return sorted(labels, key=key)


def read_pairs(source: PairFile | str, labels: Sequence[str] | None = ("0", "1"), need_label: bool = True,
               skip_bad: bool = False) -> list[Pair]:
    """Every record of a pair file, labels as indices into ``labels``."""
    return read_labelled(source, labels, need_label, skip_bad)[0]


def read_labelled(source: PairFile | str, labels: Sequence[str] | None, need_label: bool = True,
                  skip_bad: bool = False) -> tuple[list[Pair], list[str]]:
    """Records and the label list: ``labels`` as given, or (None) collected from the file."""
    records = list(iter_records(source, need_label, skip_bad, known=labels))
    if labels is None:
        counts = Counter(r[3] for r in records if r[3] is not None)
        refuse_header_as_data(source, (records[0][0], records[0][3]), counts)
        labels = collected_labels(set(counts), source)
    return list(as_pairs(records, labels)), list(labels)


def as_pairs(records: Iterable[tuple[str, str, str, str | None, Any]], labels: Sequence[str]) -> Iterator[Pair]:
    """:func:`iter_records`' records as Pairs numbered in file order, labels as indices into ``labels``."""
    index = {lab: i for i, lab in enumerate(labels)}
    for i, (where, a, b, label, ident) in enumerate(records):
        yield Pair(i, ident, a, b, index[label] if label is not None else None, where)


def collected_labels(seen: set[str], source: Any) -> list[str]:
    if len(seen) < 2:
        raise UserError(f"{source}: the training data has {len(seen)} distinct label(s) "
                        f"({', '.join(sorted(seen)) or 'none'}); a classifier needs at least two")
    return sort_labels(seen)
