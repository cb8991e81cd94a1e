"""Adapter methods: LoRA and IA3 through PEFT, and our own bottleneck adapter.

Every method has the same shape: a documented config (:class:`MethodConfig`), a way to add a
fresh trainable adapter to a backbone model (:func:`add_adapter`), to save it in the shared
format (``adapter_config.json`` + ``adapter_model.safetensors``, see docs/FORMAT.md) and to load
a saved folder back onto a backbone model (:func:`load_adapter`). LoRA/IA3 folders are exactly
what ``peft`` writes, so ``PeftModel.from_pretrained(backbone.model, folder)`` loads them.

Stacks (MAD-X): :func:`load_adapter` of a language adapter, then :func:`add_adapter` with
``on=`` that adapter, gives a model where the language adapter is frozen and active and only
the task adapter trains. LoRA deltas add; bottleneck adapters apply in order (language first).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from adapterhub.errors import UsageError
from adapterhub.methods import bottleneck

METHODS = ("lora", "ia3", "bottleneck")
PEFT_METHODS = ("lora", "ia3")
TASK_ADAPTER = "default"  # PEFT saves the "default" adapter at the folder's top level
LANGUAGE_ADAPTER = "language"
DEFAULT_TARGETS = ("query", "key", "value", "dense")
# IA3 scales keys, values and the input of the second feed-forward Linear (the IA3 paper).
IA3_TARGETS = r".*layer\.\d+\.(attention\.self\.(key|value)|output\.dense)$"
IA3_FEEDFORWARD = r".*layer\.\d+\.output\.dense$"


@dataclass
class MethodConfig:
    """How the adapter is shaped. Only the fields of the chosen method matter."""

    method: str = "lora"
    """lora, ia3 or bottleneck."""
    r: int = 8
    """LoRA rank."""
    alpha: int = 16
    """LoRA scaling numerator (the delta is scaled by alpha / r)."""
    dropout: float = 0.05
    """LoRA dropout on the adapter's input."""
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    """Module names LoRA adapts (BERT: query, key, value, dense)."""
    reduction_factor: int = 16
    """Bottleneck: hidden size / bottleneck width."""
    non_linearity: str = "relu"
    """Bottleneck: relu, gelu, tanh or silu."""

    def __post_init__(self) -> None:
        check_method(self.method)

    def describe(self) -> dict[str, Any]:
        """The fields that matter for this method (what the manifest records)."""
        data = asdict(self)
        keep = {
            "lora": ("method", "r", "alpha", "dropout", "target_modules"),
            "ia3": ("method",),
            "bottleneck": ("method", "reduction_factor", "non_linearity"),
        }[self.method]
        return {k: data[k] for k in keep}


def check_method(method: str) -> str:
    if method not in METHODS:
        raise UsageError(f"unknown method {method!r}; use one of: {', '.join(METHODS)}")
    return method


def peft_config(config: MethodConfig, base_name: str | None = None):
    """The PEFT config object for a LoRA or IA3 :class:`MethodConfig`."""
    from peft import IA3Config, LoraConfig

    if config.method == "lora":
        return LoraConfig(
            r=config.r,
            lora_alpha=config.alpha,
            lora_dropout=config.dropout,
            target_modules=list(config.target_modules),
            bias="none",
            base_model_name_or_path=base_name,
        )
    if config.method == "ia3":
        return IA3Config(
            target_modules=IA3_TARGETS,
            feedforward_modules=IA3_FEEDFORWARD,
            base_model_name_or_path=base_name,
        )
    raise UsageError(f"{config.method} is not a PEFT method")


