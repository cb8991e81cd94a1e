"""The LoRA options the runtime serves beyond plain LoRA give PEFT's own numbers: rsLoRA, and
per-module ranks and alphas from rank_pattern / alpha_pattern keys, plain names and regexes."""

from __future__ import annotations

import copy

import pytest
import torch
from serving_helpers import SENTIMENT, reference_logits, reference_model, write_head

TEXTS = ["the film was very good", "der film ist nicht gut", "电影 非常 好"]


@pytest.mark.parametrize("rslora", [False, True])
def test_rank_and_alpha_patterns_serve_as_peft_computes_them(tiny_backbone, tmp_path, rslora):
    import peft

    from adapterhub.registry import publish
    from adapterhub.runtime import Runtime

    config = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["query", "key", "value", "dense"],
        rank_pattern={"query": 2, r"layer\.1\.attention\.self\.value": 6},
        alpha_pattern={"key": 3, r"layer\.0\..*dense": 20},
        use_rslora=rslora,
        init_lora_weights=False,
    )
    model = peft.get_peft_model(copy.deepcopy(tiny_backbone.model), config)
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    folder = tmp_path / "patterns"
    model.save_pretrained(str(folder))
    write_head(folder, tiny_backbone.hidden_size, SENTIMENT, "sequence", seed=6)
    ranks = {
        name: p.shape[0] for name, p in model.named_parameters() if "lora_A" in name
    }  # the patterns took effect: ranks 2, 4 and 6 are all there
    assert sorted(set(ranks.values())) == [2, 4, 6]
    publish(folder, "sentiment/de@team:1.0.0", backbone=tiny_backbone, store=tmp_path / "reg")

    runtime = Runtime(tiny_backbone, registry=tmp_path / "reg")
    expected = reference_logits(
        tiny_backbone, reference_model(tiny_backbone, [folder], ["lora"]), folder, TEXTS
    )
    with runtime.acquire("sentiment/de@team:1.0.0") as lease:
        outputs = runtime.forward([runtime.encode(text, lease) for text in TEXTS])
    for output, want in zip(outputs, expected):
        assert torch.allclose(output.logits, want, atol=1e-5, rtol=0), (output.logits, want)
