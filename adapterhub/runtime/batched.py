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

ACTIVATIONS = {
    "relu": torch.relu,
    "gelu": nn.functional.gelu,
    "tanh": torch.tanh,
    "silu": nn.functional.silu,
    "swish": nn.functional.silu,
}


class Bank:
    """Stacked tensors ``{name: [capacity, *shape]}`` with a free list of slots.

    Grows by ``chunk`` slots when full: the grown tensors are built aside and swapped in, so a
    forward that is reading the old ones keeps reading valid data. Only the pool's loader (one
    at a time) mutates a bank.
    """

    def __init__(
        self, shapes: dict[str, tuple[int, ...]], *, device: Any, dtype: Any, chunk: int
    ) -> None:
        self.shapes = shapes
        self.device = device
        self.dtype = dtype
        self.chunk = max(1, int(chunk))
        self.capacity = 0
        self.tensors: dict[str, torch.Tensor] = {
            name: torch.zeros((0, *shape), device=device, dtype=dtype)
            for name, shape in shapes.items()
        }
        self.free: list[int] = []

    @property
    def slot_bytes(self) -> int:
        size = torch.tensor([], dtype=self.dtype).element_size()
        total = 0
        for shape in self.shapes.values():
            count = 1
            for dim in shape:
                count *= dim
            total += count * size
        return total

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def _grow(self) -> None:
        new_capacity = self.capacity + self.chunk
        grown = {}
        for name, old in self.tensors.items():
            tensor = torch.zeros(
                (new_capacity, *self.shapes[name]), device=self.device, dtype=self.dtype
            )
            tensor[: self.capacity] = old
            grown[name] = tensor
        self.tensors = grown  # one reference swap: readers see old or new, both valid
        self.free.extend(range(new_capacity - 1, self.capacity - 1, -1))
        self.capacity = new_capacity

    def allocate(self) -> int:
        if not self.free:
            self._grow()
        return self.free.pop()

    def write(self, slot: int, values: dict[str, torch.Tensor]) -> None:
        for name, value in values.items():
            self.tensors[name][slot].copy_(value.reshape(self.shapes[name]))

    def release(self, slot: int) -> None:
        self.free.append(slot)


@dataclass
class Entry:
    """One adapter tensor group placed in one bank slot."""

    module: int  # index of the hooked Linear
    kind: str  # lora | ia3_in | ia3_out | bottleneck
    bank: Bank
    slot: int
    activation: str = ""


@dataclass
class ModulePlan:
    """What the hooks of one Linear do for the current batch."""

    lora: list[tuple[Bank, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    ia3_in: list[tuple[Bank, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    ia3_out: list[tuple[Bank, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    bottleneck: list[tuple[Bank, torch.Tensor, torch.Tensor, Any]] = field(default_factory=list)


def build_plan(rows: list[list[list[Entry]]], device: Any) -> dict[int, ModulePlan]:
    """``rows[r]`` = the entries of each adapter of row r, in stack order (language first).

    LoRA entries of all rows and stack positions share one group per bank (deltas add, and
    ``index_add_`` sums repeated rows). IA3 and bottleneck entries are grouped per stack position
    so each group has distinct rows and positions apply in order.
    """
    groups: dict[tuple, tuple[list[int], list[int], Entry]] = {}
    for row, stack in enumerate(rows):
        for position, entries in enumerate(stack):
            for entry in entries:
                order = 0 if entry.kind == "lora" else position
                key = (entry.module, entry.kind, id(entry.bank), order)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = ([], [], entry)
                group[0].append(row)
                group[1].append(entry.slot)
    plan: dict[int, ModulePlan] = defaultdict(ModulePlan)
    for key in sorted(groups, key=lambda k: (k[0], k[3])):
        row_list, slot_list, entry = groups[key]
        index_rows = torch.tensor(row_list, dtype=torch.long, device=device)
        index_slots = torch.tensor(slot_list, dtype=torch.long, device=device)
        target = plan[entry.module]
        if entry.kind == "bottleneck":
            target.bottleneck.append(
                (entry.bank, index_rows, index_slots, ACTIVATIONS[entry.activation])
            )
        else:
            getattr(target, entry.kind).append((entry.bank, index_rows, index_slots))
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


def _pre_hook(index: int):
    def hook(_module: nn.Module, args: tuple):
        plan = getattr(_current, "plan", None)
        if not plan:
            return None
        step = plan.get(index)
        if step is None or not step.ia3_in:
            return None
        x = args[0].clone()
        for bank, rows, slots in step.ia3_in:
            scale = bank.tensors["l"][slots].to(x.dtype)  # [n, in]
            x.index_copy_(0, rows, x.index_select(0, rows) * scale.unsqueeze(1))
        return (x, *args[1:])

    return hook


def _post_hook(index: int):
    def hook(_module: nn.Module, args: tuple, output: torch.Tensor):
        plan = getattr(_current, "plan", None)
        if not plan:
            return None
        step = plan.get(index)
        if step is None:
            return None
        y = output
        for bank, rows, slots in step.ia3_out:
            scale = bank.tensors["l"][slots].to(y.dtype)  # [n, out]
            y.index_copy_(0, rows, y.index_select(0, rows) * scale.unsqueeze(1))
        if step.lora:
            x = args[0]
            for bank, rows, slots in step.lora:
                a = bank.tensors["A"][slots]  # [n, r, in]
                b = bank.tensors["B"][slots]  # [n, out, r], scaling folded in
                xs = x.index_select(0, rows).to(a.dtype)  # [n, T, in]
                delta = torch.bmm(torch.bmm(xs, a.transpose(1, 2)), b.transpose(1, 2))
                y.index_add_(0, rows, delta.to(y.dtype))
        for bank, rows, slots, act in step.bottleneck:
            t = bank.tensors
            h = y.index_select(0, rows).to(t["down_w"].dtype)  # [n, T, H]
            down = torch.baddbmm(
                t["down_b"][slots].unsqueeze(1), h, t["down_w"][slots].transpose(1, 2)
            )
            up = torch.baddbmm(
                t["up_b"][slots].unsqueeze(1), act(down), t["up_w"][slots].transpose(1, 2)
            )
            y.index_add_(0, rows, up.to(y.dtype))
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
