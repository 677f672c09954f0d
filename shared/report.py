"""Run reports: history.csv, curves.png, confusion.png and report.md, written after training.

Plots need the optional ``plots`` extra (matplotlib, Agg backend); without it the CSV and the
Markdown report are still written and the run says once how to get the images.
"""

from __future__ import annotations

import csv
import io
import textwrap
import logging
from pathlib import Path
from typing import Any, Sequence

from shared.atomic import write_bytes
from shared.loops import TrainState
from shared.score_metrics import CLASSIFICATION, REGRESSION, headline, metric_text
from shared.selection import best_record

log = logging.getLogger("pairtrain")
HISTORY_FIELDS = ("kind", "step", "epoch", "lr", "train_loss", "eval_loss", "eval_accuracy", "eval_macro_f1",
                  "seconds")  # a regression run's: eval_pearson, eval_spearman, eval_mse instead of the two
_warned = False


def pyplot() -> Any | None:
    """matplotlib.pyplot on the Agg backend, or None (with a one-time notice) when not installed."""
    global _warned
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        if not _warned:
            log.info("plots skipped: install the plots extra (pip install 'pairtrain[plots]') for PNG charts")
            _warned = True
        return None
    return plt


def history_rows(log_rows: Sequence[dict[str, Any]], epochs: Sequence[dict[str, Any]], prefix: str
                 ) -> list[dict[str, Any]]:
    """One row per training log point (``kind`` ``log``) and per evaluation (``epoch`` at an epoch's end,
    ``mid-epoch`` inside one), in step order; ``step`` is the optimizer step, counted from 1, that a log
    point's batch went into or that an evaluation came after.

    ``prefix`` names the eval split in the epoch records (``test`` or ``dev``).
    """
    rows = [{"kind": "log", **{k: r.get(k) for k in ("step", "epoch", "lr", "train_loss", "seconds")}}
            for r in log_rows]
    names = REGRESSION if epochs and f"{prefix}_pearson" in epochs[0] else CLASSIFICATION
    for e in epochs:
        rows.append({"kind": e.get("kind", "epoch"), "step": e["step"], "epoch": e["epoch"], "lr": e.get("lr"),
                     "train_loss": e.get("train_loss"), "eval_loss": e.get(f"{prefix}_loss"),
                     **{f"eval_{k}": e.get(f"{prefix}_{k}") for k in names}, "seconds": e.get("seconds")})
    return sorted(rows, key=lambda r: (r["step"], r["kind"] != "log"))


def write_history_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    regression = any("eval_pearson" in row for row in rows)
    fields = [f for f in HISTORY_FIELDS if not (regression and f in ("eval_accuracy", "eval_macro_f1"))]
    if regression:
        fields[fields.index("seconds"):fields.index("seconds")] = [f"eval_{k}" for k in REGRESSION]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    write_bytes(path, buf.getvalue().encode("utf-8"))


def plot_curves(path: Path, rows: Sequence[dict[str, Any]], eval_name: str) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    logs = [r for r in rows if r["kind"] == "log"]
    epochs = [r for r in rows if r["kind"] != "log"]  # every evaluation
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=100)
    if logs:
        ax1.plot([r["step"] for r in logs], [r["train_loss"] for r in logs], ".-", alpha=0.6,
                 label="train loss (batch, at log points)")
    ax1.plot([r["step"] for r in epochs], [r["train_loss"] for r in epochs], "o-", label="train loss (epoch mean)")
    ax1.plot([r["step"] for r in epochs], [r["eval_loss"] for r in epochs], "s--", label=f"{eval_name} loss")
    ax1.set(xlabel="optimizer step", ylabel="loss", title="Loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    regression = bool(epochs) and "eval_pearson" in epochs[0]
    shown = (("pearson", "Pearson", 1), ("spearman", "Spearman", 1)) if regression else \
        (("accuracy", "accuracy", 100), ("macro_f1", "macro-F1", 100))
    for (key, name, scale), style in zip(shown, ("o-", "s--")):
        ax2.plot([r["step"] for r in epochs], [scale * r[f"eval_{key}"] for r in epochs], style,
                 label=f"{eval_name} {name}")
    ax2.set(xlabel="optimizer step", ylabel="correlation" if regression else "%",
            title=f"{eval_name.capitalize()} metrics")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, plt)
    return True


