"""Where models come from (hub, local directory, scratch) and self-contained model directories."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import urllib.parse
from pathlib import Path
from typing import Any, Iterator, Sequence

from transformers import AutoConfig, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from afqmc.model.encoders import check_supported, describe, pair_model_class
from afqmc.model.bert import BertForPairwiseCLS, scratch_config
from afqmc.model.scratch_tokenizer import train_char_tokenizer
from afqmc.model.scratch_tokenizer import wrap as wrap_tokenizer
from shared import distributed
from tokenizers import Tokenizer
from shared.atomic import atomic_dir, verify_dir
from shared.errors import CheckpointError, UserError
from shared.rundir import refuse_run_dir

log = logging.getLogger("pairtrain")

OFFLINE_HELP = ("Offline? Pass --model DIR with a local checkpoint directory (config.json, "
                "model.safetensors, vocab.txt/tokenizer.json, e.g. from `hf download bert-base-chinese "
                "--local-dir DIR` on a connected machine or a previous run's best/), set HF_HUB_OFFLINE=1 "
                "to use an already-downloaded cache, or train from scratch with --model scratch")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Without transformers' per-load/save progress bars and its multi-line load report (we print one
    line of our own); the previous settings are restored afterwards."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _load_summary(source: str, model: PreTrainedModel, info: dict[str, Any]) -> str:
    """Hugging Face's load report in one line: what was loaded, what is new, what was ignored."""
    new, ignored = sorted(info.get("missing_keys", ())), sorted(info.get("unexpected_keys", ()))
    loaded = len(model.state_dict()) - len(new)
    line = f"--model {source}: loaded {loaded} weight tensors"
    line += f"; new (trained from scratch here): {', '.join(new)}" if new else "; nothing new"
    if ignored:
        line += f"; ignored from the checkpoint: {', '.join(ignored)}"
    return line


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _label_maps(labels: Sequence[str]) -> dict[str, Any]:
    return {"num_labels": len(labels), "id2label": dict(enumerate(labels)),
            "label2id": {lab: i for i, lab in enumerate(labels)}}


def from_source(source: str, labels: Sequence[str], texts: Any, scratch_size: str, vocab_size: int,
                max_length: int, match_types: bool, saved_tokenizer: str | None = None
                ) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and model for ``--model``: a hub name, a local directory, or ``scratch``.

    ``saved_tokenizer`` (a resumed run's, from its checkpoint) is used instead of building or loading
    one, so the resumed run encodes exactly as the run it continues.
    """
    if source == "scratch":
        # Rank 0 builds the vocabulary (or takes the resumed run's) and every rank uses exactly it.
        built = None
        if distributed.is_main():
            built = saved_tokenizer or train_char_tokenizer(texts, vocab_size=vocab_size).backend_tokenizer.to_str()
        tokenizer = wrap_tokenizer(Tokenizer.from_str(distributed.broadcast_object(built)))
        config = scratch_config(len(tokenizer), scratch_size, len(labels), max_length, tokenizer.pad_token_id,
                                match_types)
        config.update({k: v for k, v in _label_maps(labels).items() if k != "num_labels"})
        log.info(f"--model scratch: {len(tokenizer)}-token char WordPiece vocabulary, "
                 f"{config.num_hidden_layers} layers x {config.hidden_size} hidden")
        return tokenizer, BertForPairwiseCLS(config)
    path = Path(source)
    if path.exists() and not path.is_dir():
        raise UserError(f"--model {source}: is a file; expected a hub name or a checkpoint directory")
    local = path.is_dir()
    if local:
        check_tokenizer_files(path, "--model")
    offline = not local and not hub_reachable()  # fail fast: offline, the hub client retries for ~50 s
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(source, local_files_only=offline)
            check_supported(config, f"--model {source}")
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
            model, info = pair_model_class(config).from_pretrained(source, local_files_only=offline,
                                                                   output_loading_info=True, **_label_maps(labels))
    except (OSError, ValueError, KeyError) as e:
        why = "the model hub is unreachable and it is not in the local cache" if offline else _first_line(e)
        raise UserError(f"--model {source}: cannot load ({why}). {OFFLINE_HELP}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"--model {source}: needs a fast tokenizer (tokenizer.json or vocab.txt)")
    check_vocabulary(tokenizer, model.config, f"--model {source}")
    check_pair_template(tokenizer, f"--model {source}")
    log.info(_load_summary(source, model, info) + f"; encoder {describe(model)}")
    if saved_tokenizer is not None and _vocabulary_of(saved_tokenizer) != _vocabulary_of(
            tokenizer.backend_tokenizer.to_str()):
        raise UserError(f"--model {source}: its tokenizer differs from the one this run started with; "
                        "resume with the same model or start a new --out")
    return tokenizer, model


def _vocabulary_of(serialized: str) -> dict[str, Any]:
    """What decides the token ids of a `tokenizers` JSON (not the truncation/padding state of the moment)."""
    return {k: v for k, v in json.loads(serialized).items() if k not in ("truncation", "padding")}


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connection (HF_HUB_OFFLINE=1: False)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urllib.parse.urlsplit(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout):
            return True
    except OSError:
        return False


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
SAVE_HELP = ("save the model and its tokenizer together with afqmc.save_model_dir(DIR, model, tokenizer) "
             "(or call tokenizer.save_pretrained(DIR) beside model.save_pretrained(DIR))")


def check_tokenizer_files(path: Path, what: str) -> None:
    """Refuse a model directory without tokenizer files: transformers would load an empty tokenizer
    that maps every character to [UNK], and the model would predict garbage without a word of warning."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise CheckpointError(f"{what} {path}: no tokenizer files ({' or '.join(TOKENIZER_FILES)}); "
                              f"a model is only usable with the tokenizer it was trained with: {SAVE_HELP}")


