"""Typed dataclass configs <-> argparse.

Each app declares one frozen dataclass whose fields carry ``metadata={"help": ...}``; the
help text is the field's documentation and the CLI's ``--help`` at once. Validation lives in
the dataclass's ``__post_init__`` so a config is checked once and never mutated afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per dataclass field, typed and documented from the field.

    A flag that is not given is left out of the namespace (``argparse.SUPPRESS``) and :func:`from_args`
    fills it in: from the field's default, or from a resumed run's saved settings. Required fields are
    checked there too, since ``--resume`` may supply them."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        tp = hints[f.name]
        # argparse %-formats help text: a literal "25%" would crash --help ("must be real number").
        help_text = f.metadata.get("help", "").replace("%", "%%")
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS}
        origin = get_origin(tp)
        if origin in (typing.Union, types.UnionType):  # Optional[X]
            tp = next(a for a in get_args(tp) if a is not type(None))
            origin = get_origin(tp)
        if tp is bool:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction,
                                help=f"{help_text} (default: {default})", **kwargs)
            continue
        if origin is Literal:
            kwargs["choices"] = list(get_args(tp))
            kwargs["type"] = type(get_args(tp)[0])
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            raise TypeError(f"unsupported config field type {tp!r} for {f.name}")
        for key in ("nargs", "metavar"):
            if key in f.metadata:
                kwargs[key] = f.metadata[key]
        shown = f" (default: {str(default).replace('%', '%%')})"
        if f.metadata.get("required"):
            shown = " (required)"
        elif "default_help" in f.metadata:  # a default resolved later (e.g. per architecture), said in words
            shown = f" (default: {f.metadata['default_help']})"
        elif f.metadata.get("no_default_help"):
            shown = ""
        elif default is None:
            shown = " (optional)"
        parser.add_argument(_flag(f.name), help=f"{help_text}{shown}", **kwargs)


def option(default: Any, help: str, **metadata: Any) -> Any:
    """A config field with its ``--help`` text (``required=True``, ``nargs``, ``metavar`` also go here)."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


# Options both apps have, with one help text each (apps choose the defaults).
SHARED_HELP = {
    "out": "run directory (metrics.json, best/, last/, checkpoints/, reports)",
    "seed": "random seed (weight init, dropout, data order)",
    "resume": "continue from the newest complete checkpoint in --out; --epochs/--max-steps may be raised "
              "to extend a run (the learning-rate schedule is then rebuilt for the new total and continues "
              "from the current step)",
    "device": "auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps",
    "precision": "auto: bfloat16 where a timing at start-up says it is faster than fp32 (GPUs: where "
                 "supported); fp32/bf16 force one",
    "threads": "CPU threads for PyTorch (0: one per core; eval/predict then leave cores that other processes "
               "keep busy, train only warns). Oversubscribed cores turn a 2x slowdown into 10x",
    "epochs": "passes over the training set",
    "max_steps": "stop after N optimizer steps in total (0: no limit)",
    "save_every_steps": "also checkpoint every N optimizer steps (0: at epoch ends only)",
    "log_interval": "print the loss line every N batches (0: never)",
    "report_to": "also write the run's scalars (history.csv's) for a tracker: tensorboard (event files in "
                 "OUT/tensorboard/; needs pip install 'pairtrain[tensorboard]') or none",
    "quiet": "only warnings, errors and the final result on the console (train.log keeps everything)",
    "eval_every_steps": "also evaluate every N optimizer steps inside epochs (0: at epoch ends only); every "
                        "evaluation may become best/ and counts for --patience",
    "select_by": "the evaluation metric that picks best/ and that --patience watches: accuracy, macro_f1, "
                 "or loss (lower is better)",
    "patience": "stop after K evaluations in a row without improvement of --select-by (0: never stop early); "
                "--resume with a larger K (or 0) continues an early-stopped run",
}


# Shared options a resumed run may change: where it writes, what it prints and uses, when it stops early.
RUN_OPTIONS_MAY_DIFFER = ("out", "resume", "device", "threads", "quiet", "log_interval", "save_every_steps",
                          "patience", "report_to")


