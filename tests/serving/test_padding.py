"""Padding-free execution: ragged rows run as sub-batches of similar length, each with its own
adapter plan, and every row still equals its single-adapter reference."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
import torch
from serving_helpers import PREFIXES, ZOO, reference_logits, reference_model

from adapterhub.runtime.padding import bucket, forward_cost, padded_tokens, sub_batches

WORDS = [
    "der",
    "film",
    "ist",
    "gut",
    "le",
    "livre",
    "est",
    "long",
    "the",
    "plot",
    "was",
    "fun",
    "电影",
    "非常",
    "好",
    "het",
    "boek",
]


def _texts(rng: random.Random, count: int) -> list[str]:
    """Ragged texts: mostly short, a few long (as real reviews are), up to ~110 tokens."""
    lengths = [rng.choice([2, 3, 4, 6, 8, 12, 40, 90]) for _ in range(count)]
    return [" ".join(rng.choice(WORDS) for _ in range(n)) for n in lengths]


def _cost(lengths: list[int], groups: list[list[int]]) -> float:
    return sum(forward_cost(len(g), max(lengths[i] for i in g)) for g in groups)


def test_sub_batches_cover_every_row_once_in_length_order():
    rng = random.Random(0)
    for _ in range(200):
        lengths = [
            rng.choice([1, 5, 9, 17, 33, 70, 130, 300, 512]) for _ in range(rng.randint(1, 60))
        ]
        groups = sub_batches(lengths)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        flat = [lengths[i] for g in groups for i in g]
        assert flat == sorted(flat)  # contiguous runs of the length-sorted rows
        assert _cost(lengths, groups) <= forward_cost(len(lengths), max(lengths)) + 1e-9


def test_sub_batches_find_the_cheapest_split():
    """Against every split of the length-sorted buckets (exhaustive for small batches)."""
    rng = random.Random(1)
    for _ in range(60):
        lengths = [rng.randint(1, 400) for _ in range(rng.randint(2, 9))]
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        # runs of one bucket stay together; try every set of cuts between runs
        runs: list[list[int]] = []
        for i in order:
            if runs and bucket(lengths[runs[-1][-1]]) == bucket(lengths[i]):
                runs[-1].append(i)
            else:
                runs.append([i])
        best = float("inf")
        for cuts in itertools.product([False, True], repeat=len(runs) - 1):
            groups, current = [], list(runs[0])
            for cut, run in zip(cuts, runs[1:]):
                if cut:
                    groups.append(current)
                    current = []
                current += run
            groups.append(current)
            best = min(best, _cost(lengths, groups))
        assert _cost(lengths, sub_batches(lengths)) == pytest.approx(best)


def test_equal_lengths_stay_one_forward_and_ragged_ones_split():
    assert sub_batches([64] * 32) == [list(range(32))]
    assert sub_batches([]) == []
    ragged = [10] * 31 + [500]
    groups = sub_batches(ragged)
    assert groups == [list(range(31)), [31]]
    assert padded_tokens(ragged) == 32 * 500


@pytest.fixture(scope="module")
def runtime(tiny_backbone, zoo):
    from adapterhub.runtime import Runtime

    return Runtime(tiny_backbone, registry=zoo.registry, bank_chunk=4)


def test_ragged_mixed_adapter_batch_matches_single_adapter_references(runtime, tiny_backbone, zoo):
    """Mixed lengths and mixed adapters (LoRA, IA3, bottleneck, stacks, bare rows) in one
    call: split into several forwards, every row within 1e-5 of its adapter alone."""
    from adapterhub.runtime.runtime import Lease

    specs = [[i] for i, spec in ZOO.items() if spec[2] and spec[3] == "sequence"][:9]
    specs += [
        ["lang/de@team:1.0.0", "sentiment/de@team:1.0.0"],
        ["lang/nl@team:1.0.0", "topic/de@team:1.0.0"],
    ]
    rng = random.Random(2)
    leases, rows, expected = [], [], []
    for spec in specs:
        lease = runtime.acquire(spec)
        leases.append(lease)
        texts = _texts(rng, 4)
        model = reference_model(
            tiny_backbone, [zoo.folders[s] for s in spec], [zoo.methods[s] for s in spec]
        )
        expected += reference_logits(
            tiny_backbone, model, zoo.folders[spec[-1]], texts, prefix=PREFIXES.get(spec[-1], "")
        )
        rows += [runtime.encode(t, lease) for t in texts]
    bare_texts = _texts(rng, 4)
    bare = Lease((), runtime)
    rows += [runtime.encode(t, bare, mode="embed") for t in bare_texts]
    expected += reference_logits(tiny_backbone, tiny_backbone.model, None, bare_texts)
    order = list(range(len(rows)))
    rng.shuffle(order)
    batch = [rows[i] for i in order]
    lengths = [len(r.input_ids) for r in batch]
    assert len(sub_batches(lengths)) >= 2, "the texts must be ragged enough to split"
    before = dict(runtime.counters)
    outputs = runtime.forward(batch)
    forwards = runtime.counters["forwards"] - before["forwards"]
    padded = runtime.counters["padded_tokens"] - before["padded_tokens"]
    real = runtime.counters["real_tokens"] - before["real_tokens"]
    assert forwards == len(sub_batches(lengths)) >= 2
    assert real == sum(lengths)
    assert padded < padded_tokens(lengths)  # less than one forward padded to the longest
    for k, i in enumerate(order):
        got = outputs[k].logits if outputs[k].logits is not None else outputs[k].embedding
        want = expected[i]
        assert torch.allclose(got, want, atol=1e-5, rtol=0), (i, (got - want).abs().max())
    for lease in leases:
        lease.release()


# ---------------------------------------------------------------------------- the batcher


def _words(count: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(count))


def test_batcher_forwards_stay_within_the_budget_shortest_first(runtime):
    from adapterhub.config import ServerConfig
    from adapterhub.runtime.runtime import Lease
    from adapterhub.server.batching import Batcher

    batcher = Batcher(runtime, ServerConfig(max_batch_tokens=256))
    bare = Lease((), runtime)
    rng = random.Random(3)
    rows = [runtime.encode(_words(rng.choice([1, 3, 20, 60]), i), bare, "embed") for i in range(50)]
    forwards = list(batcher._forwards(rows))
    assert sorted(i for f in forwards for i in f) == list(range(len(rows)))
    longest = [max(len(rows[i].input_ids) for i in f) for f in forwards]
    assert longest == sorted(longest)  # shortest first: short requests are answered first
    for forward, width in zip(forwards, longest):
        assert len(forward) * width <= 256 or len(forward) == 1


def test_batcher_takes_what_fits_and_leaves_the_rest_first_in_line(runtime):
    """A request that does not fit the real-token budget waits; a later, shorter one that fits
    rides along; the next batch starts with the one left over."""
    from adapterhub.config import ServerConfig
    from adapterhub.runtime.runtime import Lease
    from adapterhub.server.batching import Batcher

    batcher = Batcher(runtime, ServerConfig(max_batch_tokens=100, max_wait_ms=0))
    bare = Lease((), runtime)
    sizes = [40, 50, 30, 10]  # words

    async def queue_them():
        rows = [[runtime.encode(_words(n), bare, "embed")] for n in sizes]
        tasks = [asyncio.ensure_future(batcher.submit(r)) for r in rows]
        await asyncio.sleep(0)
        return rows, tasks

    loop = asyncio.new_event_loop()
    try:
        rows, tasks = loop.run_until_complete(queue_them())
        tokens = [len(r[0].input_ids) for r in rows]
        assert tokens[0] + tokens[1] > 100 >= tokens[0] + tokens[2] + tokens[3]
        first = batcher._take()
        assert [w.rows for w in first] == [rows[0], rows[2], rows[3]]
        second = batcher._take()
        assert [w.rows for w in second] == [rows[1]]
        for task in tasks:
            task.cancel()
    finally:
        loop.close()


def test_batcher_answers_ragged_requests_exactly_and_short_ones_first(runtime, tiny_backbone, zoo):
    """Requests of mixed lengths and adapters in one gathered batch: each answer equals its
    single-adapter reference within 1e-5, the forwards are padded far less than one forward
    over all of them, and every short request is answered before the long one."""
    import time

    from adapterhub.config import ServerConfig
    from adapterhub.server.batching import Batcher

    specs = ["sentiment/de@team:1.0.0", "topic/de@team:1.0.0", "sentiment/nl@team:1.0.0"]
    texts = [_words(100, 1)] + [_words(n, n) for n in (2, 3, 4, 5, 6, 7, 2, 3)]
    expected = {}
    for spec in specs:
        model = reference_model(tiny_backbone, [zoo.folders[spec]], [zoo.methods[spec]])
        expected[spec] = reference_logits(tiny_backbone, model, zoo.folders[spec], texts)
    batcher = Batcher(runtime, ServerConfig(max_batch_tokens=4096, max_wait_ms=500))
    batcher.start()
    leases = [runtime.acquire(spec) for spec in specs]
    done: dict[int, float] = {}

    async def send():
        async def one(i: int):
            lease = leases[i % len(leases)]
            outputs = await batcher.submit([runtime.encode(texts[i], lease)])
            done[i] = time.perf_counter()
            return outputs[0]

        return await asyncio.gather(*(one(i) for i in range(len(texts))))

    before = dict(runtime.counters)
    try:
        outputs = asyncio.run(send())
    finally:
        batcher.stop()
        for lease in leases:
            lease.release()
    for i, output in enumerate(outputs):
        want = expected[specs[i % len(specs)]][i]
        assert torch.allclose(output.logits, want, atol=1e-5, rtol=0), i
    lengths = [len(runtime.encode(t, leases[0]).input_ids) for t in texts]
    padded = runtime.counters["padded_tokens"] - before["padded_tokens"]
    assert runtime.counters["forwards"] - before["forwards"] >= 2
    assert padded < 0.5 * padded_tokens(lengths)
    assert max(done[i] for i in range(1, len(texts))) < done[0]
