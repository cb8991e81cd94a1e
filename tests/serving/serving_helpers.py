"""Helpers of the serving tests. Real adapters: PEFT LoRA/IA3 made with ``get_peft_model`` and the project's
bottleneck module, every weight random and non-zero, saved in the shared format, published into
a real registry on disk."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch


def write_head(folder: Path, hidden: int, labels: list[str], task_type: str, seed: int) -> None:
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(seed)
    head = {
        "weight": torch.randn(len(labels), hidden, generator=generator),
        "bias": torch.randn(len(labels), generator=generator),
    }
    save_file(
        head,
        str(folder / "head.safetensors"),
        metadata={"labels": json.dumps(labels), "task_type": task_type},
    )


def make_peft_adapter(backbone, folder: Path, method: str, seed: int, **options) -> Path:
    """Save a PEFT adapter with random non-zero weights (a fresh LoRA has B = 0)."""
    from peft import IA3Config, LoraConfig, get_peft_model

    from adapterhub.methods.ia3.config import IA3_FEEDFORWARD, IA3_TARGETS

    if method == "lora":
        config = LoraConfig(
            r=options.get("r", 4),
            lora_alpha=options.get("alpha", 8),
            target_modules=options.get("targets", ["query", "value"]),
            use_rslora=options.get("rslora", False),
            lora_dropout=0.1,
        )
    else:
        config = IA3Config(target_modules=IA3_TARGETS, feedforward_modules=IA3_FEEDFORWARD)
    model = get_peft_model(copy.deepcopy(backbone.model), config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
            elif "ia3_l" in name:
                parameter.copy_(1 + torch.randn(parameter.shape, generator=generator) * 0.3)
    model.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.md").unlink(missing_ok=True)
    return folder


def make_bottleneck_adapter(backbone, folder: Path, seed: int, **options) -> Path:
    from adapterhub.methods.bottleneck import layer as bottleneck

    adapter = bottleneck.BottleneckAdapter.for_backbone(
        backbone.model,
        reduction_factor=options.get("reduction_factor", 4),
        non_linearity=options.get("non_linearity", "relu"),
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in adapter.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    bottleneck.save(adapter, folder)
    return folder


def make_adapter(
    backbone, folder: Path, method: str, seed: int, labels=None, task_type="sequence", **options
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if method == "bottleneck":
        make_bottleneck_adapter(backbone, folder, seed, **options)
    else:
        make_peft_adapter(backbone, folder, method, seed, **options)
    if labels:
        write_head(folder, backbone.hidden_size, labels, task_type, seed + 1000)
    return folder


@dataclass
class Zoo:
    """A registry of published adapters and the folders they came from."""

    registry: Path
    folders: dict[str, Path]
    methods: dict[str, str]
    foreign: str  # an adapter published for another backbone


SENTIMENT = ["negative", "positive"]
TOPICS = ["books", "films", "food"]
UPOS = ["NOUN", "VERB", "ADJ", "DET", "X"]

# id -> (method, options, labels, task_type)
ZOO = {
    "sentiment/de@team:1.0.0": ("lora", {"r": 4}, SENTIMENT, "sequence"),
    "sentiment/de@team:1.1.0": (
        "lora",
        {"r": 8, "alpha": 4, "targets": ["query", "key", "value", "dense"]},
        SENTIMENT,
        "sequence",
    ),
    "sentiment/fr@team:1.0.0": ("lora", {"r": 4, "rslora": True}, SENTIMENT, "sequence"),
    "topic/en@team:1.0.0": ("lora", {"r": 2, "targets": ["dense"]}, TOPICS, "sequence"),
    "topic/de@team:1.0.0": ("ia3", {}, TOPICS, "sequence"),
    "sentiment/es@team:1.0.0": ("ia3", {}, SENTIMENT, "sequence"),
    "sentiment/nl@team:1.0.0": ("bottleneck", {"reduction_factor": 4}, SENTIMENT, "sequence"),
    "topic/fr@team:1.0.0": (
        "bottleneck",
        {"reduction_factor": 8, "non_linearity": "gelu"},
        TOPICS,
        "sequence",
    ),
    "pos/de@team:1.0.0": ("lora", {"r": 4}, UPOS, "token"),
    "lang/de@team:1.0.0": ("lora", {"r": 4, "targets": ["query", "value", "key"]}, None, None),
    "lang/nl@team:1.0.0": ("bottleneck", {"reduction_factor": 4}, None, None),
}
PREFIXES = {"sentiment/fr@team:1.0.0": "query: "}
"""Adapters published with a recipe prefix (the runtime must prepend it, as training did)."""
BULK = [f"topic/x{n}@bulk:1.0.0" for n in range(12)]
for _bulk in BULK:
    ZOO[_bulk] = ("lora", {"r": 4}, TOPICS, "sequence")
SPECS = [[a] for a in BULK] + [
    ["sentiment/de@team:1.0.0"],
    ["sentiment/fr@team:1.0.0"],
    ["topic/de@team:1.0.0"],
    ["sentiment/nl@team:1.0.0"],
    ["lang/de@team:1.0.0", "sentiment/de@team:1.0.0"],
    ["lang/nl@team:1.0.0", "sentiment/nl@team:1.0.0"],
]
"""What the concurrency tests mix: every bulk adapter, the team's task adapters and two stacks."""


