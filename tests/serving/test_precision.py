"""Lower precision in serving: bf16 (backbone, banks and hooks; heads in fp32) and torch's dynamic
int8 Linear layers with the adapter hooks on the quantized modules, against fp32 answers."""

from __future__ import annotations

import pytest
import torch
from serving_helpers import PREFIXES, reference_logits, reference_model

from adapterhub.backbone.load import cpu_has_native_bf16, load_backbone, prepare_backbone
from adapterhub.config import RuntimeConfig
from adapterhub.errors import UsageError

TEXTS = ["der film ist nicht gut", "le livre est très bon et un peu long", "i love this book"]
MIXED = [
    "sentiment/de@team:1.1.0",  # LoRA on every Linear
    "topic/de@team:1.0.0",  # IA3
    "sentiment/nl@team:1.0.0",  # bottleneck
]
EFFECT = {
    "sentiment/de@team:1.1.0": 0.5,
    "topic/de@team:1.0.0": 3e-3,
    "sentiment/nl@team:1.0.0": 0.2,
}
"""Least change each adapter makes to the tiny backbone's embeddings (fp32: ~1.5, ~0.009,
~0.57): in low precision it must still make it, so the hooks did act on the converted model."""


def test_native_bf16_is_read_from_the_cpu_flags():
    epyc = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    xeon = "flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_int8 amx_tile\n"
    assert not cpu_has_native_bf16(epyc)
    assert cpu_has_native_bf16(xeon)
    assert cpu_has_native_bf16("flags : avx512f amx_bf16\n")
    assert not cpu_has_native_bf16("flags : avx512f avx512_vnni\n")


def test_precision_options_are_checked_before_anything_loads():
    assert RuntimeConfig().dtype is None and RuntimeConfig().quantize is None
    assert RuntimeConfig(dtype="fp16").dtype == "fp16"
    with pytest.raises(UsageError, match="fp32, bf16 or fp16"):
        RuntimeConfig(dtype="fp64")
    with pytest.raises(UsageError, match="8bit or int8"):
        RuntimeConfig(quantize="int4")
    with pytest.raises(UsageError, match="drop --dtype bf16"):
        RuntimeConfig(dtype="bf16", quantize="int8")


def _answers(runtime, specs):
    rows, leases = [], []
    for spec in specs:
        lease = runtime.acquire(spec)
        leases.append(lease)
        rows += [runtime.encode(t, lease) for t in TEXTS]
    outputs = runtime.forward(rows)
    for lease in leases:
        lease.release()
    return [o.logits for o in outputs]


def _assert_adapters_act(runtime):
    from adapterhub.runtime.runtime import Lease

    bare = Lease((), runtime)
    plain = runtime.forward([runtime.encode(t, bare, mode="embed") for t in TEXTS])
    for spec, least in EFFECT.items():
        with runtime.acquire(spec) as lease:
            adapted = runtime.forward([runtime.encode(t, lease, mode="embed") for t in TEXTS])
        for a, b in zip(plain, adapted):
            assert (a.embedding - b.embedding).abs().max() > least, spec


def _close(have, want, relative):
    assert have.dtype == torch.float32
    tolerance = relative * want.abs().max().item() + 0.01
    assert torch.allclose(have, want, atol=tolerance), (have, want)


def _references(tiny_backbone, zoo, specs):
    expected = []
    for spec in specs:
        model = reference_model(tiny_backbone, [zoo.folders[spec]], [zoo.methods[spec]])
        expected += reference_logits(
            tiny_backbone, model, zoo.folders[spec], TEXTS, prefix=PREFIXES.get(spec, "")
        )
    return expected


@pytest.mark.parametrize("dtype, torch_dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_low_precision_banks_and_hooks_follow_the_backbone(
    tiny_backbone_path, tiny_backbone, zoo, dtype, torch_dtype
):
    from adapterhub.runtime import Runtime

    fp32 = Runtime(tiny_backbone, registry=zoo.registry)
    low = Runtime(
        load_backbone(str(tiny_backbone_path), device="cpu"), registry=zoo.registry, dtype=dtype
    )
    assert low.backbone.dtype == dtype
    assert all(p.dtype == torch_dtype for p in low.model.parameters())
    got = _answers(low, MIXED)
    assert all(b.dtype == torch_dtype for b in low.banks.values())
    for bank in low.banks.values():
        assert all(t.dtype == torch_dtype for t in bank.tensors.values())
    _answers(fp32, MIXED)
    # the same adapters take half the bank bytes (heads stay fp32)
    assert low.stats()["bank_live_bytes"] * 2 == fp32.stats()["bank_live_bytes"]
    assert all(r.head[0].dtype == torch.float32 for r in low.residents.values())
    for want, have in zip(_references(tiny_backbone, zoo, MIXED), got):
        _close(have, want, 0.02)  # measured: at most 0.6% of the largest logit
    _assert_adapters_act(low)


def test_int8_hooks_wrap_the_quantized_linear_layers(tiny_backbone_path, tiny_backbone, zoo):
    from adapterhub.backbone.int8 import Int8Linear
    from adapterhub.runtime import Runtime

    linears = sum(isinstance(m, torch.nn.Linear) for m in tiny_backbone.model.modules())
    backbone = load_backbone(str(tiny_backbone_path), device="cpu", quantize="int8")
    assert backbone.quantization == "int8"
    quantized = [n for n, m in backbone.model.named_modules() if isinstance(m, Int8Linear)]
    kept = [n for n, m in backbone.model.named_modules() if type(m) is torch.nn.Linear]
    # each block's FFN down projection stays fp32 (its outliers cost the most accuracy)
    layers = tiny_backbone.model.config.num_hidden_layers
    assert kept == [f"encoder.layer.{i}.output.dense" for i in range(layers)]
    assert len(quantized) + len(kept) == linears
    runtime = Runtime(backbone, registry=zoo.registry, quantize="int8")  # already: a no-op
    assert len(runtime.modules) == linears  # every quantized Linear is hooked
    got = _answers(runtime, MIXED)
    expected = _references(tiny_backbone, zoo, MIXED)
    for want, have in zip(expected, got):
        _close(have, want, 0.01)  # measured: at most 0.012 absolute
    _assert_adapters_act(runtime)


def test_conversions_that_cannot_work_are_refused(tiny_backbone_path):
    backbone = load_backbone(str(tiny_backbone_path), device="cpu", quantize="int8")
    with pytest.raises(UsageError, match="computes in fp32"):
        prepare_backbone(backbone, dtype="bf16")
    with pytest.raises(UsageError, match="already quantized"):
        prepare_backbone(backbone, quantize="8bit")
    fresh = load_backbone(str(tiny_backbone_path), device="cpu")
    with pytest.raises(UsageError, match="applied at load"):
        prepare_backbone(fresh, quantize="8bit")
    assert prepare_backbone(fresh) is fresh and fresh.dtype == "fp32"
