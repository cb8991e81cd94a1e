"""Bank memory: --memory-budget and --max-resident bound the banks' real (allocated) memory,
pinned adapters included; banks shrink after evictions and unloads without disturbing a forward
in flight."""

from __future__ import annotations

import random
import threading
import time

import pytest
import torch
from serving_helpers import TOPICS, make_adapter, reference_logits, reference_model

from adapterhub.errors import OverloadError
from adapterhub.runtime import Runtime
from adapterhub.runtime.batched import build_plan, plan_scope

TEXTS = ["the film was very good", "der film ist nicht gut", "i love this book"]
RANKS = (2, 4, 8, 16)
PER_RANK = 15


@pytest.fixture(scope="module")
def mixed(tiny_backbone, tmp_path_factory):
    """A registry of 60 LoRA adapters, 15 of each rank 2/4/8/16, each with its own weights."""
    from adapterhub.registry import publish

    root = tmp_path_factory.mktemp("bank-zoo")
    registry = root / "registry"
    ids, folders = [], {}
    for r in RANKS:
        for n in range(PER_RANK):
            seed = 100 * r + n
            folder = make_adapter(
                tiny_backbone, root / "src" / str(seed), "lora", seed, TOPICS, "sequence", r=r
            )
            adapter_id = f"mix/r{r}n{n}@bulk:1.0.0"
            publish(folder, adapter_id, backbone=tiny_backbone, store=registry)
            ids.append(adapter_id)
            folders[adapter_id] = folder
    return registry, ids, folders


def _allocated(runtime: Runtime) -> int:
    """Bytes the pool really holds: every bank's tensors (free slots included) plus heads."""
    banks = sum(
        t.numel() * t.element_size() for b in runtime.banks.values() for t in b.tensors.values()
    )
    heads = sum(
        t.numel() * t.element_size() for r in runtime.residents.values() for t in (r.head or ())
    )
    return banks + heads


def _logits(runtime: Runtime, adapter: str, texts=TEXTS) -> torch.Tensor:
    with runtime.acquire(adapter) as lease:
        outputs = runtime.forward([runtime.encode(t, lease) for t in texts])
    return torch.stack([o.logits for o in outputs])


def _slots(runtime: Runtime, adapter: str) -> list[int]:
    return [entry.slot for entry in runtime.residents[adapter].entries]


def test_many_loads_never_allocate_past_the_budget(tiny_backbone, mixed):
    registry, ids, folders = mixed
    probe = Runtime(tiny_backbone, registry=registry)
    sizes = [probe.load(a).slot_bytes for a in ids[::PER_RANK]]  # one of each rank
    budget = 3 * max(sizes) + min(sizes)  # room for 3 to 10 adapters, depending on the ranks
    runtime = Runtime(tiny_backbone, registry=registry, memory_budget_mb=budget / 2**20)
    order = ids * 2
    random.Random(0).shuffle(order)
    for adapter in order:  # 120 loads of 60 adapters, mixed ranks, most of them misses
        runtime.load(adapter)
        allocated = _allocated(runtime)
        # the bound is budget + one bank chunk; the runtime keeps the stricter one
        one_chunk = max(runtime.bank_chunk * b.slot_bytes for b in runtime.banks.values())
        assert allocated <= budget < budget + one_chunk, (adapter, allocated, budget)
        stats = runtime.stats()
        assert stats["allocated_bytes"] == allocated
        assert stats["memory_budget_bytes"] == budget
    assert runtime.stats()["evictions"] > 60
    # the pool still answers exactly: the last adapter against the PEFT reference
    last = order[-1]
    model = reference_model(tiny_backbone, [folders[last]], ["lora"])
    want = torch.stack(reference_logits(tiny_backbone, model, folders[last], TEXTS))
    assert torch.allclose(_logits(runtime, last), want, atol=1e-5, rtol=0)


def test_unloading_most_shrinks_the_banks_and_drops_empty_ones(tiny_backbone, mixed):
    registry, ids, _ = mixed
    runtime = Runtime(tiny_backbone, registry=registry, bank_chunk=2)
    for adapter in ids:
        runtime.load(adapter)
    full = sum(b.nbytes for b in runtime.banks.values())
    banks_before = len(runtime.banks)
    keep = {ids[0], ids[PER_RANK + 3], ids[2 * PER_RANK + 14]}  # ranks 2, 4, 8; no rank 16
    for adapter in ids:
        if adapter not in keep:
            assert runtime.unload(adapter)
    assert sum(b.nbytes for b in runtime.banks.values()) < full / 5
    # every remaining bank holds its one adapter and less than 2 chunks of free slots
    assert all(b.used == 1 and b.capacity < 1 + 2 * 2 for b in runtime.banks.values())
    assert len(runtime.banks) == 3 * banks_before // 4  # the rank-16 banks are gone
    after = runtime.stats()
    assert after["resident"] == 3
    assert after["bank_bytes"] == sum(b.nbytes for b in runtime.banks.values())
    live = sum(runtime.residents[a].slot_bytes for a in keep)
    assert after["bank_live_bytes"] + after["head_bytes"] == live
    assert after["allocated_bytes"] == after["bank_bytes"] + after["head_bytes"]
    assert after["compactions"] > 0


