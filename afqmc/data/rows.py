"""What every pair-table reader yields: a :class:`Table` of rows, each with where it came from, and the
defects a row can have. The readers are :mod:`afqmc.data.tables` (text formats, line by line) and
:mod:`afqmc.data.dataset_tables` (what ``datasets`` reads); :func:`afqmc.data.sources.open_table` picks one
by :func:`kind_of`. Both readers build on this module alone, so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from shared.errors import UserError

HUB_PREFIX = "hf:"


class BadLine(ValueError):
    """A defect of one line or row (the caller adds where)."""


class MissingLabel(BadLine):
    pass


class WrappedRecords(BadLine):
    """The records wrapped in one JSON object (``{"data": [...]}``): the file's layout, not one bad line."""


class WrongEncoding(BadLine):
    """A line that is not UTF-8 where the file is evidently in another encoding (skipping lines won't help)."""


@dataclass
class Table:
    """A pair file opened for reading: its column names (first record's keys for JSON Lines) and rows."""

    name: str  # as the user wrote it, for messages
    kind: str  # jsonl, tsv, csv, parquet, disk, hub
    columns: list[str]
    header: list[str] | None  # the header line of a TSV/CSV (None: headerless, or not a text table)
    rows: Iterator[tuple[str, dict[str, Any] | BadLine]]
    first_line: list[str] | None = None  # a TSV/CSV's first line, as fields

    @property
    def positional(self) -> bool:
        return bool(self.columns) and self.columns[0] == "#1"


def kind_of(spec: str) -> str:
    if spec.startswith(HUB_PREFIX):
        return "hub"
    path = Path(spec.split("@")[0] if not Path(spec).exists() and "@" in spec else spec)
    if path.is_dir():
        return "disk"
    suffix = path.suffix.lower()
    kinds = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".tsv": "tsv", ".txt": "tsv", ".csv": "csv",
             ".parquet": "parquet", ".pq": "parquet"}
    if suffix in kinds:
        return kinds[suffix]
    raise UserError(f"{spec}: unknown file type {suffix or '(no extension)'!r}; use .jsonl/.json (JSON Lines), "
                    ".tsv/.txt (tab-separated), .csv, .parquet, a `datasets` save_to_disk directory "
                    "or hf:NAME[:CONFIG][@SPLIT]")
