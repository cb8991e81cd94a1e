"""Every adapter config field is checked at publish (and import, pull, load) by its method's one
schema, and heads are bounded: the reproductions of issue 13, items 1 to 3, refused with the
field named, and what serving supports still accepted."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import queue

import pytest
import torch
from registry_helpers import make_lora_dir
from safetensors.torch import load_file, save_file

from adapterhub import registry
from adapterhub.errors import IntegrityError
from adapterhub.methods import patterns
from adapterhub.methods.bottleneck import layer as bottleneck

CATASTROPHIC = "([a-z0-9.]|[a-z0-9.])*QQ"  # re takes hours on a 40-character module name


def _edit(folder, **changes):
    path = folder / "adapter_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))  # NaN and 1e39 written as JSON numbers


def _publish(folder, backbone, store_dir, aid="sentiment/de:1.0.0"):
    return registry.publish(folder, aid, backbone=backbone, store=store_dir)


def _child(fn, answers):
    try:
        fn()
        answers.put("returned")
    except Exception as exc:
        answers.put(f"{type(exc).__name__}: {exc}")


def _answer_within(seconds, fn):
    """Run ``fn`` in a forked child and return how it ended; a child still running after
    ``seconds`` (say, stuck in a regex that holds the GIL) is killed and the test fails."""
    answers = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_child, args=(fn, answers))
    child.start()
    child.join(seconds)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"still running after {seconds} s: the pattern was matched, not checked")
    try:
        return answers.get(timeout=5)
    except queue.Empty:
        pytest.fail(f"the child exited with {child.exitcode} and no answer")


def test_a_catastrophic_alpha_pattern_is_refused_at_publish_without_running_it(
    backbone, lora_dir, store_dir
):
    _edit(lora_dir, alpha_pattern={CATASTROPHIC: 8})
    answer = _answer_within(60, lambda: _publish(lora_dir, backbone, store_dir))
    assert answer.startswith("IntegrityError") and "alpha_pattern key" in answer, answer
    assert CATASTROPHIC in answer
    assert registry.LocalStore(store_dir).ids() == []


@pytest.mark.parametrize(
    "field, pattern",
    [
        ("rank_pattern", {"(query|q)+": 4}),
        ("alpha_pattern", {"(.*)*x": 8}),
        ("target_modules", ".*.*.*.*.*.*QQ"),
        ("target_modules", "(a|ab)(c|bcd)(d*)*$"),
        ("exclude_modules", "q{1,99}"),
        ("layers_pattern", "(?=layer)"),
    ],
)
def test_patterns_outside_the_bounded_subset_are_refused(
    backbone, lora_dir, store_dir, field, pattern
):
    changes = {field: pattern}
    if field == "layers_pattern":
        changes.update(layers_to_transform=[0], target_modules=["query", "value"])
    _edit(lora_dir, **changes)
    with pytest.raises(IntegrityError, match=field):
        _publish(lora_dir, backbone, store_dir)


def test_the_pattern_subset_keeps_what_peft_configs_use():
    accepted = [
        (r".*layer\.\d+\.(attention\.self\.(key|value)|output\.dense)$", patterns.FULL),
        (r".*decoder.*(SelfAttention|EncDecAttention).*(q|v)$", patterns.FULL),  # PEFT's docs
        ("^model.decoder.layers.0.encoder_attn.k_proj", patterns.KEY),  # PEFT's docs
        (r"encoder\.layer\.[0-5]\.attention\.self\.query", patterns.KEY),
        ("layer", patterns.LAYERS),
    ]
    for pattern, use in accepted:
        assert patterns.pattern_paths(pattern, use) <= patterns.BUDGET, pattern
    for pattern in [CATASTROPHIC, "(a|a)x", "a*?", ".?" * 8, "(a)?" * 5, "a{2}", r"\bq"]:
        with pytest.raises(ValueError):
            patterns.pattern_paths(pattern, patterns.FULL)
    assert patterns.pattern_paths(".*.*.*.*x", patterns.FULL) > patterns.BUDGET


NAN = float("nan")


@pytest.mark.parametrize(
    "field, value, why",
    [
        ("lora_alpha", "16", "a finite number"),  # a string is not a number
        ("lora_alpha", True, "a finite number"),  # nor is a bool
        ("lora_alpha", NAN, "a finite number"),
        ("lora_alpha", 1e39, "a finite number"),
        ("lora_alpha", -4, "a finite number"),
        ("r", 0, "an integer >= 1"),
        ("r", 4.0, "an integer >= 1"),
        ("alpha_pattern", ["query", 8], "an object"),
        ("alpha_pattern", {"query": math.inf}, "finite number"),
        ("rank_pattern", {"query": 2.5}, "integer >= 1"),
        ("lora_dropout", 1.0, r"\[0, 1\)"),
        ("target_modules", 5, "a pattern"),
        ("target_modules", [], "empty"),
        ("use_rslora", "yes", "true or false"),
        ("use_dora", True, "DoRA"),
        ("bias", "all", "biases are not served"),
        ("modules_to_save", ["classifier"], "registry import"),
        ("init_lora_weights", "pissa", "rewrite the base weights"),
        ("peft_type", "lora", "'LORA'"),
        ("a_future_switch", True, "not a field adapterhub knows"),
    ],
)
def test_lora_config_values_are_refused_at_publish_naming_the_field(
    backbone, lora_dir, store_dir, field, value, why
):
    _edit(lora_dir, **{field: value})
    with pytest.raises(IntegrityError, match=f"{field}.*{why}"):
        _publish(lora_dir, backbone, store_dir)
    assert registry.LocalStore(store_dir).ids() == []


def test_what_the_runtime_serves_still_publishes(backbone, lora_dir, store_dir, tmp_path):
    _edit(
        lora_dir,
        use_rslora=True,
        alpha_pattern={"value": 3},
        a_future_switch=None,  # a newer PEFT's field, off
        exclude_modules=None,
    )
    manifest = _publish(lora_dir, backbone, store_dir)
    assert manifest.method_config["alpha_pattern"] == {"value": 3}


def test_weights_must_agree_with_the_config(backbone, tmp_path, store_dir):
    folder = make_lora_dir(backbone, tmp_path / "a", r=4)
    _edit(folder, r=8)  # the tensors have rank 4: PEFT could not load them
    with pytest.raises(IntegrityError, match="rank 4 but r / rank_pattern give it 8"):
        _publish(folder, backbone, store_dir)
    _edit(folder, r=4, target_modules=["key"])  # PEFT would ignore the query/value tensors
    with pytest.raises(IntegrityError, match="target_modules .*does not select"):
        _publish(folder, backbone, store_dir)


def test_dora_and_trained_bias_tensors_are_refused_at_publish(backbone, tmp_path, store_dir):
    import copy

    import peft

    model = peft.get_peft_model(
        copy.deepcopy(backbone.model),
        peft.LoraConfig(r=4, target_modules=["query"], use_dora=True, init_lora_weights=False),
    )
    model.save_pretrained(tmp_path / "dora")
    with pytest.raises(IntegrityError, match="use_dora"):
        _publish(tmp_path / "dora", backbone, store_dir)
    folder = make_lora_dir(backbone, tmp_path / "bias")
    tensors = load_file(folder / "adapter_model.safetensors")
    tensors["base_model.model.encoder.layer.0.attention.self.query.bias"] = torch.zeros(
        backbone.hidden_size
    )
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    with pytest.raises(IntegrityError, match="trained bias"):
        _publish(folder, backbone, store_dir)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"non_linearity": "nope"}, "non_linearity must be one of 'relu', 'gelu'"),
        ({"reduction_factor": 0}, "reduction_factor must be an integer >= 1"),
        ({"hidden_size": "32"}, "hidden_size must be an integer"),
        ({"bottleneck_size": -1}, "bottleneck_size must be null or an integer"),
        ({"extra": 1}, "extra = 1 is not a field adapterhub knows"),
    ],
)
def test_bottleneck_config_values_are_refused_at_publish(
    backbone, tmp_path, store_dir, change, match
):
    adapter = bottleneck.BottleneckAdapter.for_backbone(backbone.model, reduction_factor=4)
    folder = bottleneck.save(adapter, tmp_path / "bn")
    _edit(folder, **change)
    with pytest.raises(IntegrityError, match=match):
        _publish(folder, backbone, store_dir, "lang/de:1.0.0")


def test_ia3_feedforward_modules_must_match_the_weights(backbone, tmp_path, store_dir):
    import copy

    import peft

    folder = tmp_path / "ia3"
    model = peft.get_peft_model(
        copy.deepcopy(backbone.model),
        peft.IA3Config(
            target_modules=["key", "output.dense"], feedforward_modules=["output.dense"]
        ),
    )
    model.save_pretrained(folder)
    _edit(folder, feedforward_modules=["dense"])  # PEFT refuses this config too
    with pytest.raises(IntegrityError, match="feedforward_modules .*not in target_modules"):
        _publish(folder, backbone, store_dir, "lang/de:1.0.0")
    _edit(folder, feedforward_modules=None)  # PEFT would guess them per model type
    with pytest.raises(IntegrityError, match="feedforward_modules is missing"):
        _publish(folder, backbone, store_dir, "lang/de:1.0.0")
    _edit(folder, feedforward_modules=["key"])  # the key vectors were saved as (out, 1)
    with pytest.raises(IntegrityError, match="feedforward_modules and the weights disagree"):
        _publish(folder, backbone, store_dir, "lang/de:1.0.0")


@pytest.mark.parametrize("name, value", [("weight", 3e38), ("bias", -1e5)])
def test_heads_whose_logits_could_overflow_are_refused(backbone, lora_dir, store_dir, name, value):
    head = load_file(lora_dir / "head.safetensors")
    head[name].view(-1)[0] = value  # finite, but logits over it are not
    save_file(
        head,
        str(lora_dir / "head.safetensors"),
        metadata={"labels": json.dumps(["negative", "positive"]), "task_type": "sequence"},
    )
    with pytest.raises(IntegrityError, match=f"head {name} holds a value of magnitude"):
        _publish(lora_dir, backbone, store_dir)


def test_an_entry_stored_before_the_schema_is_refused_at_load(backbone, lora_dir, store_dir):
    from adapterhub.runtime import Runtime

    _publish(lora_dir, backbone, store_dir)
    entry = registry.resolve("sentiment/de", store=store_dir, sources=[], backbone=backbone)
    # as an older adapterhub would have stored it: the bad config with a matching manifest
    _edit(entry, alpha_pattern={CATASTROPHIC: 8})
    manifest = json.loads((entry / "manifest.json").read_text())
    content = (entry / "adapter_config.json").read_bytes()
    manifest["files"]["adapter_config.json"] = {
        "sha256": hashlib.sha256(content).hexdigest(),
        "bytes": len(content),
    }
    (entry / "manifest.json").write_text(json.dumps(manifest))
    runtime = Runtime(backbone, registry=store_dir)
    answer = _answer_within(60, lambda: runtime.load("sentiment/de"))
    assert answer.startswith("IntegrityError") and "alpha_pattern key" in answer, answer
