"""Helpers of the retrieval tests: real PEFT adapters on the tiny backbone and the plain-PEFT
reference the server's embeddings must equal."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch

RETRIEVAL = ["retrieval/multi@team:1.0.0", "retrieval/es@team:1.0.0"]
CLASSIFIERS = ["sentiment/de@team:1.0.0", "topic/en@team:1.0.0"]
LANGUAGE = "lang/de@team:1.0.0"
LABELS = {
    "sentiment/de@team:1.0.0": ["negative", "positive"],
    "topic/en@team:1.0.0": ["a", "b", "c"],
}


def make_lora(backbone, folder: Path, seed: int, targets=("query", "value")) -> Path:
    """A PEFT LoRA folder with random non-zero weights (a fresh LoRA has B = 0)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=list(targets), lora_dropout=0.0)
    model = get_peft_model(copy.deepcopy(backbone.model), config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.md").unlink(missing_ok=True)
    return folder


def write_head(folder: Path, hidden: int, labels: list[str], seed: int) -> None:
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    head = {
        "weight": torch.randn(len(labels), hidden, generator=generator),
        "bias": torch.randn(len(labels), generator=generator),
    }
    metadata = {"labels": json.dumps(labels), "task_type": "sequence"}
    save_file(head, str(folder / "head.safetensors"), metadata=metadata)


@dataclass
class Zoo:
    registry: Path
    folders: dict[str, Path]


def peft_embeddings(backbone, folder: Path | None, texts: list[str]) -> torch.Tensor:
    """Mean-pooled, L2-normalised embeddings from plain PEFT (or the plain backbone), one text
    at a time: no padding, no batching, nothing of adapterhub's runtime."""
    from peft import PeftModel

    model = copy.deepcopy(backbone.model)
    if folder is not None:
        model = PeftModel.from_pretrained(model, str(folder))
    model.eval()
    out = []
    for text in texts:
        encoded = backbone.tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        out.append(torch.nn.functional.normalize(pooled, dim=-1)[0])
    return torch.stack(out)
