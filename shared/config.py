"""Typed dataclass configs <-> argparse.

Each app declares one frozen dataclass whose fields carry ``metadata={"help": ...}``; the
help text is the field's documentation and the CLI's ``--help`` at once. Validation lives in
the dataclass's ``__post_init__`` so a config is checked once and never mutated afterwards.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = ()) -> None:
    """Add one ``--flag`` per dataclass field, typed and documented from the field."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in exclude or not f.init:
            continue
        tp = hints[f.name]
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs: dict[str, Any] = {"dest": f.name, "default": default}
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
        if f.metadata.get("required"):
            kwargs["required"] = True
            kwargs.pop("default")
        parser.add_argument(_flag(f.name), help=f"{help_text} (default: %(default)s)", **kwargs)


def from_args(cls: type[T], ns: argparse.Namespace, **overrides: Any) -> T:
    """Build the config from parsed arguments; ``__post_init__`` validates it."""
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {k: v for k, v in vars(ns).items() if k in names}
    values.update(overrides)
    return cls(**values)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of a config (what goes into checkpoints and metrics.json)."""
    return dataclasses.asdict(cfg)
