"""Adapter banks: the stacked tensors that hold many resident adapters, one slot each.

A bank holds the same kind of tensor for many adapters, stacked along a leading slot dimension
(``A`` of every rank-8 LoRA on ``layer.3.attention.self.query``, say). The batched forward
(:mod:`adapterhub.runtime.batched`) reads ``bank.tensors[name][slot]``.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class Bank:
    """Stacked tensors ``{name: [capacity, *shape]}`` with a free list of slots.

    Starts with ``chunk`` slots and doubles when full, up to ``limit`` (the pool's
    ``max_resident``; past it only while every slot is pinned, by ``chunk``), so loading N
    adapters copies the bank O(log N) times. The grown tensors are built aside and swapped in, so a
    forward that is reading the old ones keeps reading valid data. Only the pool's loader (one
    at a time) mutates a bank.
    """

    def __init__(
        self,
        shapes: dict[str, tuple[int, ...]],
        *,
        device: Any,
        dtype: Any,
        chunk: int,
        limit: int | None = None,
    ) -> None:
        self.limit = limit
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
        size = torch.tensor([], dtype=dtype).element_size()
        self._slot_bytes = sum(math.prod(shape) * size for shape in shapes.values())

    @property
    def slot_bytes(self) -> int:
        return self._slot_bytes

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def _grow(self) -> None:
        new_capacity = max(self.chunk, 2 * self.capacity)
        if self.limit is not None and self.capacity < self.limit:
            new_capacity = min(new_capacity, self.limit)
        elif self.limit is not None:
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

    def write(
        self, slot: int, values: dict[str, torch.Tensor], scales: dict[str, float] | None = None
    ) -> None:
        """Copy (and cast) each tensor into the slot; multiply the ones ``scales`` names."""
        for name, value in values.items():
            target = self.tensors[name][slot]
            target.copy_(value.reshape(self.shapes[name]))
            scale = (scales or {}).get(name)
            if scale is not None and scale != 1.0:
                target.mul_(scale)

    def release(self, slot: int) -> None:
        self.free.append(slot)
