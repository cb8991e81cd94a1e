"""The batched multi-adapter forward: stacked adapter banks and the hooks that read them.

Every Linear of the encoder gets one forward hook and one forward pre-hook, installed ONCE when
the runtime starts. They do nothing unless the current thread has a batch plan: a per-module list
of (bank, rows, slots) saying which rows of the batch use which slot of which bank. Then, for the
rows that have an adapter on this Linear (and only those), with ``y = W x + b`` already computed:

- LoRA:        ``y[rows] += (x[rows] @ A[slots]^T) @ (s * B[slots])^T``   (one gather + two bmm)
- IA3 output:  ``y[rows] *= l[slots]``                  (keys, values: PEFT scales the output)
- IA3 input:   ``x[rows] *= l[slots]`` before the Linear (feed-forward modules: the input)
- bottleneck:  ``y[rows] += up(act(down(y[rows])))``     (on each layer's ``output.dense``)

A bank holds the same kind of tensor for many adapters, stacked along a leading slot dimension
(``A`` of every rank-8 LoRA on ``layer.3.attention.self.query``, say). Loading an adapter copies
its tensors into free slots; nothing about the model's modules changes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from adapterhub.methods.bottleneck import layer as bottleneck_layer
from adapterhub.runtime.banks import Bank


@dataclass
class Entry:
    """One adapter tensor group placed in one bank slot."""

    module: int  # index of the hooked Linear
    kind: str  # lora | ia3_in | ia3_out | bottleneck: a field of ModulePlan
    bank: Bank
    slot: int
    activation: str = ""
    function: Any = field(default=None, init=False, repr=False)
    """The bottleneck's non-linearity, looked up once when the adapter loads (the name was
    checked at publish and load), never per batch."""

    def __post_init__(self) -> None:
        if self.kind == "bottleneck":
            self.function = bottleneck_layer.activation(self.activation)


@dataclass
class Group:
    """Rows of the batch that use one bank, with each row's slot in it.

    ``span`` is ``(start, stop)`` when the rows are exactly ``range(start, stop)``: the hooks
    then work on views of the batch, in place, with no gather and no scatter of activations
    (:meth:`Runtime.forward` orders rows so that this is the common case).
    """

    bank: Bank
    rows: torch.Tensor
    slots: torch.Tensor
    span: tuple[int, int] | None
    activation: Any = None
    single: int | None = None
    """The slot, when every row of the group uses the same one."""


@dataclass
class ModulePlan:
    """What the hooks of one Linear do for the current batch, in this order."""

    ia3_in: list[Group] = field(default_factory=list)
    ia3_out: list[Group] = field(default_factory=list)
    lora: list[Group] = field(default_factory=list)
    bottleneck: list[Group] = field(default_factory=list)


def build_plan(rows: list[list[list[Entry]]], device: Any) -> dict[int, ModulePlan]:
    """``rows[r]`` = the entries of each adapter of row r, in stack order (language first).

    Entries are grouped per (module, bank, stack position), so every group has distinct rows
    and stack positions apply in order (LoRA deltas add; IA3 scales multiply; bottlenecks
    compose, language first).
    """
    groups: dict[tuple, tuple[list[int], list[int], Entry]] = {}
    for row, stack in enumerate(rows):
        for position, entries in enumerate(stack):
            for entry in entries:
                key = (entry.module, position, entry.kind, id(entry.bank))
                group = groups.get(key)
                if group is None:
                    group = groups[key] = ([], [], entry)
                group[0].append(row)
                group[1].append(entry.slot)
    plan: dict[int, ModulePlan] = defaultdict(ModulePlan)
    for key in sorted(groups, key=lambda k: (k[0], k[1])):
        row_list, slot_list, entry = groups[key]
        first = row_list[0]
        span = (first, first + len(row_list)) if row_list[-1] - first == len(row_list) - 1 else None
        group = Group(
            entry.bank,
            torch.tensor(row_list, dtype=torch.long, device=device),
            torch.tensor(slot_list, dtype=torch.long, device=device),
            span,
            entry.function,
            slot_list[0] if len(set(slot_list)) == 1 else None,
        )
        getattr(plan[entry.module], entry.kind).append(group)
    return dict(plan)


_current = threading.local()


class plan_scope:
    """``with plan_scope(plan): model(...)``: the hooks of this thread read ``plan``."""

    def __init__(self, plan: dict[int, ModulePlan]) -> None:
        self.plan = plan

    def __enter__(self) -> None:
        self.previous = getattr(_current, "plan", None)
        _current.plan = self.plan

    def __exit__(self, *exc: Any) -> None:
        _current.plan = self.previous


def _scale_rows(t: torch.Tensor, groups: list[Group]) -> None:
    """IA3: multiply each group's rows of ``t`` [batch, T, features] by its slot's vector."""
    for group in groups:
        scale = group.bank.tensors["l"].index_select(0, group.slots).to(t.dtype).unsqueeze(1)
        if group.span:  # [n, 1, features]
            t[group.span[0] : group.span[1]].mul_(scale)
        else:
            t.index_copy_(0, group.rows, t.index_select(0, group.rows) * scale)


def _pre_hook(index: int):
    def hook(_module: nn.Module, args: tuple):
        plan = getattr(_current, "plan", None)
        if not plan:
            return None
        step = plan.get(index)
        if step is None or not step.ia3_in:
            return None
        x = args[0].clone()  # the input may feed other modules too
        _scale_rows(x, step.ia3_in)
        return (x, *args[1:])

    return hook


def _add_lora(x: torch.Tensor, y: torch.Tensor, group: Group) -> None:
    """LoRA: ``y[rows] += (x[rows] @ A[slots]^T) @ B[slots]^T`` (B holds the scaling)."""
    bank = group.bank.tensors
    same_dtype = x.dtype == y.dtype == bank["A"].dtype
    if group.single is not None and group.span and same_dtype and y.is_contiguous():
        # one adapter for the whole span: plain matmuls, no gather
        start, stop = group.span
        a, b = bank["A"][group.single], bank["B"][group.single]  # [r, in], [out, r]
        xa = x[start:stop].reshape(-1, a.shape[1]) @ a.T
        y[start:stop].view(-1, b.shape[0]).addmm_(xa, b.T)
        return
    a = bank["A"].index_select(0, group.slots)  # [n, r, in]
    b = bank["B"].index_select(0, group.slots)  # [n, out, r], scaling folded in
    if group.span and same_dtype:
        start, stop = group.span
        y[start:stop].baddbmm_(torch.bmm(x[start:stop], a.transpose(1, 2)), b.transpose(1, 2))
    else:
        xs = x.index_select(0, group.rows).to(a.dtype)  # [n, T, in]
        delta = torch.bmm(torch.bmm(xs, a.transpose(1, 2)), b.transpose(1, 2))
        y.index_add_(0, group.rows, delta.to(y.dtype))


def _add_bottleneck(y: torch.Tensor, group: Group) -> None:
    """Bottleneck: ``y[rows] += up(act(down(y[rows])))``."""
    t = group.bank.tensors
    slots = group.slots
    h = y[group.span[0] : group.span[1]] if group.span else y.index_select(0, group.rows)
    down = torch.baddbmm(
        t["down_b"].index_select(0, slots).unsqueeze(1),
        h.to(t["down_w"].dtype),  # [n, T, H]
        t["down_w"].index_select(0, slots).transpose(1, 2),
    )
    up = torch.baddbmm(
        t["up_b"].index_select(0, slots).unsqueeze(1),
        group.activation(down),
        t["up_w"].index_select(0, slots).transpose(1, 2),
    ).to(y.dtype)
    if group.span:
        h.add_(up)
    else:
        y.index_add_(0, group.rows, up)


def _post_hook(index: int):
    def hook(_module: nn.Module, args: tuple, output: torch.Tensor):
        plan = getattr(_current, "plan", None)
        if not plan:
            return None
        step = plan.get(index)
        if step is None:
            return None
        x, y = args[0], output
        _scale_rows(y, step.ia3_out)  # IA3 on keys and values: y *= l
        for group in step.lora:
            _add_lora(x, y, group)
        for group in step.bottleneck:  # after the LoRA deltas, in stack order
            _add_bottleneck(y, group)
        return y

    return hook


def install_hooks(model: nn.Module) -> dict[str, int]:
    """Hook every Linear-like module of ``model`` once; returns {module name: index}.

    Idempotent: several runtimes may share one model (plans are per thread and carry their own
    banks), but each Linear must apply a plan exactly once.
    """
    installed = getattr(model, "_adapterhub_hooked", None)
    if installed is not None:
        return installed
    names: dict[str, int] = {}
    for name, module in model.named_modules():
        if not _is_linear(module):
            continue
        index = len(names)
        names[name] = index
        module.register_forward_pre_hook(_pre_hook(index))
        module.register_forward_hook(_post_hook(index))
    model._adapterhub_hooked = names
    return names


def _is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or (
        hasattr(module, "in_features") and hasattr(module, "out_features")
    )
