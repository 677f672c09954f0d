"""Column names: the ones detected without being named, and whether a file's first line is a header.

A TSV/CSV's first line is a header when it holds a known text-column pair (or the pair named with
``--text-columns``) or a label column's name; a first line that looks like names nobody could know
(``q,c,y``) is refused by :func:`afqmc.data.sources.refuse_header_as_data`, never learnt as a pair.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence

TEXT_PAIRS = (("sentence1", "sentence2"), ("text_a", "text_b"), ("text1", "text2"), ("question1", "question2"),
              ("query", "title"), ("premise", "hypothesis"))
LABEL_COLUMNS = ("label", "labels", "gold_label")
ID_COLUMNS = ("id", "idx")


def is_header(fields: list[str], names_in_use: list[str]) -> bool:
    """A first line holding all the names of one group in use (a text column pair, or one label column name,
    in any case: ``Label`` is a header too) is a header. A data line never has a field called "label"."""
    present = {f.strip().lower() for f in fields}
    return any(all(name.lower() in present for name in group.split(",")) for group in names_in_use)


def names_in_use(text_columns: tuple[str, str] | None, label_column: str | None) -> list[str]:
    """The column-name groups whose presence makes a TSV/CSV's first line a header (see sources.open_table)."""
    texts = [",".join(text_columns)] if text_columns else [",".join(p) for p in TEXT_PAIRS]
    labels = [label_column] if label_column and not label_column.isdigit() else list(LABEL_COLUMNS)
    return [g for g in texts + labels if not all(name.isdigit() for name in g.split(","))]


def label_column(columns: Sequence[str]) -> str | None:
    """The first column named like a label (``label``, ``Label``, ``gold_label`` ...)."""
    return next((c for name in LABEL_COLUMNS for c in columns if c.lower() == name), None)


def two_texts_beside_label(columns: Sequence[str]) -> tuple[str, str] | None:
    """A header of exactly two text columns beside a label (and an id) column, whatever the texts' names:
    ``query,candidate,label``."""
    label = label_column(columns)
    rest = [c for c in columns if c != label and c.lower() not in ID_COLUMNS]
    return (rest[0], rest[1]) if label is not None and len(rest) == 2 else None


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,31}")


def looks_like_header(fields: Sequence[str], label: str, counts: Counter[str]) -> bool:
    """A headerless first line whose label occurs on no other line and whose fields are all identifier-like
    names, or whose label is a word where every other label is a number."""
    if counts[label] != 1:
        return False
    others_numeric = all(_is_number(lab) for lab in counts if lab != label) and not _is_number(label)
    return others_numeric or all(_NAME.fullmatch(f) for f in fields)


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