def test_answers_stay_exact_after_compaction_moves_slots(tiny_backbone, mixed):
    registry, ids, folders = mixed
    runtime = Runtime(tiny_backbone, registry=registry, bank_chunk=2)
    rank4 = ids[PER_RANK : 2 * PER_RANK]
    for adapter in rank4:
        runtime.load(adapter)
    kept = rank4[-3:]  # the highest slots: a compaction must move them down
    before = {a: _logits(runtime, a) for a in kept}
    slots_before = {a: _slots(runtime, a) for a in kept}
    for adapter in rank4[:-3]:
        runtime.unload(adapter)
    for adapter in kept:
        assert _slots(runtime, adapter) != slots_before[adapter]
        assert torch.equal(_logits(runtime, adapter), before[adapter])
        model = reference_model(tiny_backbone, [folders[adapter]], ["lora"])
        want = torch.stack(reference_logits(tiny_backbone, model, folders[adapter], TEXTS))
        assert torch.allclose(before[adapter], want, atol=1e-5, rtol=0)
    # the three share each bank, now compacted to the bottom slots: one batch, still exact
    leases = [runtime.acquire(a) for a in kept]
    rows = [runtime.encode(t, lease) for lease in leases for t in TEXTS]
    outputs = runtime.forward(rows)
    for k, adapter in enumerate(kept):
        got = torch.stack([o.logits for o in outputs[3 * k : 3 * k + 3]])
        assert torch.allclose(got, before[adapter], atol=1e-6, rtol=0)
    for lease in leases:
        lease.release()
    assert all(b.capacity < 3 + 2 * 2 for b in runtime.banks.values())  # < 2 chunks free


def test_all_pinned_load_waits_then_overloads_within_the_bound(tiny_backbone, mixed):
    registry, ids, _ = mixed
    runtime = Runtime(tiny_backbone, registry=registry, max_resident=3, room_wait_s=0.5)
    leases = [runtime.acquire(a) for a in ids[:3]]
    started = time.monotonic()
    with pytest.raises(OverloadError, match="of --max-resident 3"):
        runtime.acquire(ids[3])
    waited = time.monotonic() - started
    assert 0.5 <= waited < 3
    assert len(runtime.residents) == 3
    assert all(b.capacity <= 3 for b in runtime.banks.values())
    assert runtime.stats()["overloads"] == 1
    # a pin released during the wait lets the load in, still within the limit
    runtime.room_wait_s = 10
    threading.Timer(0.3, leases[0].release).start()
    started = time.monotonic()
    with runtime.acquire(ids[3]) as lease:
        assert lease.ids == [ids[3]]
    assert 0.25 <= time.monotonic() - started < 5
    assert set(runtime.residents) == {ids[1], ids[2], ids[3]}
    for lease in leases[1:]:
        lease.release()


def test_all_pinned_load_overloads_under_the_memory_budget(tiny_backbone, mixed):
    registry, ids, _ = mixed
    rank8 = ids[2 * PER_RANK : 3 * PER_RANK]
    one = Runtime(tiny_backbone, registry=registry).load(rank8[0]).slot_bytes
    budget = 2.5 * one
    runtime = Runtime(
        tiny_backbone, registry=registry, memory_budget_mb=budget / 2**20, room_wait_s=0.3
    )
    leases = [runtime.acquire(a) for a in rank8[:2]]
    with pytest.raises(OverloadError, match="MB of --memory-budget"):
        runtime.acquire(rank8[2])
    assert _allocated(runtime) <= budget
    assert set(runtime.residents) == set(rank8[:2])
    for lease in leases:
        lease.release()
    with runtime.acquire(rank8[2]):
        assert _allocated(runtime) <= budget


def test_a_forward_in_flight_survives_a_compaction(tiny_backbone, mixed):
    """The compaction lands between two layers of a running forward: the pinned adapter's slot
    and data stay put, so the forward's remaining layers read the same numbers."""
    registry, ids, folders = mixed
    runtime = Runtime(tiny_backbone, registry=registry, bank_chunk=2)
    rank4 = ids[PER_RANK : PER_RANK + 12]
    for adapter in rank4:
        runtime.load(adapter)
    pinned, movers = rank4[5], rank4[10:]
    lease = runtime.acquire(pinned)
    want = _logits(runtime, pinned)
    mover_logits = {a: _logits(runtime, a) for a in movers}
    slots = {a: _slots(runtime, a) for a in rank4}
    capacity = {id(b): b.capacity for b in runtime.banks.values()}
    fired = []

    def compact_now(*_args):
        if not fired:  # once, between the first and the second layer of this forward
            fired.append(True)
            for adapter in rank4:
                if adapter != pinned and adapter not in movers:
                    runtime.unload(adapter)

    handle = tiny_backbone.model.encoder.layer[0].register_forward_hook(compact_now)
    try:
        rows = [runtime.encode(t, lease) for t in TEXTS]
        outputs = runtime.forward(rows)
    finally:
        handle.remove()
    got = torch.stack([o.logits for o in outputs])
    assert fired
    assert all(b.capacity < capacity[id(b)] for b in runtime.banks.values())  # compacted
    assert torch.equal(got, want)
    assert _slots(runtime, pinned) == slots[pinned]
    assert all(_slots(runtime, a) != slots[a] for a in movers)
    for adapter in movers:
        assert torch.equal(_logits(runtime, adapter), mover_logits[adapter])
    lease.release()


