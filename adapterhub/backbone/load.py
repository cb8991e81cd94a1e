"""The one loader of the frozen backbone: embedded name, local folder or hub id.

``load_backbone`` returns a :class:`Backbone`: the frozen encoder (fp32, bf16 or fp16; or its Linear
layers in 8 bits, through bitsandbytes or fbgemm's dynamic int8), its tokenizer, mean pooling and
a fingerprint (see ``fingerprint.py``). :func:`prepare_backbone` converts a loaded one in place.

torch, transformers and the hub client are imported inside the functions that use them:
`adapterhub backbone list` imports this package and runs in 0.25 s, while `import torch` alone
takes about 5 s, transformers' model classes 2.5 s more and huggingface_hub 0.3 s (measured on a
2-core machine).
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import adapterhub.backbone.embedded as embedded
from adapterhub import settings
from adapterhub.backbone.fingerprint import fingerprint_folder, read_config
from adapterhub.errors import BackboneError, UsageError

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "multilingual-e5-small"
DEFAULT_PREFIX = "query: "
QUANTIZATIONS = (None, "8bit", "int8")
"""``8bit``: bitsandbytes' Linear8bitLt, at load (CPU or CUDA). ``int8``: every Linear as
fbgemm's dynamic int8 matmul (:mod:`adapterhub.backbone.int8`: 7-bit per-channel weights, 8-bit
activations quantized per batch; CPU only), applied to a loaded fp32 backbone."""
ENGINES = ("transformers", "native")
"""What computes the encoder: transformers' model, or :mod:`adapterhub.backbone.native`."""
DTYPES = ("fp32", "bf16", "fp16")
"""What the encoder may compute in; fp16 is for GPUs (CPUs emulate it slowly)."""
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
"""``/proc/cpuinfo`` flags of CPUs that compute bf16 natively; elsewhere bf16 is emulated and
slower than fp32."""


