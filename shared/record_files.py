"""Result records (predictions) written in the format the file name asks for.

``.jsonl`` (and ``.json``): one JSON object per line, nested values as they are. ``.csv`` / ``.tsv``: a
header row and one row per record, a nested mapping flattened one level to ``key.subkey`` columns (the
names ``pandas.json_normalize`` gives the JSON Lines file, so both formats read back to the same table).
Every record must have the same keys: a column that only some rows carry would be silently blank.
The write is atomic (:func:`shared.atomic.write_bytes`): a failed run never leaves half a file.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from shared.atomic import write_bytes
from shared.errors import UserError

FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv"}


def record_format(path: str | Path, flag: str = "--output") -> str:
    """``jsonl``, ``csv`` or ``tsv`` for ``path``'s extension; a one-line error for any other, and for a
    destination that cannot be written (a folder, a missing parent folder), before any work is done."""
    out = Path(path)
    if out.is_dir():
        raise UserError(f"{flag} {out}: is a directory, expected a file name")
    if not out.parent.is_dir():
        raise UserError(f"{flag} {out}: folder {out.parent} does not exist")
    kind = FORMATS.get(out.suffix.lower())
    if kind is None:
        raise UserError(f"{flag} {out}: unknown extension {out.suffix or '(none)'!r}; use " + ", ".join(FORMATS))
    return kind


def flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """``{"p": {"a": 1}}`` -> ``{"p.a": 1}`` (one level, as a table's columns)."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            flat.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            flat[key] = value
    return flat


def records_bytes(records: Sequence[Mapping[str, Any]], kind: str) -> bytes:
    """The file's bytes (UTF-8; ``None`` is an empty CSV cell and JSON ``null``)."""
    if kind == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    rows = [flatten(r) for r in records]
    columns = list(rows[0]) if rows else []
    if any(list(row) != columns for row in rows):
        raise ValueError("records with different keys cannot share one table")  # a caller's bug, not input
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t" if kind == "tsv" else ",", lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if row[c] is None else row[c] for c in columns] for row in rows])
    return buf.getvalue().encode("utf-8")


def write_records(path: str | Path, records: Sequence[Mapping[str, Any]], kind: str | None = None) -> None:
    """Write ``records`` to ``path`` atomically in ``kind`` (default: by its extension)."""
    write_bytes(path, records_bytes(records, kind or record_format(path)))
