"""``--quantize int8``: the backbone's Linear layers as fbgemm's dynamic int8 matmul on the CPU.

Weights are int8 with one scale per output channel, restricted to 7 bits (|q| <= 63);
activations are quantized per call to the full 8 bits (uint8, one scale and zero point for the
batch). torch's own dynamic int8 Linear does the opposite: 8-bit weights, 7-bit activations
(``reduce_range=True``). Either way a pair of uint8 x int8 products summed in int16 by AVX2's
``vpmaddubsw`` cannot saturate (2 x 255 x 64 = 32640 < 32767), but the activations are where the
accuracy goes: their outlier features set the one scale every other value is rounded to, so the
spare bit is theirs. Measured with benchmarks/precision.py on the published sentiment adapters
(README, "Lower precision").

Each block's FFN down projection stays fp32 (:data:`KEPT_FP32`): its input, the GELU of the
1536-wide intermediate, carries the largest outliers, and int8 there cost the most accuracy.

The replacement keeps ``in_features`` / ``out_features``, so the runtime's adapter hooks wrap it
like the Linear it replaces; the hooks add their LoRA terms in fp32.
"""

from __future__ import annotations

import re
import warnings

import torch
from torch import nn

WEIGHT_MAX = 63
"""Largest |int8| a weight may take: 7 bits, so 8-bit activations never saturate AVX2's
int16 pair sums (see the module docstring)."""


KEPT_FP32 = r"(^|\.)layer\.\d+\.output\.dense$"
"""Names of the Linear layers ``--quantize int8`` leaves in fp32: each block's FFN down
projection (``encoder.layer.N.output.dense``, not ``...attention.output.dense``). Measured with
``benchmarks/precision.py --precisions fp32,int8-all,int8`` (5 sentiment adapters on 728
yardstick and 131-150 test texts each, langid/multi on 150): every Linear int8 changes accuracy
by -3.2 points at worst (fr, yardstick); with these kept, -1.3 (2 of 150 test texts) and -0.5
on the yardstick, for about 0.85x of the all-int8 speed (README, "Lower precision")."""


class Int8Linear(nn.Module):
    """A frozen ``nn.Linear`` as packed int8 weights; ``forward`` quantizes its input per call."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scales = (weight.abs().amax(dim=1) / WEIGHT_MAX).clamp(min=1e-12).double()
        zero_points = torch.zeros(self.out_features, dtype=torch.long)
        with warnings.catch_warnings():
            # torch says its eager quantization moves to torchao; fbgemm's AVX2 int8 kernels
            # are reached from eager code only through these ops
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*quantize_per_.*deprecated")
            quantized = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self._packed = torch.ops.quantized.linear_prepack(quantized, bias)
        # bytes of the int8 weights, their fp64 scales and int32 zero points, and the bias
        bias_bytes = 0 if bias is None else bias.numel() * 4
        self.weight_bytes = quantized.numel() + scales.numel() * 12 + bias_bytes

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(inputs, self._packed, reduce_range=False)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_int8(model: nn.Module, keep: str | None = KEPT_FP32) -> list[str]:
    """Swap every ``nn.Linear`` of ``model`` for :class:`Int8Linear`, in place, but those whose
    name matches the regular expression ``keep`` (None: keep none); returns the names swapped."""
    kept = re.compile(keep) if keep else None
    swapped = []
    for name, module in list(model.named_modules()):
        if type(module) is not nn.Linear or (kept and kept.search(name)):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(module))
        swapped.append(name)
    return swapped
