"""Tiny random checkpoints of each encoder family, with a tokenizer of the kind that family ships.

They stand in for what users download (hub checkpoints are unreachable here): the config, the weights
as the family saves them, and a fast tokenizer whose model (WordPiece, Unigram/SentencePiece, BPE),
special tokens, pad id and pair template are those of the real ones.
"""

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (MODEL_MAPPING, BertConfig, DebertaV2Config, ElectraConfig, ErnieConfig,
                          PreTrainedTokenizerFast, RobertaConfig, XLMRobertaConfig, XLMRobertaForMaskedLM)

from afqmc_helpers import CHARS

LATIN = list("abcdefghijklmnopqrstuvwxyz0123456789")
SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _wordpiece(specials: dict[str, str]) -> Tokenizer:
    """bert-base-chinese's kind: [CLS] A [SEP] B [SEP] with token types 0/1, pad id 0."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + CHARS + LATIN
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(handle_chinese_chars=True, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return tok


def _unigram(xlmr: bool) -> Tokenizer:
    """SentencePiece Unigram. ``xlmr``: XLM-R's <s>=0 <pad>=1 </s>=2 <unk>=3 and <s> A </s></s> B </s> without
    token types (multilingual-e5, xlm-roberta); else DeBERTa-v2's [PAD]=0 [CLS]=1 [SEP]=2 [UNK]=3."""
    specials = ["<s>", "<pad>", "</s>", "<unk>"] if xlmr else ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]
    pieces = [(s, 0.0) for s in specials] + [("▁", -2.0)] + [(c, -3.0 - i / 100) for i, c in enumerate(CHARS + LATIN)]
    pieces.append(("<mask>" if xlmr else "[MASK]", 0.0))
    tok = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    if xlmr:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                                           special_tokens=[("<s>", 0), ("</s>", 2)])
    else:
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    return tok


def _bpe() -> Tokenizer:
    """RoBERTa's kind: BPE, <s>=0 <pad>=1 </s>=2 <unk>=3, <s> A </s></s> B </s> (RobertaProcessing)."""
    vocab = ["<s>", "<pad>", "</s>", "<unk>"] + CHARS + LATIN + ["<mask>"]
    tok = Tokenizer(models.BPE({t: i for i, t in enumerate(vocab)}, [], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # character by character
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    return tok


XLMR_SPECIALS = dict(bos_token="<s>", eos_token="</s>", cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                     unk_token="<unk>", mask_token="<mask>")
BERT_SPECIALS = dict(cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")
NO_TYPES = ["input_ids", "attention_mask"]
TYPES = ["input_ids", "token_type_ids", "attention_mask"]

# family -> (config class, extra config, tokenizer builder, special tokens, model_input_names)
FAMILIES = {
    "bert": (BertConfig, {}, lambda: _wordpiece({}), BERT_SPECIALS, TYPES),
    # multilingual-e5's layout: a BertModel behind an XLM-R SentencePiece tokenizer, pad id 1, no token types.
    "bert-sentencepiece": (BertConfig, {"pad_token_id": 1}, lambda: _unigram(True), XLMR_SPECIALS, NO_TYPES),
    "roberta": (RobertaConfig, {"pad_token_id": 1, "max_position_embeddings": 130}, _bpe, XLMR_SPECIALS, NO_TYPES),
    "xlm-roberta": (XLMRobertaConfig, {"pad_token_id": 1, "max_position_embeddings": 130, "type_vocab_size": 1},
                    lambda: _unigram(True), XLMR_SPECIALS, NO_TYPES),
    "ernie": (ErnieConfig, {}, lambda: _wordpiece({}), BERT_SPECIALS, TYPES),
    "electra": (ElectraConfig, {"embedding_size": 16}, lambda: _wordpiece({}), BERT_SPECIALS, TYPES),
    "deberta-v2": (DebertaV2Config, {"type_vocab_size": 0, "relative_attention": True, "position_buckets": 16,
                                     "pos_att_type": ["p2c", "c2p"]}, lambda: _unigram(False), BERT_SPECIALS, TYPES),
}


def make_family_checkpoint(path: Path, family: str) -> Path:
    """A checkpoint directory of ``family`` (see FAMILIES), saved as a user would download it."""
    config_cls, extra, build, specials, input_names = FAMILIES[family]
    path.mkdir(parents=True, exist_ok=True)
    tok = build()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, model_input_names=input_names, **specials)
    tokenizer.save_pretrained(path)
    config = config_cls(vocab_size=tok.get_vocab_size(), **{"max_position_embeddings": 128, **SIZE, **extra})
    if family == "xlm-roberta":  # a masked-LM checkpoint: its encoder keys carry the "roberta." prefix
        XLMRobertaForMaskedLM(config).save_pretrained(path)
    else:
        MODEL_MAPPING[type(config)](config).save_pretrained(path)
    return path