def mean_pool(last_hidden_state, attention_mask):
    """Average the token states over the attention mask (the e5 recipe); no normalisation."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden_state.dtype)
    summed = (last_hidden_state * mask).sum(dim=1)
    return summed / mask.sum(dim=1).clamp(min=1e-9)


@dataclass
class Backbone:
    """A loaded, frozen backbone and what identifies it."""

    name: str
    path: Path
    model: Any
    tokenizer: Any
    fingerprint: str
    config: dict
    quantization: str | None = None
    device: str = "cpu"
    meta: dict = field(default_factory=dict)
    dtype: str = "fp32"
    """What the encoder computes in (one of :data:`DTYPES`); outputs are read back as fp32."""
    engine: str = "transformers"
    """What computes it (one of :data:`ENGINES`)."""

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def num_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    mean_pool = staticmethod(mean_pool)

    def tokenize(self, texts: list[str], max_length: int = 512):
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        ).to(self.device)

    def embed(
        self,
        texts: list[str],
        prefix: str = DEFAULT_PREFIX,
        batch_size: int = 32,
        max_length: int = 512,
    ):
        """L2-normalised mean-pooled embeddings, shape [len(texts), hidden]."""
        import torch  # lazy: see the module docstring

        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenize(
                    [prefix + t for t in texts[start : start + batch_size]], max_length
                )
                hidden = self.model(**batch).last_hidden_state
                pooled = mean_pool(hidden.float(), batch["attention_mask"])
                rows.append(torch.nn.functional.normalize(pooled, dim=-1).cpu())
        if not rows:
            return torch.empty(0, self.hidden_size)
        return torch.cat(rows)

    def info(self) -> dict:
        """What ``adapterhub backbone info`` prints."""
        total = sum(p.numel() for p in self.model.parameters())
        embedding = self.model.get_input_embeddings().weight.numel()
        return {
            "name": self.name,
            "path": str(self.path),
            "architecture": (self.config.get("architectures") or [self.config.get("model_type")])[
                0
            ],
            "parameters": total,
            "embedding_parameters": embedding,
            "hidden_size": self.hidden_size,
            "layers": self.num_layers,
            "attention_heads": self.config.get("num_attention_heads"),
            "vocab_size": self.config.get("vocab_size"),
            "max_positions": self.config.get("max_position_embeddings"),
            "fingerprint": self.fingerprint,
            "quantization": self.quantization or "none",
            "dtype": self.dtype,
            "device": self.device,
            "engine": self.engine,
            **({"license": self.meta["license"]} if "license" in self.meta else {}),
        }


def resolve_path(name_or_path: str, *, provision: bool = True) -> tuple[str, Path]:
    """(display name, local folder) for an embedded name, a local folder or a provisioned name.

    A hub id is downloaded through ``huggingface_hub`` where a hub is reachable.
    """
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        return candidate.resolve().name, candidate.resolve()
    if embedded.is_embedded_name(name_or_path):
        chosen = embedded.variant_for(name_or_path)
        folder = settings.backbones_dir() / chosen.name
        if not embedded.is_complete(folder):
            if not provision:
                raise BackboneError(
                    f"backbone {chosen.name} is not provisioned; run `adapterhub backbone fetch`"
                )
            folder = embedded.provision(chosen.name)
        return chosen.name, folder
    provisioned = settings.backbones_dir() / name_or_path
    if name_or_path and "/" not in name_or_path and provisioned.is_dir():
        return name_or_path, provisioned
    if candidate.is_absolute() or name_or_path.startswith((".", "~")):
        raise BackboneError(f"backbone folder {name_or_path} does not exist")
    return name_or_path, _download_from_hub(name_or_path)


def _download_from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download  # lazy: see the module docstring

        folder = snapshot_download(
            repo_id,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt"],
        )
    except Exception as exc:  # the hub client raises many types: offline, 404, auth, network
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackboneError(
            f"cannot get backbone {repo_id!r} from the Hugging Face hub ({reason[:160]}); "
            "offline, download it on a connected machine and pass its local folder instead, "
            "e.g. --backbone /path/to/folder"
        ) from exc
    return Path(folder)


_PREFETCHED: dict[Path, Future] = {}
"""Tokenizers being loaded ahead of :func:`load_backbone` (:func:`prefetch_tokenizer`)."""


def prefetch_tokenizer(name_or_path: str) -> None:
    """Start loading the tokenizer of a backbone already on this machine in a thread, so that
    parsing its 17 MB ``tokenizer.json`` (~1 s in Rust, GIL released) overlaps what the caller
    imports next (``serve``: torch and FastAPI, ~2.5 s); :func:`load_backbone` takes it over.
    Names that would need a download or a provisioning step are left to :func:`load_backbone`."""
    candidate = Path(name_or_path).expanduser()
    if not candidate.is_dir() and not embedded.is_embedded_name(name_or_path):
        return
    try:
        folder = resolve_path(name_or_path, provision=False)[1]
    except BackboneError:
        return
    job: Future = Future()

    def load() -> None:
        try:
            job.set_result(_load_tokenizer(folder))
        except BaseException as exc:  # handed to load_backbone, which raises it there
            job.set_exception(exc)

    _PREFETCHED[folder] = job
    threading.Thread(target=load, name="adapterhub-tokenizer", daemon=True).start()


def _load_tokenizer(folder: Path):
    # lazy: see the module docstring
    from transformers import PreTrainedTokenizerFast

    tokenizer_file = folder / "tokenizer.json"
    if tokenizer_file.is_file():
        # PreTrainedTokenizerFast keeps tokenizer.json's exact behaviour; AutoTokenizer may rebuild
        # the tokenizer from its class and drop trailing spaces (see BACKBONE.md).
        special = {}
        special_file = folder / "special_tokens_map.json"
        if special_file.is_file():
            special = {
                k: v if isinstance(v, str) else v.get("content")
                for k, v in json.loads(special_file.read_text()).items()
                if k.endswith("_token")
            }
        return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file), **special)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _default_device() -> str:
    import torch  # lazy: see the module docstring

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_backbone(
    name_or_path: str = DEFAULT_BACKBONE,
    quantize: str | None = None,
    *,
    device: str | None = None,
    provision: bool = True,
    dtype: str = "fp32",
    engine: str = "transformers",
) -> Backbone:
    """Load the frozen backbone: an embedded name, a local folder, or a hub id.

    ``quantize="8bit"`` loads the Linear layers through bitsandbytes (CPU or CUDA);
    ``quantize="int8"`` and ``dtype="bf16"`` convert the loaded model (:func:`prepare_backbone`);
    ``dtype="auto"`` is :func:`auto_dtype` (fp32 when quantized). ``engine="native"`` (what the
    server runs) computes with :mod:`adapterhub.backbone.native` where it covers the
    architecture and 8-bit is not asked for; ``"transformers"`` is the model PEFT trains and
    ``eval`` wraps.
    """
    _check_precision(None if dtype == "auto" else dtype, quantize)
    if engine not in ENGINES:
        raise UsageError(f"unknown engine {engine!r}; use one of: {', '.join(ENGINES)}")
    name, folder = resolve_path(name_or_path, provision=provision)
    config = read_config(folder)
    device = device or _default_device()
    if dtype == "auto":
        dtype = "fp32" if quantize else auto_dtype(device)
    fingerprint = fingerprint_folder(folder, config)
    from adapterhub.backbone import native  # lazy (it imports torch): see the module docstring

    native_engine = engine == "native" and quantize != "8bit" and native.supports(config)
    # The tokenizer loads in a thread while the model does (or already is: prefetch_tokenizer):
    # parsing the 17 MB tokenizer.json (~0.9 s of CPU here) runs in Rust and lets the GIL go, so
    # on two cores it overlaps the model's imports and from_pretrained instead of following them.
    # Its classes are imported first, so this thread and the model's never import the same
    # transformers modules at once.
    from transformers import PreTrainedTokenizerFast  # noqa: F401  lazy: see the module docstring

    with ThreadPoolExecutor(1, thread_name_prefix="adapterhub-tokenizer") as pool:
        tokenizer_job = _PREFETCHED.pop(folder, None) or pool.submit(_load_tokenizer, folder)
        if native_engine:
            model = native.load_native(folder, config)
        else:
            model = _load_transformers(folder, quantize, device)
        tokenizer = tokenizer_job.result()
    if quantize != "8bit":  # bitsandbytes placed it (device_map)
        model.to(device)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    meta = embedded.read_manifest(folder) or {}
    log.debug("loaded backbone %s from %s (%s)", name, folder, fingerprint)
    at_load = quantize if quantize == "8bit" else None
    used = "native" if native_engine else "transformers"
    loaded = Backbone(
        name, folder, model, tokenizer, fingerprint, config, at_load, device, meta, engine=used
    )
    return prepare_backbone(loaded, dtype=dtype, quantize=quantize)


def _load_transformers(folder: Path, quantize: str | None, device: str) -> Any:
    """transformers' model of the checkpoint (the one PEFT wraps); 8-bit through bitsandbytes."""
    # lazy: see the module docstring
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {}
    if quantize == "8bit":
        from transformers import BitsAndBytesConfig

        # bitsandbytes casts fp32 activations to fp16 inside every 8-bit matmul and says so each call.
        warnings.filterwarnings("ignore", message="MatMul8bitLt")
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": device}
    try:
        try:
            return AutoModel.from_pretrained(str(folder), add_pooling_layer=False, **kwargs)
        except TypeError:  # architectures without a pooler option
            return AutoModel.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError) as exc:
        raise BackboneError(f"cannot load backbone from {folder}: {exc}") from exc


