"""Pair tables that ``datasets`` reads: Parquet files, ``save_to_disk`` directories and hub datasets
(``hf:NAME[:CONFIG][@SPLIT]``). ``datasets`` owns those formats (Arrow memory-mapping, caching, the hub);
errors name the file and row. Text formats (JSON Lines, TSV, CSV) are :mod:`afqmc.data.tables`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from afqmc.data.rows import HUB_PREFIX, Table
from shared.errors import UserError


def dataset_table(spec: str, kind: str) -> Table:
    dataset = load_dataset_source(spec, kind)
    # ClassLabel columns hold integers; their names are the labels (-1, "no label" in hub test splits: None).
    names = {c: f.names for c, f in dataset.features.items() if type(f).__name__ == "ClassLabel"}

    def named(row: dict[str, Any]) -> dict[str, Any]:
        for column, labels in names.items():
            value = row.get(column)
            if isinstance(value, int):
                row[column] = labels[value] if 0 <= value < len(labels) else None
        return row
    rows = ((f"{spec}: row {i}", named(row)) for i, row in enumerate(dataset, start=1))
    if len(dataset) == 0:
        raise UserError(f"{spec}: no records (the dataset is empty)")
    return Table(spec, kind, list(dataset.column_names), None, rows)


def load_dataset_source(spec: str, kind: str) -> Any:
    """A ``datasets.Dataset`` for a Parquet file, a save_to_disk directory (``DIR[@SPLIT]``) or a hub
    dataset (``hf:NAME[:CONFIG][@SPLIT]``, split ``train`` when not given)."""
    import datasets

    datasets.disable_progress_bars()
    # datasets logs its own line for a file it cannot read ("Failed to read schema ...") before raising;
    # the one-line error below says it, so its log stays quiet (the --debug traceback keeps the cause).
    verbosity = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL + 1)
    try:
        if kind == "parquet":
            if not Path(spec).is_file():
                raise UserError(f"{spec}: file not found")
            return datasets.Dataset.from_parquet(spec)
        if kind == "disk":
            return _from_disk(spec, datasets)
        return _from_hub(spec, datasets)
    except UserError:
        raise
    except Exception as e:  # pyarrow/datasets raise many types for a damaged or foreign file
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{spec}: cannot read as {kind} ({first})") from None
    finally:
        datasets.logging.set_verbosity(verbosity)


def _from_disk(spec: str, datasets: Any) -> Any:
    directory, _, split = spec.partition("@") if not Path(spec).is_dir() else (spec, "", "")
    if not any((Path(directory) / name).is_file() for name in ("dataset_dict.json", "state.json")):
        raise UserError(f"{spec}: is a directory, but not one written by `datasets` save_to_disk "
                        "(no dataset_dict.json or state.json); expected a pair file or such a directory")
    loaded = datasets.load_from_disk(directory)
    if isinstance(loaded, datasets.DatasetDict):
        if not split and len(loaded) == 1:
            split = next(iter(loaded))
        if split not in loaded:
            raise UserError(f"{spec}: a DatasetDict with splits {', '.join(loaded)}; name one as {directory}@SPLIT")
        return loaded[split]
    if split:
        raise UserError(f"{spec}: {directory} holds a single Dataset, not splits; drop @{split}")
    return loaded


@contextlib.contextmanager
def _offline_mode(datasets: Any) -> Iterator[None]:
    """The hub libraries' offline mode (as HF_HUB_OFFLINE=1 sets it) for one load: the cache answers at
    once, where ``local_files_only`` alone still sent HEAD requests, retried for 23 s, each printed."""
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def _from_hub(spec: str, datasets: Any) -> Any:
    from afqmc.model.modeldir import hub_reachable

    name, _, split = spec[len(HUB_PREFIX):].partition("@")
    name, _, config = name.partition(":")
    if not name:
        raise UserError(f"{spec}: expected hf:NAME[:CONFIG][@SPLIT], e.g. hf:clue/afqmc@validation")
    offline = not hub_reachable()
    try:
        with _offline_mode(datasets) if offline else contextlib.nullcontext():
            return datasets.load_dataset(name, config or None, split=split or "train")
    except Exception as e:
        args = ", ".join(repr(a) for a in (name, config) if a)
        why = ("the Hugging Face hub is unreachable and the dataset is not in the local cache; on a machine with "
               f"access run python -c \"import datasets; datasets.load_dataset({args}).save_to_disk('data')\", "
               f"copy data/ here and pass it as data@{split or 'train'}") if offline \
            else (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{spec}: cannot load ({why})") from None