def plot_confusion(path: Path, matrix: Sequence[Sequence[int]], class_names: Sequence[str], title: str) -> bool:
    plt = pyplot()
    if plt is None:
        return False
    k = len(class_names)
    size = max(4.5, 0.75 * k + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size), dpi=100)
    im = ax.imshow(matrix, cmap="Blues", vmin=0)  # the scale starts at 0, not at the smallest cell
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k), labels=class_names, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=class_names)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(textwrap.fill(title, 40), fontsize=10)
    top = max((max(r) for r in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > top / 2 else "black")
    fig.tight_layout()
    save_figure(fig, path, plt)
    return True


def save_figure(fig: Any, path: Path, plt: Any) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")  # never clip a title or a long class name
    plt.close(fig)
    write_bytes(path, buf.getvalue())


def per_class_markdown(metrics: dict[str, Any], class_names: Sequence[str]) -> str:
    pc = metrics["per_class"]
    lines = ["| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for i, name in enumerate(class_names):
        lines.append(f"| {name} | {pc['precision'][i]:.4f} | {pc['recall'][i]:.4f} | {pc['f1'][i]:.4f} | "
                     f"{pc['support'][i]} |")
    return "\n".join(lines)


def write_eval_report(out: Path, metrics: dict[str, Any], class_names: Sequence[str], title: str) -> None:
    """``eval --report DIR``: confusion.png, per_class.csv and report.md for one evaluation."""
    out.mkdir(parents=True, exist_ok=True)
    has_png = plot_confusion(out / "confusion.png", metrics["confusion_matrix"], class_names, title)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["class", "precision", "recall", "f1", "support"])
    pc = metrics["per_class"]
    for i, name in enumerate(class_names):
        w.writerow([name, pc["precision"][i], pc["recall"][i], pc["f1"][i], pc["support"][i]])
    write_bytes(out / "per_class.csv", buf.getvalue().encode("utf-8"))
    md = [f"# {title}", "", f"- examples: {metrics['n']}", f"- accuracy: {100 * metrics['accuracy']:.2f}%",
          f"- macro-F1: {metrics['macro_f1']:.4f}", f"- loss: {metrics['loss']:.6f}", "",
          per_class_markdown(metrics, class_names), ""]
    if has_png:
        md.append("![confusion matrix](confusion.png)")
    write_bytes(out / "report.md", ("\n".join(md) + "\n").encode("utf-8"))
    log.info(f"wrote the evaluation report to {out}")


def write_run_report(run_root: Path, title: str, config: dict[str, Any], data_sizes: dict[str, int],
                     state: TrainState, eval_name: str, class_names: Sequence[str]) -> None:
    """history.csv, curves.png, confusion.png (best epoch) and report.md in the run directory."""
    epochs, train_seconds = state.history, state.train_seconds
    best = best_record(state)
    rows = history_rows(state.log_rows, epochs, eval_name)
    write_history_csv(run_root / "history.csv", rows)
    has_curves = bool(epochs) and plot_curves(run_root / "curves.png", rows, eval_name)
    has_confusion = best is not None and "confusion_matrix" in best and plot_confusion(
        run_root / "confusion.png", best["confusion_matrix"], class_names,
        f"best model (epoch {best['epoch']}, step {best['step']}, best/) on {eval_name}")
    last = epochs[-1] if epochs else {}
    md = [f"# {title}", "", "## Result", ""]
    if best is not None:
        md += [f"- best: epoch {best['epoch']}, step {best['step']} ({_figures(best, eval_name)})"]
    if last:
        md += [f"- final: epoch {last['epoch']}, step {last['step']} ({_figures(last, eval_name)}, "
               f"loss {last[f'{eval_name}_loss']:.6f})"]
    inside = sum(e.get("kind") == "mid-epoch" for e in epochs)
    md += [f"- training time: {train_seconds:.1f} s, {state.global_step} optimizer steps, {len(epochs)} "
           f"evaluation(s)" + (f" ({inside} of them mid-epoch)" if inside else ""), "",
           "## Data", ""] + [f"- {k}: {v}" for k, v in data_sizes.items()]
    md += ["", "## Config", "", "| option | value |", "| --- | --- |"]
    md += [f"| {k} | `{v}` |" for k, v in config.items()]
    md += ["", "## Files", "", "- [history.csv](history.csv): one row per log point and per evaluation",
           "- [metrics.json](metrics.json)", "- best model: `best/`, last model: `last/`"]
    if has_curves:
        md += ["", "![training curves](curves.png)"]
    if has_confusion:
        md += ["", f"Confusion matrix of the best model (epoch {best['epoch']}, saved in `best/`) on {eval_name}; "
               "`metrics.json` has it as `best_confusion_matrix` and the final epoch's as `confusion_matrix`.",
               "", "![confusion matrix of the best model](confusion.png)"]
    write_bytes(run_root / "report.md", ("\n".join(md) + "\n").encode("utf-8"))


def _figures(record: dict[str, Any], eval_name: str) -> str:
    """``dev accuracy 81.20%, macro-F1 0.8000`` or ``dev Pearson 0.8123, Spearman 0.8000``."""
    second = "spearman" if f"{eval_name}_pearson" in record else "macro_f1"
    return f"{headline(record, eval_name)}, {metric_text(record, eval_name, second).removeprefix(eval_name + ' ')}"
