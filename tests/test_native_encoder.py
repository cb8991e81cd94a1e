"""The serving encoder (adapterhub.backbone.native) computes what transformers' model computes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from adapterhub.backbone import load_backbone
from adapterhub.backbone.native import load_native, supports
from adapterhub.errors import BackboneError

TEXTS = [
    "Das Buch war leider eine Enttäuschung.",
    "ok",
    "This one is longer: it goes on about the plot, the pacing and the ending, all of it fine.",
    "电影很好看",
    "",
]


def _padded(tokenizer, texts):
    rows = [tokenizer(t)["input_ids"] for t in texts]
    length = max(map(len, rows))
    ids = torch.full((len(rows), length), tokenizer.pad_token_id)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def _hidden(model, ids, mask):
    with torch.inference_mode():
        return model(input_ids=ids, attention_mask=mask).last_hidden_state


def _assert_same_real_tokens(reference, native, tokenizer, texts=TEXTS):
    ids, mask = _padded(tokenizer, texts)
    expected, got = _hidden(reference, ids, mask), _hidden(native, ids, mask)
    real = mask.bool()
    assert torch.allclose(got[real], expected[real], atol=1e-5, rtol=0)
    one = _hidden(native, ids[:1, : int(mask[0].sum())], mask[:1, : int(mask[0].sum())])
    assert torch.allclose(one[0], expected[0, : int(mask[0].sum())], atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type", ["bert", "xlm-roberta"])
def test_random_checkpoints_match_transformers_on_padded_batches(
    tmp_path, tiny_backbone, model_type
):
    from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

    config_class, model_class = {
        "bert": (BertConfig, BertModel),
        "xlm-roberta": (XLMRobertaConfig, XLMRobertaModel),
    }[model_type]
    config = config_class(
        vocab_size=tiny_backbone.config["vocab_size"],
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=96,
        max_position_embeddings=160,
        type_vocab_size=2,
        pad_token_id=1,
    )
    torch.manual_seed(3)
    reference = model_class(config, add_pooling_layer=True).eval()
    reference.save_pretrained(str(tmp_path), safe_serialization=True)  # pooler kept on disk
    native = load_native(tmp_path)
    assert native.config.model_type == model_type
    _assert_same_real_tokens(reference, native, tiny_backbone.tokenizer)


def test_same_module_names_so_hooks_and_int8_see_the_same_layers(tiny_backbone_path):
    reference = load_backbone(str(tiny_backbone_path))
    served = load_backbone(str(tiny_backbone_path), engine="native")
    assert (reference.engine, served.engine) == ("transformers", "native")

    def linears(model):
        return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]

    assert linears(served.model) == linears(reference.model)
    assert served.info()["parameters"] == reference.info()["parameters"]
    quantized = load_backbone(str(tiny_backbone_path), engine="native", quantize="int8")
    kinds = {type(m).__name__ for n, m in quantized.model.named_modules() if n.endswith("query")}
    assert kinds == {"Int8Linear"}


def test_unsupported_architecture_falls_back_to_transformers(tmp_path, tiny_backbone_path):
    import shutil

    folder = tmp_path / "relative"
    shutil.copytree(tiny_backbone_path, folder)
    config = json.loads((folder / "config.json").read_text())
    assert supports(config)
    config["position_embedding_type"] = "relative_key"
    assert not supports(config)
    (folder / "config.json").write_text(json.dumps(config))
    assert load_backbone(str(folder), engine="native").engine == "transformers"


def test_a_missing_weight_is_one_clear_error(tmp_path, tiny_backbone_path):
    import shutil

    folder = tmp_path / "cut"
    shutil.copytree(tiny_backbone_path, folder)
    weights = load_file(str(folder / "model.safetensors"))
    dropped = next(name for name in weights if "layer.1.output.dense.weight" in name)
    del weights[dropped]
    save_file(weights, str(folder / "model.safetensors"))
    with pytest.raises(BackboneError, match="Missing key"):
        load_native(folder)


def test_unknown_engine_is_refused(tiny_backbone_path):
    from adapterhub.errors import UsageError

    with pytest.raises(UsageError, match="unknown engine"):
        load_backbone(str(tiny_backbone_path), engine="onnx")


@pytest.mark.real
def test_real_backbone_matches_transformers(real_backbone, real_backbone_path):
    native = load_native(real_backbone_path)
    texts = TEXTS + ["Ce n'est pas mauvais du tout, au contraire.", "Это было ужасно скучно."]
    _assert_same_real_tokens(real_backbone.model, native, real_backbone.tokenizer, texts)
