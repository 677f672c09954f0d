"""Experiment tracking: the run's scalars as TensorBoard event files (``--report-to tensorboard``).

The same figures as ``history.csv``, under ``OUT/tensorboard/`` and keyed by the optimizer step
(counted from 1, as there): at each log point ``train/loss``, ``train/lr`` and ``train/epoch``; at each
evaluation ``<eval>/loss``, ``<eval>/accuracy``, ``<eval>/macro_f1`` (a regression's ``pearson``,
``spearman``, ``mse``) and ``train/mean_loss`` (the
training loss averaged over the epoch so far). The anchor is Hugging Face's
``TrainingArguments(report_to="tensorboard")``; the writer is ``torch.utils.tensorboard``, which needs
the ``tensorboard`` package (the ``tensorboard`` extra). A resumed run opens its writer with
``purge_step`` at the step it continues from, so TensorBoard drops what the interrupted process had
logged after its last checkpoint instead of showing those steps twice. Only rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from shared.errors import UserError
from shared.score_metrics import CLASSIFICATION, REGRESSION

REPORT_TO = ("none", "tensorboard")


class TensorBoardLog:
    """Scalars of one run into ``folder`` (a ``SummaryWriter``), flushed at every evaluation."""

    def __init__(self, folder: Path, resumed_at: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch's module imports the tensorboard package
            raise UserError("--report-to tensorboard needs the tensorboard package: "
                            "pip install 'pairtrain[tensorboard]'") from None
        self.writer = SummaryWriter(str(folder), purge_step=resumed_at + 1 if resumed_at else None)
        self.logged = 0  # log rows already written

    def log_points(self, rows: Sequence[dict[str, Any]]) -> None:
        """The log points of ``rows`` (``TrainState.log_rows``) not written yet."""
        for row in rows[self.logged:]:
            for tag, key in (("train/loss", "train_loss"), ("train/lr", "lr"), ("train/epoch", "epoch")):
                self.writer.add_scalar(tag, row[key], row["step"])
        self.logged = len(rows)

    def evaluation(self, record: dict[str, Any], eval_name: str) -> None:
        """One evaluation's record (a ``history`` entry), then a flush: what is there survives a kill."""
        step = record["step"]
        names = REGRESSION if f"{eval_name}_pearson" in record else CLASSIFICATION
        for metric in ("loss", *names):
            self.writer.add_scalar(f"{eval_name}/{metric}", record[f"{eval_name}_{metric}"], step)
        self.writer.add_scalar("train/mean_loss", record["train_loss"], step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tracking(report_to: str, run_root: Path, resumed_at: int, log_rows: Sequence[Any]) -> TensorBoardLog | None:
    """The tracker ``--report-to`` asks for (None: ``none``); ``log_rows`` already in the state (a
    resumed run's) were written by the run before."""
    if report_to == "none":
        return None
    tracker = TensorBoardLog(run_root / "tensorboard", resumed_at)
    tracker.logged = len(log_rows)
    return tracker
