"""The serving encoder: the BERT family's forward in plain torch, without transformers.

``adapterhub serve`` answers its first request sooner with it: importing transformers' BERT model
classes costs about 3.7 s on a 2-core machine (torch._dynamo, torch.distributed and the rest that
``modeling_utils`` pulls in), more than torch itself, and building the module without random
initialisation, then taking the stored tensors as they are, skips drawing 118M weights that are
overwritten at once. Training and ``eval`` keep transformers' model (PEFT wraps it).

The module tree and parameter names are transformers' own (``embeddings.word_embeddings``,
``encoder.layer.N.attention.self.query``, ``...output.dense``, ...), so the checkpoint loads
strictly, the runtime's hooks find the same ``nn.Linear`` layers by the same names, and
``--quantize int8`` / ``--dtype`` convert it as they convert transformers' model. Attention is
``scaled_dot_product_attention`` with the padding mask, as transformers' default (sdpa)
computes it; tests hold the two to 1e-5 on padded batches of random checkpoints and the real
backbone.

Covered: ``bert`` (positions 0..n-1) and ``xlm-roberta`` / ``roberta`` (positions counted
from the padding index, fairseq's way), absolute position embeddings, the erf GELU. Anything
else loads through transformers (:func:`supports`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from adapterhub.backbone.fingerprint import UNUSED_PREFIXES, read_config, strip_base_prefix
from adapterhub.errors import BackboneError

POSITIONS_FROM_PADDING = ("xlm-roberta", "roberta")
"""Model types whose position ids start after the padding index and skip padding."""
MODEL_TYPES = ("bert", *POSITIONS_FROM_PADDING)


def supports(config: dict) -> bool:
    """Whether this encoder computes exactly what transformers would for ``config``."""
    return (
        config.get("model_type") in MODEL_TYPES
        and config.get("position_embedding_type", "absolute") == "absolute"
        and config.get("hidden_act") == "gelu"
        and not config.get("is_decoder", False)
        and not config.get("add_cross_attention", False)
        and config.get("chunk_size_feed_forward", 0) == 0
        and config.get("embedding_size") in (None, config.get("hidden_size"))
    )


class _Embeddings(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden = config["hidden_size"]
        self.word_embeddings = nn.Embedding(config["vocab_size"], hidden)
        self.position_embeddings = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type_embeddings = nn.Embedding(config.get("type_vocab_size", 2), hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=config["layer_norm_eps"])
        self.padding_idx = config.get("pad_token_id", 0)
        self.positions_from_padding = config["model_type"] in POSITIONS_FROM_PADDING

    def forward(
        self, input_ids: torch.Tensor, token_types: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.positions_from_padding:
            real = input_ids.ne(self.padding_idx).int()
            positions = torch.cumsum(real, dim=1).type_as(real) * real + self.padding_idx
            positions = positions.long()
        else:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :]
        if token_types is None:
            token_types = torch.zeros_like(input_ids)
        embedded = self.word_embeddings(input_ids) + self.token_type_embeddings(token_types)
        embedded = embedded + self.position_embeddings(positions)
        return self.LayerNorm(embedded)


class _SelfAttention(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.head_size = hidden // self.heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        shape = (*hidden.shape[:-1], self.heads, self.head_size)
        query = self.query(hidden).view(shape).transpose(1, 2)
        key = self.key(hidden).view(shape).transpose(1, 2)
        value = self.value(hidden).view(shape).transpose(1, 2)
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, scale=self.head_size**-0.5
        )
        return attended.transpose(1, 2).reshape(*hidden.shape[:-1], -1)


class _Output(nn.Module):
    """``dense`` then the residual's LayerNorm (transformers' BertSelfOutput and BertOutput)."""

    def __init__(self, inputs: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(inputs, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(hidden) + residual)


class _Attention(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        hidden = config["hidden_size"]
        self.self = _SelfAttention(config)
        self.output = _Output(hidden, hidden, config["layer_norm_eps"])

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden, mask), hidden)


class _Intermediate(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        self.dense = nn.Linear(config["hidden_size"], config["intermediate_size"])

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(hidden))


class _Layer(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        self.attention = _Attention(config)
        self.intermediate = _Intermediate(config)
        self.output = _Output(
            config["intermediate_size"], config["hidden_size"], config["layer_norm_eps"]
        )

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        attended = self.attention(hidden, mask)
        return self.output(self.intermediate(attended), attended)


class _Stack(nn.Module):
    def __init__(self, config: dict) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(config) for _ in range(config["num_hidden_layers"]))


class NativeEncoder(nn.Module):
    """A headless BERT-family encoder: ``model(input_ids=, attention_mask=).last_hidden_state``,
    the call the runtime makes of transformers' model."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = SimpleNamespace(**config)
        self.embeddings = _Embeddings(config)
        self.encoder = _Stack(config)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> SimpleNamespace:
        hidden = self.embeddings(input_ids, token_type_ids)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :]  # keys only, as transformers masks
        for layer in self.encoder.layer:
            hidden = layer(hidden, mask)
        return SimpleNamespace(last_hidden_state=hidden)


def load_native(folder: Path, config: dict | None = None) -> NativeEncoder:
    """The encoder of the checkpoint in ``folder`` (``config.json`` and ``*.safetensors``), in
    eval mode; raises :class:`BackboneError` when a stored tensor is missing or unexpected."""
    folder = Path(folder)
    if config is None:
        config = read_config(folder)
    state: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(file)))
    state = _canonical(state)
    with _no_init():
        model = NativeEncoder(config)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise BackboneError(f"cannot load backbone from {folder}: {exc}") from exc
    return model.eval()


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """Modules built inside keep their fresh, uninitialised tensors: every weight is replaced by
    the stored one right after, and drawing 118M random numbers first took ~0.5 s (building on
    the ``meta`` device instead imports torch's reference ops, ~2 s)."""
    saved = {name: getattr(nn.init, name) for name in _INIT_FUNCTIONS}
    for name in _INIT_FUNCTIONS:
        setattr(nn.init, name, _keep)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(nn.init, name, function)


_INIT_FUNCTIONS = ("kaiming_uniform_", "uniform_", "normal_", "ones_", "zeros_")


def _keep(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return tensor


def _canonical(state: dict[str, Any]) -> dict[str, Any]:
    """The stored names without a ``bert.`` (etc.) prefix, as the fingerprint reads them, less
    the weights a headless encoder never uses (pooler, MLM head) and transformers' buffers."""
    names = strip_base_prefix(sorted(state))
    return {
        names[stored]: tensor
        for stored, tensor in state.items()
        if not names[stored].startswith(UNUSED_PREFIXES) and not stored.endswith("position_ids")
    }
