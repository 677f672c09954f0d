"""A character-level WordPiece tokenizer trained on the training file (for ``--model scratch``)."""

from __future__ import annotations

from typing import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_char_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2
                         ) -> BertTokenizerFast:
    """BERT-style normalisation (CJK characters split apart, lower-cased) + WordPiece.

    Every CJK character becomes its own token, as in bert-base-chinese; Latin words and digits
    get WordPiece sub-words. Characters seen fewer than ``min_frequency`` times map to [UNK].
    """
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False,
                                        special_tokens=SPECIALS)
    tok.train_from_iterator(texts, trainer=trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return wrap(tok)


def wrap(tok: Tokenizer) -> BertTokenizerFast:
    """A transformers tokenizer (save_pretrained, pair encoding) around a `tokenizers` one."""
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]",
                             pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
                             do_lower_case=True, tokenize_chinese_chars=True)