def check_vocabulary(tokenizer: PreTrainedTokenizerBase, config: Any, what: str) -> None:
    """The tokenizer must fit the model's embedding table (some checkpoints pad the table a little)."""
    size, table = len(tokenizer), int(config.vocab_size)
    if size > table or size < table - VOCAB_PADDING:
        raise CheckpointError(f"{what}: the tokenizer has {size} tokens but the model's vocabulary has {table}: "
                              f"they do not belong together; {SAVE_HELP}")


def check_pair_template(tokenizer: PreTrainedTokenizerBase, what: str) -> None:
    """The tokenizer must encode a pair with special tokens around the sentences and one first (``[CLS]``,
    ``<s>``): the head reads the first token. A bare tokenizer.json without a post-processor would join the
    two sentences with nothing between them and the model would read the first character as the pair."""
    enc = tokenizer("a", "b", return_special_tokens_mask=True)
    mask = enc.get("special_tokens_mask") or []
    if not mask or not mask[0] or sum(mask) < 2:
        raise UserError(f"{what}: its tokenizer has no pair template (a pair encodes as "
                        f"{tokenizer.convert_ids_to_tokens(enc['input_ids'])}); a pair model needs one that wraps "
                        "the sentences in special tokens, [CLS] A [SEP] B [SEP] or <s> A </s></s> B </s>: save the "
                        "tokenizer with its post-processor (tokenizer.json \"post_processor\")")


# Embedding tables padded beyond the tokenizer's size (to a multiple of 64 or 128) are fine.
VOCAB_PADDING = 128


def save_model_dir(path: str | Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """config.json + model.safetensors + tokenizer files, written atomically with a manifest."""
    with atomic_dir(Path(path)) as tmp, quiet_transformers():
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)


def load_model_dir(path: str | Path) -> tuple[PreTrainedTokenizerBase, PreTrainedModel, list[str]]:
    """Load a directory written by :func:`save_model_dir`: safetensors only, no remote code."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"model directory {path}: " + ("not a directory" if path.exists() else "not found"))
    refuse_run_dir(path)
    verify_dir(path)
    if not (path / "model.safetensors").is_file():
        raise CheckpointError(f"{path}: no model.safetensors (only safetensors weights are loaded)")
    check_tokenizer_files(path, "model directory")
    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(path, local_files_only=True)
            check_supported(config, f"model directory {path}")
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = pair_model_class(config).from_pretrained(path, local_files_only=True, use_safetensors=True)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot load model directory ({_first_line(e)})") from None
    check_vocabulary(tokenizer, model.config, f"model directory {path}")
    check_pair_template(tokenizer, f"model directory {path}")
    labels = [str(model.config.id2label[i]) for i in range(model.config.num_labels)]
    return tokenizer, model.eval(), labels