async def post_retrying(client, url: str, body: dict, *, retry=frozenset({429}), seen=None):
    """POST ``body`` as a client does: a 429 (the pool's backpressure: every resident adapter is
    held, and it must not overshoot ``--max-resident``) and any other status in ``retry`` is
    sent again after its Retry-After (a quarter of it, at most 1 s, to keep tests short); each
    retried response goes into ``seen``. Returns the final response."""
    for _ in range(60):
        response = await client.post(url, json=body)
        if response.status_code not in retry:
            return response
        if seen is not None:
            seen.append(response)
        await asyncio.sleep(min(float(response.headers.get("Retry-After", "1")) / 4, 1.0))
    return response


def reference_model(backbone, folders: list[Path], methods: list[str]):
    """The single-adapter (or stacked) reference: plain PEFT, or the training engineer's
    bottleneck module, on a fresh copy of the backbone."""
    from peft import PeftModel

    from adapterhub.methods.bottleneck import layer as bottleneck

    model = copy.deepcopy(backbone.model)
    peft_names = []
    for index, (folder, method) in enumerate(zip(folders, methods)):
        if method == "bottleneck":
            bottleneck.apply(model, folder)
            continue
        name = f"a{index}"
        if not peft_names:
            model = PeftModel.from_pretrained(model, str(folder), adapter_name=name)
        else:
            model.load_adapter(str(folder), adapter_name=name)
        peft_names.append(name)
    if len(peft_names) > 1:
        model.base_model.set_adapter(peft_names)
    model.eval()
    return model


def reference_logits(backbone, model, folder_with_head: Path | None, texts, prefix="", token=False):
    """Last hidden state of each text alone, and the head's logits as FORMAT.md defines them."""
    from safetensors.torch import load_file

    head = load_file(str(folder_with_head / "head.safetensors")) if folder_with_head else None
    results = []
    for text in texts:
        if token:
            words = text.split()
            enc = backbone.tokenizer(words, is_split_into_words=True, return_tensors="pt")
        else:
            enc = backbone.tokenizer(prefix + text, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            ).last_hidden_state
        if head is None:
            results.append(backbone.mean_pool(hidden, enc["attention_mask"])[0])
            continue
        if token:
            seen, first = set(), []
            for position, word in enumerate(enc.word_ids()):
                if word is not None and word not in seen:
                    seen.add(word)
                    first.append(position)
            results.append(hidden[0, first] @ head["weight"].T + head["bias"])
        else:
            pooled = backbone.mean_pool(hidden, enc["attention_mask"])[0]
            results.append(pooled @ head["weight"].T + head["bias"])
    return results