class Adapted(nn.Module):
    """A backbone with adapters: call it like the backbone (``last_hidden_state``).

    ``encoder`` is the backbone model (a ``PeftModel`` when a PEFT adapter is on it);
    ``bottlenecks`` holds the attached bottleneck adapters in order (language, task).
    ``task_method`` names the method of the adapter that trains and is saved.
    """

    def __init__(self, encoder: nn.Module, task_method: str | None) -> None:
        super().__init__()
        self.encoder = encoder
        self.bottlenecks = nn.ModuleDict()
        self.task_method = task_method

    def forward(self, **inputs: Any):
        return self.encoder(**inputs)

    @property
    def is_peft(self) -> bool:
        from peft import PeftModel

        return isinstance(self.encoder, PeftModel)

    def base_model(self) -> nn.Module:
        """The plain backbone model underneath PEFT's wrappers."""
        return self.encoder.get_base_model() if self.is_peft else self.encoder

    def save(self, directory: str | Path, base_name: str | None = None) -> Path:
        """Save the task adapter (not a language adapter it sits on) in the shared format."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.task_method in PEFT_METHODS:
            # save_embedding_layers=False: the embeddings are frozen, and "auto" would look the
            # base model's config up on the hub (a network call) to decide.
            self.encoder.save_pretrained(
                str(directory),
                selected_adapters=[TASK_ADAPTER],
                safe_serialization=True,
                save_embedding_layers=False,
            )
            _strip_peft_readme(directory)
        elif self.task_method == "bottleneck":
            extra = {"base_model_name_or_path": base_name} if base_name else {}
            bottleneck.save(self.bottlenecks[TASK_ADAPTER], directory, **extra)
        else:
            raise UsageError("this model has no trainable adapter to save")
        return directory


def _strip_peft_readme(directory: Path) -> None:
    # PEFT writes a generic model card; ours is generated from the manifest at publish time.
    readme = directory / "README.md"
    if readme.is_file() and "peft" in readme.read_text(errors="replace")[:2000].lower():
        readme.unlink()


def read_method(directory: str | Path) -> str:
    """The method of a saved adapter folder: lora, ia3 or bottleneck."""
    config_file = Path(directory) / bottleneck.CONFIG_NAME
    try:
        data = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{directory} has no readable {bottleneck.CONFIG_NAME} ({exc})") from exc
    if data.get("adapter_method") == bottleneck.METHOD_NAME:
        return "bottleneck"
    peft_type = str(data.get("peft_type", "")).lower()
    if peft_type in PEFT_METHODS:
        return peft_type
    raise UsageError(
        f"{config_file}: unknown adapter type (peft_type={data.get('peft_type')!r}); "
        "adapterhub reads lora, ia3 and bottleneck adapters"
    )


def wrap(model: nn.Module, *, copy_model: bool = True) -> Adapted:
    """Start from a backbone model (deep-copied by default, so the shared backbone stays clean)."""
    return Adapted(copy.deepcopy(model) if copy_model else model, None)


def add_adapter(adapted: Adapted, config: MethodConfig, base_name: str | None = None) -> Adapted:
    """Add a fresh, trainable task adapter; everything else in ``adapted`` stays frozen."""
    from peft import get_peft_model

    for parameter in adapted.parameters():
        parameter.requires_grad_(False)
    if config.method in PEFT_METHODS:
        if adapted.is_peft:
            adapted.encoder.add_adapter(TASK_ADAPTER, peft_config(config, base_name))
            _activate_peft(adapted)
        else:
            adapted.encoder = get_peft_model(adapted.encoder, peft_config(config, base_name))
        if base_name:  # PEFT writes the local folder here; the backbone's name travels better
            adapted.encoder.peft_config[TASK_ADAPTER].base_model_name_or_path = base_name
        for name, parameter in adapted.encoder.named_parameters():
            parameter.requires_grad_(f".{TASK_ADAPTER}." in name or name.endswith(TASK_ADAPTER))
    else:
        fresh = bottleneck.BottleneckAdapter.for_backbone(
            adapted.encoder,
            reduction_factor=config.reduction_factor,
            non_linearity=config.non_linearity,
            base_model_name_or_path=base_name,
        )
        bottleneck.attach(adapted.encoder, fresh)
        adapted.bottlenecks[TASK_ADAPTER] = fresh
        fresh.requires_grad_(True)
    adapted.task_method = config.method
    return adapted


def _activate_peft(adapted: Adapted) -> None:
    """Make every loaded PEFT adapter active at once (a stack); PEFT sums their deltas."""
    names = list(adapted.encoder.peft_config)
    adapted.encoder.base_model.set_adapter(names if len(names) > 1 else names[0])


def load_adapter(
    adapted: Adapted, directory: str | Path, *, role: str = TASK_ADAPTER, trainable: bool = False
) -> Adapted:
    """Load a saved adapter folder onto ``adapted`` under ``role`` (task or language)."""
    from peft import PeftModel

    directory = Path(directory)
    method = read_method(directory)
    if method in PEFT_METHODS:
        if adapted.is_peft:
            adapted.encoder.load_adapter(str(directory), adapter_name=role, is_trainable=trainable)
            _activate_peft(adapted)
        else:
            adapted.encoder = PeftModel.from_pretrained(
                adapted.encoder, str(directory), adapter_name=role, is_trainable=trainable
            )
        for name, parameter in adapted.encoder.named_parameters():
            if f".{role}." in name:
                parameter.requires_grad_(trainable)
    else:
        adapted.bottlenecks[role] = bottleneck.apply(
            adapted.encoder, directory, trainable=trainable
        )
    if role == TASK_ADAPTER:
        adapted.task_method = method
    return adapted


def count_parameters(adapted: nn.Module, backbone_model: nn.Module | int) -> dict[str, Any]:
    """Trainable parameters and their share of the backbone's parameters.

    Pass the backbone's parameter count (an int) when PEFT has injected layers into the
    backbone model itself, so the adapter is not counted as backbone."""
    trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
    if isinstance(backbone_model, int):
        total = backbone_model
    else:
        total = sum(p.numel() for p in backbone_model.parameters())
    return {
        "trainable": trainable,
        "backbone": total,
        "share": trainable / total if total else 0.0,
    }


__all__ = [
    "METHODS",
    "Adapted",
    "MethodConfig",
    "add_adapter",
    "bottleneck",
    "check_method",
    "count_parameters",
    "load_adapter",
    "peft_config",
    "read_method",
    "wrap",
]
