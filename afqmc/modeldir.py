"""Where models come from (hub, local directory, scratch) and self-contained model directories."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from transformers import AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from afqmc.model import BertForPairwiseCLS, scratch_config
from afqmc.tokenizer import train_char_tokenizer
from afqmc.tokenizer import wrap as wrap_tokenizer
from shared import distributed
from tokenizers import Tokenizer
from shared.checkpoint import atomic_dir, verify_dir
from shared.errors import CheckpointError, UserError

log = logging.getLogger("pairtrain")
hf_logging.disable_progress_bar()  # its per-save bars would spam logs; we print our own lines

OFFLINE_HELP = ("Offline? Pass --model DIR with a local checkpoint directory (config.json, "
                "model.safetensors, vocab.txt/tokenizer.json, e.g. from `hf download bert-base-chinese "
                "--local-dir DIR` on a connected machine or a previous run's best/), set HF_HUB_OFFLINE=1 "
                "to use an already-downloaded cache, or train from scratch with --model scratch")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _label_maps(labels: Sequence[str]) -> dict[str, Any]:
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {lab: i for i, lab in enumerate(labels)}}


def from_source(source: str, labels: Sequence[str], texts: Any, scratch_size: str, vocab_size: int,
                max_length: int, match_types: bool) -> tuple[PreTrainedTokenizerBase, BertForPairwiseCLS]:
    """Tokenizer and model for ``--model``: a hub name, a local directory, or ``scratch``."""
    if source == "scratch":
        # Rank 0 trains the tokenizer and every rank uses exactly its vocabulary.
        trained = train_char_tokenizer(texts, vocab_size=vocab_size).backend_tokenizer.to_str() \
            if distributed.is_main() else None
        tokenizer = wrap_tokenizer(Tokenizer.from_str(distributed.broadcast_object(trained)))
        config = scratch_config(len(tokenizer), scratch_size, len(labels), max_length, tokenizer.pad_token_id,
                                match_types)
        config.update({k: v for k, v in _label_maps(labels).items() if k != "num_labels"})
        log.info(f"--model scratch: {len(tokenizer)}-token char WordPiece vocabulary, "
                 f"{config.num_hidden_layers} layers x {config.hidden_size} hidden")
        return tokenizer, BertForPairwiseCLS(config)
    path = Path(source)
    if path.exists() and not path.is_dir():
        raise UserError(f"--model {source}: is a file; expected a hub name or a checkpoint directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = BertForPairwiseCLS.from_pretrained(source, **_label_maps(labels))
    except (OSError, ValueError) as e:
        raise UserError(f"--model {source}: cannot load ({_first_line(e)}). {OFFLINE_HELP}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"--model {source}: needs a fast tokenizer (tokenizer.json or vocab.txt)")
    return tokenizer, model


def save_model_dir(path: Path, model: BertForPairwiseCLS, tokenizer: PreTrainedTokenizerBase) -> None:
    """config.json + model.safetensors + tokenizer files, written atomically with a manifest."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


def load_model_dir(path: str | Path) -> tuple[PreTrainedTokenizerBase, BertForPairwiseCLS, list[str]]:
    """Load a directory written by :func:`save_model_dir`: safetensors only, no remote code."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"--model-dir {path}: " + ("not a directory" if path.exists() else "not found"))
    verify_dir(path)
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(f"{path}: no model.safetensors (only safetensors weights are loaded)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = BertForPairwiseCLS.from_pretrained(path, local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: cannot load model directory ({_first_line(e)})") from None
    labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    return tokenizer, model.eval(), labels
