"""Masked-LM warm-up of a from-scratch encoder on the training text (``--mlm-epochs``).

Before fine-tuning, the encoder learns which characters go together by predicting masked
characters of the training pairs; its weights are then copied into the pair classifier.
"""

from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from transformers import BertForMaskedLM, get_linear_schedule_with_warmup

from afqmc.data.batches import collate, length_grouped_batches
from afqmc.model.bert import BertForPairwiseCLS
from shared.loops import TrainState, train_one_epoch
from shared.runtime import adamw

log = logging.getLogger("pairtrain")


def mask_tokens(ids: torch.Tensor, attention: torch.Tensor, special: torch.Tensor, mask_id: int, vocab: int,
                generator: torch.Generator, rate: float = 0.15) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: ``rate`` of real tokens become targets; 80% [MASK], 10% random, 10% kept."""
    candidates = attention.bool() & ~special[ids]
    chosen = (torch.rand(ids.shape, generator=generator) < rate) & candidates
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    roll = torch.rand(ids.shape, generator=generator)
    masked = ids.clone()
    masked[chosen & (roll < 0.8)] = mask_id
    randomise = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[randomise] = torch.randint(vocab, ids.shape, generator=generator)[randomise]
    return masked, labels


class MaskedBatches:
    def __init__(self, features: Sequence[dict[str, list[int]]], batches: list[list[int]], tokenizer: Any,
                 seed: int):
        self.features, self.batches, self.seed = features, batches, seed
        self.pad, self.mask_id, self.vocab = tokenizer.pad_token_id, tokenizer.mask_token_id, len(tokenizer)
        self.special = torch.zeros(self.vocab, dtype=torch.bool)
        self.special[tokenizer.all_special_ids] = True

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed)
        for idx in self.batches:
            inputs, _ = collate([self.features[i] for i in idx], None, self.pad)
            inputs["input_ids"], labels = mask_tokens(inputs["input_ids"], inputs["attention_mask"], self.special,
                                                      self.mask_id, self.vocab, g)
            yield inputs, labels


def _mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)


def mlm_warmup(model: BertForPairwiseCLS, tokenizer: Any, features: Sequence[dict[str, list[int]]], epochs: int,
               batch_size: int, lr: float, seed: int, device: torch.device,
               autocast: torch.dtype | None, progress: bool) -> None:
    """Train the encoder of ``model`` as a masked LM for ``epochs`` epochs, in place."""
    mlm = BertForMaskedLM(model.config)
    mlm.bert.load_state_dict(model.bert.state_dict())
    mlm.to(device)
    optimizer = adamw(mlm.parameters(), lr, 0.01, device)
    lengths = [len(f["input_ids"]) for f in features]
    steps = epochs * -(-len(features) // batch_size)
    scheduler = get_linear_schedule_with_warmup(optimizer, steps // 10, steps)
    state = TrainState()
    for epoch in range(epochs):
        batches = MaskedBatches(features, length_grouped_batches(lengths, batch_size, seed + 7, epoch), tokenizer,
                                seed * 1_000 + epoch)
        out = train_one_epoch(mlm, batches, _mlm_loss, optimizer, state, device=device, scheduler=scheduler,
                              max_grad_norm=1.0, autocast_dtype=autocast, log_interval=0, progress=progress)
        state.epoch, state.step_in_epoch = epoch + 1, 0
        log.info(f"masked-LM warm-up epoch {epoch + 1}/{epochs}: loss {out['train_loss']:.4f}")
    model.bert.load_state_dict(mlm.bert.state_dict())
