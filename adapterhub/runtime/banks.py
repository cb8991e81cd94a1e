"""Adapter banks: the stacked tensors that hold many resident adapters, one slot each.

A bank holds the same kind of tensor for many adapters, stacked along a leading slot dimension
(``A`` of every rank-8 LoRA on ``layer.3.attention.self.query``, say). The batched forward
(:mod:`adapterhub.runtime.batched`) reads ``bank.tensors[name]`` at each hooked Linear, with the
slots its plan captured when the batch was built.

A bank only holds tensors; how big it may be is the runtime's decision
(:meth:`adapterhub.runtime.Runtime._make_room`). It changes size in two ways, both by building a
new tensor set aside and swapping one reference, so a forward reading the old set keeps reading
valid data and one reading the new set finds every slot its plan uses, at the same index:

- :meth:`Bank.grow` adds free slots at the top; every used slot keeps its index and data.
- :meth:`Bank.compaction` + :meth:`Bank.apply` shrink it: the new tensors keep slots below the new
  capacity where they are and copy each used slot above it into a free slot below. Only slots of
  unpinned adapters may move (``pinned`` slots must lie below the new capacity), because a pinned
  adapter is exactly one that a live plan may be reading. The runtime builds the compaction
  outside its bookkeeping lock and applies it under that lock only if no moved adapter was pinned
  in between, then re-points the moved adapters' entries.

Free slots are handed out lowest first, so the top of a bank empties first and can be cut off
without moving anything.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import torch

from adapterhub.errors import ServingError


def slot_bytes(shapes: dict[str, tuple[int, ...]], dtype: Any) -> int:
    """Bytes one slot of a bank of these tensor shapes takes."""
    size = torch.tensor([], dtype=dtype).element_size()
    return sum(math.prod(shape) * size for shape in shapes.values())


@dataclass
class Compaction:
    """A smaller tensor set built aside for a bank, and the slots it moved (old -> new)."""

    capacity: int
    tensors: dict[str, torch.Tensor]
    moves: dict[int, int]


class Bank:
    """Stacked tensors ``{name: [capacity, *shape]}`` with a free list of slots.

    Only the runtime's loader (one at a time, under its load lock) grows, compacts or allocates;
    releasing a slot may happen at any time under the runtime's bookkeeping lock.
    """

    def __init__(self, shapes: dict[str, tuple[int, ...]], *, device: Any, dtype: Any) -> None:
        self.shapes = shapes
        self.device = device
        self.dtype = dtype
        self.capacity = 0
        self.tensors: dict[str, torch.Tensor] = {
            name: torch.zeros((0, *shape), device=device, dtype=dtype)
            for name, shape in shapes.items()
        }
        self.free: list[int] = []  # a heap: the lowest free slot is handed out first
        self._slot_bytes = slot_bytes(shapes, dtype)

    @property
    def slot_bytes(self) -> int:
        return self._slot_bytes

    @property
    def nbytes(self) -> int:
        """Bytes allocated: capacity x slot bytes, used or not."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    @property
    def used(self) -> int:
        return self.capacity - len(self.free)

    def used_slots(self) -> set[int]:
        return set(range(self.capacity)).difference(self.free)

    def grow(self, slots: int) -> None:
        """Add ``slots`` free slots at the top."""
        old_capacity = self.capacity
        new_capacity = old_capacity + slots
        grown = {}
        for name, old in self.tensors.items():
            tensor = torch.zeros(
                (new_capacity, *self.shapes[name]), device=self.device, dtype=self.dtype
            )
            tensor[:old_capacity] = old
            grown[name] = tensor
        self.tensors = grown  # one reference swap: readers see old or new, both valid
        self.capacity = new_capacity
        for slot in range(old_capacity, new_capacity):
            heapq.heappush(self.free, slot)

    def allocate(self) -> int:
        if not self.free:
            raise ServingError(
                "internal error: a bank slot was taken before the runtime made room for it; "
                "please report this"
            )
        return heapq.heappop(self.free)

    def write(
        self, slot: int, values: dict[str, torch.Tensor], scales: dict[str, float] | None = None
    ) -> None:
        """Copy (and cast) each tensor into the slot; multiply the ones ``scales`` names (in
        fp32, before the cast: a bf16 bank then rounds once)."""
        for name, value in values.items():
            value = value.reshape(self.shapes[name])
            scale = (scales or {}).get(name)
            if scale is not None and scale != 1.0:
                value = value.float() * scale
            self.tensors[name][slot].copy_(value)

    def release(self, slot: int) -> None:
        heapq.heappush(self.free, slot)

    def compaction(self, capacity: int, pinned: Collection[int] = ()) -> Compaction:
        """Build (aside; the bank is not changed) this bank's tensors at ``capacity`` slots.

        Used slots below ``capacity`` stay where they are; each one above moves into the lowest
        free slot below. ``pinned`` slots must not move, so they must lie below ``capacity``.
        """
        used = self.used_slots()
        if capacity < len(used) or capacity >= self.capacity:
            raise ServingError(
                f"internal error: cannot compact a bank of {self.capacity} slots ({len(used)} "
                f"used) to {capacity}; please report this"
            )
        movers = sorted(slot for slot in used if slot >= capacity)
        if any(slot in movers for slot in pinned):
            raise ServingError("internal error: a compaction would move a pinned slot")
        holes = sorted(slot for slot in range(capacity) if slot not in used)
        moves = dict(zip(movers, holes))
        tensors = {}
        if moves:
            source = torch.tensor(list(moves), dtype=torch.long, device=self.device)
            target = torch.tensor(list(moves.values()), dtype=torch.long, device=self.device)
        for name, old in self.tensors.items():
            tensor = old[:capacity].clone()
            if moves:
                tensor.index_copy_(0, target, old.index_select(0, source))
            tensors[name] = tensor
        return Compaction(capacity, tensors, moves)

    def apply(self, compaction: Compaction) -> None:
        """Swap in a compaction built by :meth:`compaction`, with no slot allocated since.

        Slots released since it was built become free (their data was copied for nothing).
        """
        moved = {compaction.moves.get(slot, slot) for slot in self.used_slots()}
        if any(slot >= compaction.capacity for slot in moved):
            raise ServingError("internal error: a slot was taken during a compaction")
        self.tensors = compaction.tensors
        self.capacity = compaction.capacity
        free = [slot for slot in range(compaction.capacity) if slot not in moved]
        heapq.heapify(free)
        self.free = free
