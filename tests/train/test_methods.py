"""Adapter methods against their references: PEFT's own loader, and the bottleneck math of
docs/FORMAT.md written out by hand."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open

from adapterhub.errors import IntegrityError, RecipeError, UsageError
from adapterhub.methods import METHOD_NAMES, get_method, method_of
from adapterhub.methods.adapted import (
    LANGUAGE_ADAPTER,
    TASK_ADAPTER,
    add_adapter,
    count_parameters,
    load_adapter,
    wrap,
)
from adapterhub.methods.bottleneck import layer as bottleneck
from adapterhub.methods.bottleneck.config import BottleneckConfig
from adapterhub.methods.lora import LoraConfig
from adapterhub.recipes import Recipe

TEXTS = ["the movie was good", "das buch ist sehr schlecht", "好 电影"]


def randomise(adapted) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in adapted.parameters():
            if parameter.requires_grad:
                parameter.normal_(0, 0.2)


@pytest.fixture
def batch(tiny_backbone):
    return tiny_backbone.tokenize(TEXTS)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_fresh_adapter_is_the_identity_and_only_it_trains(method, tiny_backbone, batch):
    reference = tiny_backbone.model(**batch).last_hidden_state
    adapted = add_adapter(wrap(tiny_backbone.model), get_method(method).config_class())
    adapted.eval()
    assert torch.allclose(adapted(**batch).last_hidden_state, reference, atol=1e-6)
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert trainable and all(
        ("lora_" in n or "ia3_" in n or n.startswith("bottlenecks.")) for n in trainable
    )
    counts = count_parameters(adapted, tiny_backbone.model)
    assert counts["trainable"] == sum(
        p.numel() for n, p in adapted.named_parameters() if n in trainable
    )


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_save_then_load_gives_identical_outputs(method, tiny_backbone, batch, tmp_path):
    adapted = add_adapter(wrap(tiny_backbone.model), get_method(method).config_class(), "tiny")
    randomise(adapted)
    adapted.eval()
    expected = adapted(**batch).last_hidden_state
    assert not torch.allclose(expected, tiny_backbone.model(**batch).last_hidden_state)
    adapted.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert method_of(json.loads((tmp_path / "adapter_config.json").read_text())).name == method
    loaded = load_adapter(wrap(tiny_backbone.model), tmp_path)
    loaded.eval()
    assert torch.equal(loaded(**batch).last_hidden_state, expected)
    # loading never changed the shared backbone
    assert not any(p.requires_grad for p in tiny_backbone.model.parameters())


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_plain_peft_loads_the_pair(method, tiny_backbone, batch, tmp_path):
    from peft import PeftModel

    adapted = add_adapter(wrap(tiny_backbone.model), get_method(method).config_class(), "tiny")
    randomise(adapted)
    adapted.eval()
    adapted.save(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "tiny"  # a name, not this machine's folder
    plain = PeftModel.from_pretrained(copy.deepcopy(tiny_backbone.model), str(tmp_path))
    plain.eval()
    assert torch.equal(plain(**batch).last_hidden_state, adapted(**batch).last_hidden_state)


def test_bottleneck_matches_the_format_by_hand(tiny_backbone, batch, tmp_path):
    adapted = add_adapter(
        wrap(tiny_backbone.model),
        BottleneckConfig(reduction_factor=4, non_linearity="gelu"),
        "tiny",
    )
    randomise(adapted)
    adapted.save(tmp_path, base_name="tiny")
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    hidden, layers = tiny_backbone.hidden_size, tiny_backbone.num_layers
    assert config == {
        "adapter_method": "bottleneck",
        "hidden_size": hidden,
        "num_layers": layers,
        "reduction_factor": 4,
        "bottleneck_size": hidden // 4,
        "non_linearity": "gelu",
        "base_model_name_or_path": "tiny",
    }
    with safe_open(str(tmp_path / "adapter_model.safetensors"), framework="pt") as handle:
        weights = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    b = hidden // 4
    for i in range(layers):
        assert weights[f"layers.{i}.down.weight"].shape == (b, hidden)
        assert weights[f"layers.{i}.down.bias"].shape == (b,)
        assert weights[f"layers.{i}.up.weight"].shape == (hidden, b)
        assert weights[f"layers.{i}.up.bias"].shape == (hidden,)
    assert len(weights) == 4 * layers

    # the reference: run the plain backbone's layers by hand, inserting the adapter by the spec
    model = tiny_backbone.model
    gelu = torch.nn.GELU()
    with torch.no_grad():
        hidden_states = model.embeddings(input_ids=batch["input_ids"])
        padding = 1.0 - batch["attention_mask"][:, None, None, :].float()
        mask = padding * torch.finfo(torch.float32).min  # the additive 4-D mask BERT applies
        for i, layer in enumerate(model.encoder.layer):
            attention = layer.attention(hidden_states, mask)[0]
            h = layer.output.dense(layer.intermediate(attention))
            down = h @ weights[f"layers.{i}.down.weight"].T + weights[f"layers.{i}.down.bias"]
            h = h + gelu(down) @ weights[f"layers.{i}.up.weight"].T + weights[f"layers.{i}.up.bias"]
            hidden_states = layer.output.LayerNorm(layer.output.dropout(h) + attention)
        loaded = load_adapter(wrap(model), tmp_path)
        loaded.eval()
        got = loaded(**batch).last_hidden_state
    keep = batch["attention_mask"].bool()
    assert torch.allclose(got[keep], hidden_states[keep], atol=1e-5)


def test_bottleneck_detach_restores_the_backbone(tiny_backbone, batch):
    model = copy.deepcopy(tiny_backbone.model)
    adapter = bottleneck.BottleneckAdapter.for_backbone(model)
    randomise(adapter)
    reference = model(**batch).last_hidden_state
    bottleneck.attach(model, adapter)
    assert not torch.allclose(model(**batch).last_hidden_state, reference)
    bottleneck.detach(adapter)
    assert torch.equal(model(**batch).last_hidden_state, reference)


def test_bottleneck_refuses_another_backbone(tiny_backbone, tmp_path):
    adapter = bottleneck.BottleneckAdapter(BottleneckConfig(hidden_size=48, num_layers=2))
    bottleneck.save(adapter, tmp_path)
    with pytest.raises(UsageError, match="hidden size 48"):
        bottleneck.apply(copy.deepcopy(tiny_backbone.model), tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    with pytest.raises(IntegrityError, match="unknown adapter type"):
        load_adapter(wrap(tiny_backbone.model), tmp_path)
    with pytest.raises(UsageError, match="unknown method 'prefix'; use one of: lora, ia3"):
        get_method("prefix")


def test_stacked_lora_adapters_add_and_only_the_task_trains(tiny_backbone, batch, tmp_path):
    language = add_adapter(wrap(tiny_backbone.model), LoraConfig(r=4))
    randomise(language)
    language.save(tmp_path / "lang")
    stacked = load_adapter(wrap(tiny_backbone.model), tmp_path / "lang", role=LANGUAGE_ADAPTER)
    stacked.eval()
    with_language = stacked(**batch).last_hidden_state
    add_adapter(stacked, LoraConfig(r=4))
    trainable = [n for n, p in stacked.named_parameters() if p.requires_grad]
    assert trainable and all(f".{TASK_ADAPTER}." in n for n in trainable)
    stacked.eval()
    assert torch.allclose(stacked(**batch).last_hidden_state, with_language, atol=1e-6)
    randomise(stacked)
    stacked.save(tmp_path / "task")
    saved = safe_open(str(tmp_path / "task" / "adapter_model.safetensors"), framework="pt")
    assert all("language" not in k for k in saved.keys())  # noqa: SIM118


def test_a_recipe_builds_the_methods_config_through_its_schema():
    recipe = Recipe(lora_r=4, lora_alpha=8, target_modules=["query"])
    assert get_method("lora").config_from_recipe(recipe) == LoraConfig(
        r=4, lora_alpha=8, lora_dropout=recipe.lora_dropout, target_modules=["query"]
    )
    assert get_method("bottleneck").config_from_recipe(
        Recipe(method="bottleneck", reduction_factor=4, non_linearity="gelu")
    ) == BottleneckConfig(reduction_factor=4, non_linearity="gelu")
    with pytest.raises(RecipeError, match="non_linearity must be"):
        get_method("bottleneck").config_from_recipe(
            Recipe(method="bottleneck", non_linearity="nope")
        )
    with pytest.raises(RecipeError, match=r"lora_dropout must be a number in \[0, 1\)"):
        get_method("lora").config_from_recipe(Recipe(lora_dropout=1.5))


@pytest.mark.parametrize(
    "change, field",
    [
        ({"alpha_pattern": {"([a-z0-9.]|[a-z0-9.])*QQ": 8}}, "alpha_pattern key"),
        ({"use_dora": True}, "use_dora"),
        ({"lora_alpha": "16"}, "lora_alpha"),
    ],
)
def test_a_training_time_load_runs_the_publish_verification(tiny_backbone, tmp_path, change, field):
    # PEFT would run the catastrophic pattern with re (holding the GIL for hours) or load
    # what the runtime cannot serve; the method's one check refuses first
    add_adapter(wrap(tiny_backbone.model), LoraConfig(r=4), "tiny").save(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(IntegrityError, match=field):
        load_adapter(wrap(tiny_backbone.model), tmp_path)


def test_every_method_serves_through_hook_math_the_runtime_has():
    from dataclasses import fields

    from adapterhub.methods import METHODS
    from adapterhub.runtime.batched import ModulePlan

    kinds = {f.name for f in fields(ModulePlan)}
    for method in METHODS.values():
        assert method.kinds and set(method.kinds) <= kinds, method.name


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_adding_and_loading_adapters_prints_no_library_warnings(method, tiny_backbone, tmp_path):
    """What PEFT and transformers warn about on every train and eval (a local base model's
    path, a deprecated property PEFT reads, a second adapter in a stack) is what adapterhub
    does on purpose: the user's terminal must not show it."""
    import warnings

    config = get_method(method).config_class()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        adapted = add_adapter(wrap(tiny_backbone.model), config, str(tmp_path / "folder"))
        adapted.save(tmp_path)
        loaded = load_adapter(wrap(tiny_backbone.model), tmp_path)
        load_adapter(loaded, tmp_path, role=LANGUAGE_ADAPTER)  # a stack: a second adapter
    noisy = [str(w.message) for w in seen if "peft" in w.filename or "transformers" in w.filename]
    assert not noisy, noisy
