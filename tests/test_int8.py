"""--quantize int8's Linear: 7-bit weights, so 8-bit activations never saturate AVX2's int16 sums."""

from __future__ import annotations

import warnings

import pytest
import torch

from adapterhub.backbone.int8 import KEPT_FP32, WEIGHT_MAX, Int8Linear, quantize_int8


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt())


def test_weights_stay_within_seven_bits_and_any_leading_shape_works():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    quantized = Int8Linear(linear)
    weight, bias = torch.ops.quantized.linear_unpack(quantized._packed)
    assert int(weight.int_repr().abs().max()) == WEIGHT_MAX
    assert torch.equal(bias, linear.bias.detach())
    inputs = torch.randn(3, 5, 64)
    out = quantized(inputs)
    assert out.shape == (3, 5, 48)
    assert _relative_error(out, linear(inputs).detach()) < 0.05


@pytest.mark.parametrize("seed", range(3))
def test_an_outlier_feature_costs_half_the_error_of_torchs_dynamic_linear(seed):
    """Activations keep all 8 bits (torch's dynamic Linear rounds them to 7): with one feature
    30x the others, the error against fp32 is half (measured 0.49-0.50x over five seeds)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.manual_seed(seed)
    linear = torch.nn.Linear(256, 128)
    inputs = torch.randn(64, 256)
    inputs[:, 7] *= 30
    want = linear(inputs).detach()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch_int8 = quantize_dynamic(
            torch.nn.Sequential(linear), {torch.nn.Linear: per_channel_dynamic_qconfig}
        )
    ours = _relative_error(Int8Linear(linear)(inputs), want)
    assert ours < 0.6 * _relative_error(torch_int8(inputs), want)


def test_quantize_int8_keeps_the_named_layers():
    model = torch.nn.Sequential()
    model.add_module("query", torch.nn.Linear(8, 8))
    model.add_module("out", torch.nn.Sequential())
    model.out.add_module("dense", torch.nn.Linear(8, 8))
    assert quantize_int8(model, keep=r"out\.dense$") == ["query"]
    assert isinstance(model.query, Int8Linear) and type(model.out.dense) is torch.nn.Linear
    assert quantize_int8(model, keep=None) == ["out.dense"]


def test_the_ffn_down_projections_stay_fp32_and_nothing_else():
    import re

    kept = re.compile(KEPT_FP32)
    assert kept.search("encoder.layer.11.output.dense")
    assert kept.search("layer.0.output.dense")
    for other in (
        "encoder.layer.3.attention.output.dense",
        "encoder.layer.3.attention.self.query",
        "encoder.layer.3.intermediate.dense",
    ):
        assert not kept.search(other)