def test_a_pin_taken_while_a_compaction_is_built_keeps_its_slot(tiny_backbone, mixed):
    """A request pins an adapter that a compaction is moving after the copy was built: that
    compaction must not be swapped in, because the request's plan holds the old slot."""
    registry, ids, _ = mixed
    runtime = Runtime(tiny_backbone, registry=registry, bank_chunk=2)
    rank2 = ids[:10]
    for adapter in rank2:
        runtime.load(adapter)
    mover = rank2[-1]
    want = _logits(runtime, mover)
    old_slots = _slots(runtime, mover)
    bank = runtime.residents[mover].entries[0].bank
    build = bank.compaction
    taken = []

    def build_then_pin(*args, **kwargs):
        built = build(*args, **kwargs)
        if not taken and old_slots[0] in built.moves:
            # a request for the adapter being moved arrives while the copy is being built
            lease = runtime.acquire(mover)
            rows = [runtime.encode(t, lease) for t in TEXTS]
            plan = build_plan([[a.entries for a in lease.adapters]] * len(rows), "cpu")
            taken.append((lease, rows, plan))
        return built

    bank.compaction = build_then_pin
    try:
        for adapter in rank2[:-1]:
            runtime.unload(adapter)
    finally:
        del bank.compaction
    assert taken, "no compaction tried to move the adapter"
    lease, rows, plan = taken[0]
    assert _slots(runtime, mover) == old_slots
    # the plan built while the compaction was in the making still reads the right data
    ids_ = torch.full((len(rows), max(len(r.input_ids) for r in rows)), 1)
    mask = torch.zeros_like(ids_)
    for i, row in enumerate(rows):
        ids_[i, : len(row.input_ids)] = torch.tensor(row.input_ids)
        mask[i, : len(row.input_ids)] = 1
    with torch.inference_mode(), plan_scope(plan):
        hidden = tiny_backbone.model(input_ids=ids_, attention_mask=mask).last_hidden_state
    expected = runtime.forward([runtime.encode(t, lease, mode="embed") for t in TEXTS])
    pooled = tiny_backbone.mean_pool(hidden, mask)
    for got, output in zip(pooled, expected):
        assert torch.equal(got, output.embedding)
    lease.release()
    # with the pin gone, the next tidy-up (after an unload) moves it; answers stay exact
    runtime.load(rank2[0])
    runtime.unload(rank2[0])
    assert _slots(runtime, mover) != old_slots
    assert torch.equal(_logits(runtime, mover), want)


def test_concurrent_forwards_during_loads_unloads_and_compactions(tiny_backbone, mixed):
    registry, ids, _ = mixed
    runtime = Runtime(tiny_backbone, registry=registry, bank_chunk=2)
    rank8 = ids[2 * PER_RANK : 3 * PER_RANK]
    for adapter in rank8[1:6]:  # the pinned adapter sits above slots that will be freed
        runtime.load(adapter)
    lease = runtime.acquire(rank8[0])
    for adapter in rank8[1:6]:
        runtime.unload(adapter)
    pinned_slots = _slots(runtime, rank8[0])
    assert pinned_slots == [5] * 4
    rows = [runtime.encode(t, lease) for t in TEXTS]
    want = torch.stack([o.logits for o in runtime.forward(rows)])
    stop = threading.Event()
    wrong, done = [], [0]

    def serve():
        while not stop.is_set():
            got = torch.stack([o.logits for o in runtime.forward(rows)])
            if not torch.equal(got, want):
                wrong.append((got - want).abs().max())
            done[0] += 1

    worker = threading.Thread(target=serve)
    worker.start()
    try:
        for round_ in range(15):
            batch = rank8[1:] if round_ % 2 else rank8[1:8]
            for adapter in batch:
                runtime.load(adapter)
            for adapter in batch:
                runtime.unload(adapter)
    finally:
        stop.set()
        worker.join()
    lease.release()
    assert not wrong
    assert done[0] > 0
    assert _slots(runtime, rank8[0]) == pinned_slots  # never moved while pinned
    assert all(b.capacity == 5 + 1 for b in runtime.banks.values())  # shrunk back
    assert runtime.stats()["compactions"] >= 10
    assert set(runtime.residents) == {rank8[0]}