def shared_option(name: str, default: Any, **metadata: Any) -> Any:
    """A field for one of :data:`SHARED_HELP`'s options, so that both apps describe it the same way."""
    return option(default, SHARED_HELP[name], **metadata)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """The training options both apps have, declared once; an app subclasses it, adds its own fields,
    and redeclares a field only to choose another default (e.g. ``out``, ``epochs``)."""

    out: str = shared_option("out", "runs/run")
    seed: int = shared_option("seed", 42)
    resume: bool = shared_option("resume", False)
    epochs: int = shared_option("epochs", 3)
    max_steps: int = shared_option("max_steps", 0)
    eval_every_steps: int = shared_option("eval_every_steps", 0)
    select_by: Literal["accuracy", "macro_f1", "loss"] = shared_option("select_by", "accuracy")
    patience: int = shared_option("patience", 0)
    save_every_steps: int = shared_option("save_every_steps", 0)
    device: str = shared_option("device", "auto")
    precision: Literal["auto", "fp32", "bf16"] = shared_option("precision", "auto")
    threads: int = shared_option("threads", 0)
    log_interval: int = shared_option("log_interval", 100)
    quiet: bool = shared_option("quiet", False)
    report_to: Literal["none", "tensorboard"] = shared_option("report_to", "none")

    def run_option_problems(self) -> list[str]:
        """What is wrong with the shared options (apps add theirs and raise once, listing all)."""
        problems = [] if self.epochs >= 1 else [f"--epochs must be at least 1 (got {self.epochs})"]
        problems += [f"--{name.replace('_', '-')} must not be negative (got {getattr(self, name)})"
                     for name in ("max_steps", "eval_every_steps", "patience", "save_every_steps", "threads",
                                  "log_interval") if getattr(self, name) < 0]
        return problems


def raise_problems(problems: list[str]) -> None:
    """One UserError naming every problem of a config (the CLI prints it as one line)."""
    from shared.errors import UserError

    if problems:
        raise UserError("; ".join(problems))


RUN_SETTINGS = "run_config.json"  # in a run directory: the settings it was started with (see from_args)


def from_args(cls: type[T], ns: argparse.Namespace, **overrides: Any) -> T:
    """Build the config from parsed arguments; ``__post_init__`` validates it.

    Options not given take the field's default, except under ``--resume`` of a run directory that holds
    :data:`RUN_SETTINGS`: there they take the run's own settings, so ``train --out runs/x --resume`` needs
    nothing retyped (options given beside it are checked against the checkpoint by the app, as before)."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    given = {k: v for k, v in vars(ns).items() if k in {f.name for f in fields}} | overrides
    saved = _resumed_settings(cls, given)
    if saved is None and given.get("resume") and (old := _predates_settings(cls, given)):
        from shared.errors import UserError

        raise UserError(f"--resume {old}: the run predates {RUN_SETTINGS}; give "
                        + " and ".join(_flag(f.name) for f in fields if f.metadata.get("data"))
                        + " again (its other settings are checked against the checkpoint)")
    values = {}
    for f in fields:
        if f.name in given:
            values[f.name] = given[f.name]
        elif saved is not None and f.name in saved:
            values[f.name] = saved[f.name]
        elif f.default is not dataclasses.MISSING and not f.metadata.get("required"):
            values[f.name] = f.default
    if missing := [_flag(f.name) for f in fields if f.name not in values]:
        from shared.errors import UserError

        hint = "" if not given.get("resume") else (
            f" (--resume takes them from {Path(given.get('out', _default(cls, 'out'))) / RUN_SETTINGS}, "
            "which does not exist)")
        raise UserError(f"the following arguments are required: {', '.join(missing)}{hint}")
    return cls(**values)


def _default(cls: type, name: str) -> Any:
    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def _predates_settings(cls: type, given: dict[str, Any]) -> Path | None:
    """A run directory with checkpoints but no saved settings, resumed without its ``data`` options (fields
    whose default is a data set: taking it would continue on other data), else None."""
    data = [f.name for f in dataclasses.fields(cls) if f.metadata.get("data")]
    out = Path(given.get("out", _default(cls, "out")))
    if not data or all(name in given for name in data) or (out / RUN_SETTINGS).exists():
        return None
    return out if (out / "checkpoints").is_dir() else None


def _resumed_settings(cls: type, given: dict[str, Any]) -> dict[str, Any] | None:
    """The saved settings of the run ``--out`` names when ``--resume`` is given (None: none to take)."""
    if not given.get("resume") or "out" not in {f.name for f in dataclasses.fields(cls)}:
        return None
    path = Path(given.get("out", _default(cls, "out"))) / RUN_SETTINGS
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        from shared.errors import UserError

        raise UserError(f"{path}: cannot read the run's saved settings ({e}); give the options again") from None
    return {k: v for k, v in saved.items() if k not in ("resume", "out")} if isinstance(saved, dict) else None


def field_defaults(cls: type) -> dict[str, Any]:
    """Each field's default (what a checkpoint written before the field existed stands for)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of a config (what goes into checkpoints and metrics.json)."""
    return dataclasses.asdict(cfg)
