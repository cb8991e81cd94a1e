"""A tiny, randomly initialised backbone for fast tests (here and in users' own test suites).

It has the real backbone's shape in miniature: a BERT encoder without a pooler, an XLM-R-style
Unigram tokenizer with the same special ids (0 ``<s>``, 1 ``<pad>``, 2 ``</s>``, 3 ``<unk>``,
last ``<mask>``), saved as a standard transformers folder that ``load_backbone`` loads.
"""

from __future__ import annotations

import json
from pathlib import Path

from adapterhub.backbone.embedded import SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG

# Words and characters of several languages and scripts, so tiny-backbone tests tokenise real text.
_WORDS = (
    "the a is was good bad great terrible movie film book not very and of to i it this that "
    "love hate boring fun excellent awful fine plot story actor query passage "
    "der die das ist nicht gut schlecht sehr und ein eine buch film "
    "le la les est pas bon mauvais très et un une livre "
    "de het een is niet goed slecht heel en boek "
    "el la es no bueno malo muy y un una libro "
    "il lo è non buono cattivo molto e uno "
    "好 坏 电影 书 非常 不 很 是 的 我"
)
_CHARS = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    ".,;:!?'\"()-/&%äöüßéèêàçñíóúâôûëïœ"
    "你我他好坏不很是的电影书天气今非常"
    "абвгдежзийклмнопрстуфхцчшщыьэюя"
    "αβγδεζηθικλμνξοπρστυφχψω"
)


def _tokenizer_json() -> dict:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    pieces: list[tuple[str, float]] = [(token, 0.0) for token in specials]
    pieces.append(("\u2581", -2.0))
    seen = {p for p, _ in pieces}
    for word in _WORDS.split():
        for piece in (f"\u2581{word}", word):
            if piece not in seen:
                seen.add(piece)
                pieces.append((piece, -3.0 - 0.1 * len(pieces) / 100))
    for char in _CHARS:
        if char not in seen:
            seen.add(char)
            pieces.append((char, -8.0))
    pieces.append(("<mask>", 0.0))
    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=3, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581")
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    tokenizer.add_special_tokens(specials + ["<mask>"])
    return json.loads(tokenizer.to_str())


def make_tiny_backbone(
    directory: str | Path,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 64,
    seed: int = 0,
) -> Path:
    """Write a tiny random BERT backbone folder and return its path (deterministic for a seed)."""
    import torch
    from transformers import BertConfig, BertModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer_json()
    config = BertConfig(
        vocab_size=len(tokenizer["model"]["vocab"]),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=128,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        tokenizer_class="XLMRobertaTokenizer",
        architectures=["BertModel"],
    )
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(str(directory), safe_serialization=True)
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
    tokenizer_config = {**TOKENIZER_CONFIG, "model_max_length": 128}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (directory / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP, indent=2))
    return directory
