"""A character-level WordPiece tokenizer built from the training file (for ``--model scratch``).

The vocabulary is a deterministic function of the training text. ``tokenizers``' WordPiece
trainer is not: four trainings on STS-B-zh's text in one process gave 4495, 4496, 4497 and 4495
tokens (its merge ties are broken in hash-map order), so two runs with the same seed differed and
a resumed run got a different vocabulary from the one its checkpoint was trained with. Here the
vocabulary is counted and sorted in Python (ties broken by the token itself), and the resumed run
reuses the exact tokenizer saved in its checkpoint.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import BertTokenizerFast

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _normalizer() -> normalizers.Normalizer:
    return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, lowercase=True)


def char_vocabulary(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2) -> list[str]:
    """The token list, in id order: specials, every character (most frequent first), the
    word-continuation forms ``##c`` of characters seen inside words, then whole words (Latin words,
    numbers) seen at least ``min_frequency`` times; cut at ``vocab_size``. Ties are broken by the
    token's text, so the same text always gives the same list.

    BERT normalisation splits every CJK character into its own word, as in bert-base-chinese, so
    Chinese text is tokenised character by character; a Latin word or number outside the vocabulary
    falls back to its characters (WordPiece's greedy longest match).
    """
    normalizer, pre = _normalizer(), pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(word for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    starts: Counter[str] = Counter()
    continuations: Counter[str] = Counter()
    for word, count in words.items():
        starts[word[0]] += count
        for ch in word[1:]:
            continuations["##" + ch] += count
    whole = Counter({w: c for w, c in words.items() if len(w) > 1 and c >= min_frequency})
    vocab = list(SPECIALS)
    for counter in (starts, continuations, whole):
        vocab += [tok for tok, _ in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
                  if tok not in SPECIALS]
    return vocab[:vocab_size]


def train_char_tokenizer(texts: Iterable[str], vocab_size: int = 8000, min_frequency: int = 2
                         ) -> BertTokenizerFast:
    """BERT-style normalisation (CJK characters split apart, lower-cased) + WordPiece over
    :func:`char_vocabulary`. Characters never seen in ``texts`` map to ``[UNK]``."""
    vocab = char_vocabulary(texts, vocab_size, min_frequency)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = _normalizer()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))])
    for special in SPECIALS:  # so that decoding and all_special_ids treat them as special
        tok.add_special_tokens([special])
    return wrap(tok)


def wrap(tok: Tokenizer) -> BertTokenizerFast:
    """A transformers tokenizer (save_pretrained, pair encoding) around a `tokenizers` one."""
    return BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]",
                             pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
                             do_lower_case=True, tokenize_chinese_chars=True)
