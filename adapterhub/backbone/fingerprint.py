"""The backbone fingerprint: which encoder an adapter was trained on, provable on any machine.

A sha256 over the architecture config and the weights as stored. Checkpoints that differ only in
bookkeeping (a ``bert.`` prefix, pooler or LM-head weights a headless encoder never uses) are the
same backbone and get the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors import safe_open

from adapterhub.errors import BackboneError

# Keys of config.json that define the architecture (the rest is bookkeeping).
ARCHITECTURE_KEYS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "max_position_embeddings",
    "type_vocab_size",
    "layer_norm_eps",
    "position_embedding_type",
)
# Weights a headless encoder never uses; a checkpoint with or without them is the same backbone.
UNUSED_PREFIXES = ("pooler.", "cls.", "lm_head.", "classifier.")
_FINGERPRINT_CACHE = ".adapterhub-fingerprint.json"


def _architecture(config: dict) -> dict:
    return {key: config.get(key) for key in ARCHITECTURE_KEYS}


def _weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def strip_base_prefix(names: list[str]) -> dict[str, str]:
    """``bert.encoder...`` and ``encoder...`` name the same weight: hash them alike."""
    bases = ("bert.", "roberta.", "xlm_roberta.", "model.")
    for base in bases:
        if names and all(n.startswith(base) or n.startswith(UNUSED_PREFIXES) for n in names):
            return {n: n[len(base) :] if n.startswith(base) else n for n in names}
    return {n: n for n in names}


def read_config(folder: str | Path) -> dict:
    """The folder's ``config.json``; :class:`BackboneError` when it is missing or not JSON."""
    try:
        return json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackboneError(f"{folder} has no readable config.json ({exc})") from exc


def fingerprint_folder(folder: str | Path, config: dict | None = None) -> str:
    """sha256 over the architecture config and every used weight (name, dtype, shape, bytes).

    Cached beside the weights, keyed by their sizes and modification times. ``config``: the
    folder's config.json when the caller has read it already.
    """
    # Lazy: `adapterhub backbone list` imports this package and runs in 0.25 s; torch at module
    # level would add about 5 s (measured with `python -c "import torch"` on a 2-core machine).
    import torch

    folder = Path(folder)
    if config is None:
        config = read_config(folder)
    files = _weight_files(folder)
    if not files:
        raise BackboneError(
            f"{folder} has no .safetensors weights; adapterhub only loads safetensors "
            "(convert pickle checkpoints with transformers' save_pretrained first)"
        )
    stamp = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    cache = folder / _FINGERPRINT_CACHE
    try:
        cached = json.loads(cache.read_text())
        if cached.get("stamp") == stamp and cached.get("config") == _architecture(config):
            return cached["fingerprint"]
    except (OSError, ValueError):
        pass

    digest = hashlib.sha256()
    digest.update(json.dumps(_architecture(config), sort_keys=True).encode())
    handles = [safe_open(str(f), framework="pt") for f in files]
    owner = {name: h for h in handles for name in h.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    canonical = strip_base_prefix(sorted(owner))
    for stored, name in sorted(canonical.items(), key=lambda item: item[1]):
        if name.startswith(UNUSED_PREFIXES):
            continue
        tensor = owner[stored].get_tensor(stored).contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    fingerprint = f"sha256:{digest.hexdigest()}"
    try:
        cache.write_text(
            json.dumps(
                {"stamp": stamp, "config": _architecture(config), "fingerprint": fingerprint}
            )
        )
    except OSError:
        pass  # a read-only folder simply recomputes next time
    return fingerprint
