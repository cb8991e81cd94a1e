"""Importing plain PEFT folders (``PeftModel.save_pretrained`` output) into adapterhub's format.

PEFT saves adapter keys relative to the model it wrapped, e.g.
``base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight`` for a
``BertForSequenceClassification``, and the classifier (``modules_to_save``) in the same file. An
entry must load with ``PeftModel.from_pretrained(backbone.model, entry)`` on the bare encoder, so
the import strips the wrapper prefix (``bert.``), moves a one-layer classifier into
``head.safetensors`` and drops ``modules_to_save``/``task_type`` from the config.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from adapterhub.errors import IntegrityError, UsageError
from adapterhub.methods import method_of
from adapterhub.methods.peft import PEFT_PREFIX as _PREFIX
from adapterhub.registry.manifest import ADAPTER_CONFIG, ADAPTER_WEIGHTS, HEAD
from adapterhub.registry.verify import load_safetensors, read_json_file, refuse_pickles

_ADAPTER_MARKERS = (".lora_", ".ia3_l")


def _is_adapter_key(rest: str) -> bool:
    return any(marker in rest for marker in _ADAPTER_MARKERS)


def _module_path(rest: str) -> str:
    for marker in _ADAPTER_MARKERS:
        if marker in rest:
            return rest.split(marker, 1)[0]
    return rest.rsplit(".", 1)[0]


def _find_strip(model: Any, module_path: str) -> str:
    """The leading components to drop so ``module_path`` names a module of ``model``."""
    parts = module_path.split(".")
    for skip in range(len(parts)):
        try:
            model.get_submodule(".".join(parts[skip:]))
        except AttributeError:
            continue
        return "".join(p + "." for p in parts[:skip])
    raise IntegrityError(
        f"the PEFT adapter targets {module_path!r}, which the backbone does not have; "
        "was it trained on a different model?"
    )


def convert_peft_dir(
    src: str | Path,
    dst: str | Path,
    backbone: Any,
    *,
    labels: list[str] | None = None,
    task_type: str | None = None,
) -> Path:
    """Write an adapterhub adapter folder ``dst`` from the PEFT folder ``src``."""
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    refuse_pickles(src)
    config = read_json_file(src / ADAPTER_CONFIG, "the adapter config")
    method = method_of(config, str(src / ADAPTER_CONFIG)).name
    if method == "bottleneck":
        for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS, HEAD):
            if (src / name).is_file():
                shutil.copyfile(src / name, dst / name)
        return dst
    weights, _ = load_safetensors(src / ADAPTER_WEIGHTS)
    saved_modules = [m.split(".")[-1] for m in (config.get("modules_to_save") or [])]
    adapter: dict[str, Any] = {}
    head_tensors: dict[str, dict[str, Any]] = {}
    for key, tensor in weights.items():
        if not key.startswith(_PREFIX):
            raise IntegrityError(f"{src}: {key!r} is not a PEFT key (no {_PREFIX!r} prefix)")
        rest = key[len(_PREFIX) :].replace(".modules_to_save.default.", ".")
        if not _is_adapter_key(rest) and set(rest.split(".")[:-1]) & set(saved_modules):
            module, _, leaf = rest.rpartition(".")
            head_tensors.setdefault(module, {})[leaf] = tensor
        else:
            adapter[rest] = tensor
    adapter_keys = [k for k in adapter if _is_adapter_key(k)]
    if not adapter_keys:
        raise IntegrityError(f"{src}: no {method} weights in {ADAPTER_WEIGHTS}")
    strip = _find_strip(backbone.model, _module_path(adapter_keys[0]))
    renamed = {}
    for rest, tensor in adapter.items():
        if not rest.startswith(strip):
            raise IntegrityError(f"{src}: {rest!r} lies outside the encoder ({strip!r})")
        renamed[_PREFIX + rest[len(strip) :]] = tensor.contiguous()
    save_file(renamed, str(dst / ADAPTER_WEIGHTS), metadata={"format": "pt"})

    peft_task = str(config.get("task_type") or "")
    head_metadata: dict[str, str] = {}
    head: dict[str, Any] | None = None
    if (src / HEAD).is_file():
        if head_tensors:
            raise UsageError(f"{src} has both {HEAD} and modules_to_save weights; keep one")
        head, head_metadata = load_safetensors(src / HEAD)
    elif head_tensors:
        if len(head_tensors) != 1 or set(next(iter(head_tensors.values()))) != {"weight", "bias"}:
            raise UsageError(
                f"{src}: the saved head has layers {sorted(head_tensors)}; adapterhub heads are "
                "one linear layer (weight and bias) over the mean-pooled encoder output"
            )
        head = {k: v.contiguous() for k, v in next(iter(head_tensors.values())).items()}
    if head is not None:
        n = int(head["weight"].shape[0])
        if labels is None and "labels" in head_metadata:
            labels = json.loads(head_metadata["labels"])
        labels = list(labels) if labels is not None else [f"LABEL_{i}" for i in range(n)]
        if len(labels) != n:
            raise UsageError(f"{len(labels)} labels given but the head has {n} outputs")
        kind = task_type or head_metadata.get("task_type")
        kind = kind or ("token" if peft_task == "TOKEN_CLS" else "sequence")
        save_file(
            head,
            str(dst / HEAD),
            metadata={"labels": json.dumps(labels), "task_type": kind},
        )
    config = dict(config)
    config["modules_to_save"] = None
    config["task_type"] = None
    config["inference_mode"] = True
    config["base_model_name_or_path"] = getattr(backbone, "name", None)
    (dst / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return dst