def _check_precision(dtype: str | None, quantize: str | None) -> None:
    if dtype is not None and dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; use one of: {', '.join(DTYPES)}")
    if quantize not in QUANTIZATIONS:
        raise UsageError(f"unknown quantization {quantize!r}; use one of: none, 8bit, int8")
    if quantize and dtype not in (None, "fp32"):
        raise UsageError(f"--quantize {quantize} keeps activations in fp32; drop --dtype {dtype}")


def torch_dtype(dtype: str) -> Any:
    """The torch dtype of one of :data:`DTYPES`."""
    import torch  # lazy: see the module docstring

    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (an ``avx512_bf16`` or ``amx_bf16`` flag)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: no way to tell, so no bf16 by default
            return False
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    return any(flag in flags.split() for flag in BF16_CPU_FLAGS)


def auto_dtype(device: str) -> str:
    """The serving dtype where none is asked for: bf16 where the hardware computes it natively
    (a CUDA GPU that supports it; a CPU with avx512_bf16 or amx_bf16), else fp32."""
    import torch  # lazy: see the module docstring

    if str(device).startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


def prepare_backbone(
    backbone: Backbone, *, dtype: str | None = None, quantize: str | None = None
) -> Backbone:
    """Convert a loaded backbone in place to ``dtype`` and/or ``quantize`` (``None``: leave it as
    it is); a no-op for what it already is. ``int8`` swaps each ``nn.Linear`` for an
    :class:`~adapterhub.backbone.int8.Int8Linear` (the adapter hooks wrap those just the same);
    ``8bit`` only at load."""
    _check_precision(dtype, quantize)
    if quantize and backbone.quantization not in (None, quantize):
        raise UsageError(
            f"the backbone is already quantized as {backbone.quantization}; load it again "
            f"for --quantize {quantize}"
        )
    if quantize == "8bit" and backbone.quantization != "8bit":
        raise UsageError("8-bit (bitsandbytes) is applied at load: load_backbone(quantize='8bit')")
    if dtype and dtype != backbone.dtype:
        if backbone.quantization:
            raise UsageError(
                f"a {backbone.quantization} backbone computes in fp32; drop --dtype {dtype}"
            )
        backbone.model.to(torch_dtype(dtype))
        backbone.dtype = dtype
    if quantize == "int8" and backbone.quantization is None:
        if backbone.dtype != "fp32" or not str(backbone.device).startswith("cpu"):
            raise UsageError("--quantize int8 runs on the CPU in fp32; drop --dtype / --device")
        from adapterhub.backbone.int8 import quantize_int8  # lazy (torch): see the docstring

        quantize_int8(backbone.model)
        backbone.quantization = "int8"
    return backbone


def list_backbones() -> list[dict]:
    """Backbones provisioned under ``$ADAPTERHUB_HOME/backbones`` (without loading them)."""
    rows = []
    for folder in embedded.embedded_folders():
        manifest = embedded.read_manifest(folder) or {}
        config = json.loads((folder / "config.json").read_text())
        rows.append(
            {
                "name": folder.name,
                "path": str(folder),
                "fingerprint": manifest.get("fingerprint", ""),
                "hidden_size": config.get("hidden_size"),
                "layers": config.get("num_hidden_layers"),
                "vocab_size": config.get("vocab_size"),
                "bytes": sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
            }
        )
    return rows
