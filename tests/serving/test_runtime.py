"""The runtime against its references: every row of a mixed batch equals the single adapter."""

from __future__ import annotations

import random

import pytest
import torch
from serving_helpers import PREFIXES, ZOO, reference_logits, reference_model

TEXTS = [
    "the film was very good",
    "der film ist nicht gut",
    "le livre est très bon et un peu long",
    "el libro es malo",
    "i love this book",
    "het boek is heel slecht",
    "电影 非常 好",
    "boring plot and a terrible actor but the story is fun",
]


@pytest.fixture(scope="module")
def runtime(tiny_backbone, zoo):
    from adapterhub.runtime import Runtime

    return Runtime(tiny_backbone, registry=zoo.registry, bank_chunk=4)


def _specs():
    specs = [[adapter_id] for adapter_id, spec in ZOO.items() if spec[2] and spec[3] == "sequence"]
    specs += [
        ["lang/de@team:1.0.0", "sentiment/de@team:1.0.0"],  # LoRA + LoRA: deltas add
        ["lang/nl@team:1.0.0", "sentiment/nl@team:1.0.0"],  # bottleneck, then bottleneck
        ["lang/de@team:1.0.0", "sentiment/nl@team:1.0.0"],  # LoRA + bottleneck
        ["lang/nl@team:1.0.0", "topic/de@team:1.0.0"],  # bottleneck + IA3
    ]
    return specs


def test_mixed_batch_matches_single_adapter_references(runtime, tiny_backbone, zoo):
    from adapterhub.runtime.runtime import Lease

    specs = _specs()
    rng = random.Random(0)
    leases, rows, expected = [], [], []
    for spec in specs:
        lease = runtime.acquire(spec)
        leases.append(lease)
        texts = rng.sample(TEXTS, 3)
        model = reference_model(
            tiny_backbone, [zoo.folders[s] for s in spec], [zoo.methods[s] for s in spec]
        )
        expected += reference_logits(
            tiny_backbone, model, zoo.folders[spec[-1]], texts, prefix=PREFIXES.get(spec[-1], "")
        )
        rows += [runtime.encode(t, lease) for t in texts]
    # rows without any adapter ride in the same batch and get the bare backbone's embedding
    bare = Lease((), runtime)
    plain = [runtime.encode(t, bare, mode="embed") for t in TEXTS[:3]]
    order = list(range(len(rows) + len(plain)))
    rng.shuffle(order)
    batch = [(rows + plain)[i] for i in order]
    outputs = runtime.forward(batch)
    by_index = {i: outputs[k] for k, i in enumerate(order)}
    for i, want in enumerate(expected):
        got = by_index[i].logits
        assert torch.allclose(got, want, atol=1e-5, rtol=0), (i, (got - want).abs().max())
    bare_ref = reference_logits(tiny_backbone, tiny_backbone.model, None, TEXTS[:3], prefix="")
    for j, want in enumerate(bare_ref):
        got = by_index[len(rows) + j].embedding
        assert torch.allclose(got, want, atol=1e-5, rtol=0)
    for lease in leases:
        lease.release()


def test_token_task_reads_first_subtoken_of_each_word(runtime, tiny_backbone, zoo):
    adapter_id = "pos/de@team:1.0.0"
    texts = ["der film ist nicht gut", "das buch ist sehr schlecht und langweilig"]
    model = reference_model(tiny_backbone, [zoo.folders[adapter_id]], ["lora"])
    want = reference_logits(tiny_backbone, model, zoo.folders[adapter_id], texts, token=True)
    with runtime.acquire(adapter_id) as lease:
        rows = [runtime.encode(t, lease) for t in texts]
        outputs = runtime.forward(rows)
    for output, expected, text in zip(outputs, want, texts):
        assert output.logits.shape == (len(text.split()), 5)
        assert torch.allclose(output.logits, expected, atol=1e-5, rtol=0)
    result = runtime.predict(adapter_id, texts[:1])
    assert [t["word"] for t in result[0]["tokens"]] == texts[0].split()


def test_adapter_changes_output_and_unpinned_rows_pay_nothing(runtime, tiny_backbone):
    from adapterhub.runtime.runtime import Lease

    bare = Lease((), runtime)
    with runtime.acquire("sentiment/de@team:1.0.0") as lease:
        rows = [
            runtime.encode("der film", lease, mode="embed"),
            runtime.encode("der film", bare, mode="embed"),
        ]
        adapted, plain = runtime.forward(rows)
    assert (adapted.embedding - plain.embedding).abs().max() > 1e-3
    # hooks installed but idle: the backbone alone gives the same numbers
    want = reference_logits(tiny_backbone, tiny_backbone.model, None, ["der film"], prefix="")[0]
    assert torch.allclose(plain.embedding, want, atol=1e-6)


def test_short_id_resolves_to_newest_version(runtime):
    with runtime.acquire("sentiment/de@team") as lease:
        assert lease.ids == ["sentiment/de@team:1.1.0"]


def test_lru_eviction_under_max_resident_keeps_answers_exact(tiny_backbone, zoo):
    from adapterhub.runtime import Runtime

    small = Runtime(tiny_backbone, registry=zoo.registry, max_resident=3)
    bulk = [f"topic/x{n}@bulk:1.0.0" for n in range(8)]
    first = {a: small.predict(a, TEXTS[:2]) for a in bulk}
    # a second runtime on the same model shares its hooks (installed once) and stays exact
    model = reference_model(tiny_backbone, [zoo.folders[bulk[0]]], ["lora"])
    want = reference_logits(tiny_backbone, model, zoo.folders[bulk[0]], TEXTS[:2])
    for got, logits in zip(first[bulk[0]], want):
        probs = torch.softmax(logits, -1).tolist()
        assert [
            abs(got["scores"][k] - p) < 1e-5 for k, p in zip(("books", "films", "food"), probs)
        ] == [True] * 3
    assert small.stats()["resident"] == 3
    assert small.stats()["evictions"] == 5
    assert list(small.residents) == bulk[-3:]
    # reloading evicted adapters into reused slots gives the same answers
    for a in bulk:
        again = small.predict(a, TEXTS[:2])
        for x, y in zip(first[a], again):
            assert x["label"] == y["label"]
            for label in x["scores"]:
                assert abs(x["scores"][label] - y["scores"][label]) < 1e-6


def test_pinned_adapters_are_not_evicted(tiny_backbone, zoo):
    """A pinned adapter is never evicted, and the pool never goes over --max-resident for a
    load that needs one more: it waits for the pin, then fails with OverloadError (429)."""
    from adapterhub.errors import OverloadError
    from adapterhub.runtime import Runtime

    small = Runtime(tiny_backbone, registry=zoo.registry, max_resident=1, room_wait_s=0.3)
    lease = small.acquire("topic/x0@bulk:1.0.0")
    with pytest.raises(OverloadError, match="max-resident"):
        small.acquire("topic/x1@bulk:1.0.0")
    assert set(small.residents) == {"topic/x0@bulk:1.0.0"}
    row = small.encode("the film", lease)
    (out,) = small.forward([row])
    lease.release()
    with small.acquire("topic/x1@bulk:1.0.0") as other:  # the pin is gone: x0 is evicted
        assert other.ids == ["topic/x1@bulk:1.0.0"]
    assert list(small.residents) == ["topic/x1@bulk:1.0.0"]
    assert out.logits.shape == (3,)


def test_memory_budget_counts_slot_bytes(tiny_backbone, zoo):
    from adapterhub.runtime import Runtime

    probe = Runtime(tiny_backbone, registry=zoo.registry)
    one = probe.load("topic/x0@bulk:1.0.0")
    assert one.slot_bytes == one.tensor_bytes  # stacked slots hold exactly the adapter's tensors
    budget_mb = 2.5 * one.slot_bytes / 2**20
    small = Runtime(tiny_backbone, registry=zoo.registry, memory_budget_mb=budget_mb)
    for n in range(5):
        small.load(f"topic/x{n}@bulk:1.0.0")
    assert small.stats()["resident"] == 2
    assert small.stats()["resident_bytes"] <= budget_mb * 2**20


def test_unload_while_in_use_finishes_the_request(tiny_backbone, zoo):
    from adapterhub.runtime import Runtime

    rt = Runtime(tiny_backbone, registry=zoo.registry)
    lease = rt.acquire("topic/x2@bulk:1.0.0")
    row = rt.encode("the film", lease)
    before = rt.forward([row])[0].logits
    assert rt.unload("topic/x2@bulk:1.0.0")
    assert "topic/x2@bulk:1.0.0" not in rt.residents
    rt.load("topic/x3@bulk:1.0.0")  # must not take the slot still held by the lease
    after = rt.forward([row])[0].logits
    assert torch.equal(before, after)
    lease.release()


def test_gather_path_equals_in_place_span_path(runtime, tiny_backbone):
    """Rows whose bank groups are not contiguous take the gather/scatter path: same numbers."""
    from adapterhub.runtime.batched import build_plan, plan_scope

    specs = [["sentiment/de@team:1.0.0"], ["topic/de@team:1.0.0"], ["sentiment/nl@team:1.0.0"]]
    leases = [runtime.acquire(s) for s in specs]
    rows = [runtime.encode(t, leases[i % 3]) for i, t in enumerate(TEXTS[:6])]
    ids = torch.full((6, max(len(r.input_ids) for r in rows)), 1)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
        mask[i, : len(r.input_ids)] = 1
    entries = [[a.entries for a in r.lease.adapters] for r in rows]
    outputs = []
    for force_gather in (False, True):
        plan = build_plan(entries, "cpu")
        spans = [
            g
            for step in plan.values()
            for kind in ("lora", "ia3_in", "ia3_out", "bottleneck")
            for g in getattr(step, kind)
        ]
        assert spans and all(g.span is None for g in spans)  # interleaved rows: no span
        if not force_gather:
            # the same batch sorted by adapter: every group is a span
            order = [0, 3, 1, 4, 2, 5]
            plan = build_plan([entries[i] for i in order], "cpu")
            groups = [
                g
                for step in plan.values()
                for kind in ("lora", "ia3_in", "ia3_out", "bottleneck")
                for g in getattr(step, kind)
            ]
            assert all(g.span is not None for g in groups)
            with torch.inference_mode(), plan_scope(plan):
                hidden = tiny_backbone.model(
                    input_ids=ids[order], attention_mask=mask[order]
                ).last_hidden_state
            unsorted = torch.empty_like(hidden)
            unsorted[order] = hidden
            outputs.append(unsorted)
        else:
            with torch.inference_mode(), plan_scope(plan):
                outputs.append(
                    tiny_backbone.model(input_ids=ids, attention_mask=mask).last_hidden_state
                )
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)
    for lease in leases:
        lease.release()


def test_runtime_on_the_8bit_backbone(tiny_backbone_path, tiny_backbone, zoo):
    """--quantize 8bit: the hooks wrap bitsandbytes' Linear8bitLt just the same."""
    from adapterhub.backbone import load_backbone
    from adapterhub.runtime import Runtime

    quantized = load_backbone(str(tiny_backbone_path), quantize="8bit", device="cpu")
    assert quantized.fingerprint == tiny_backbone.fingerprint  # the same adapters load on it
    rt8 = Runtime(quantized, registry=zoo.registry)
    fp32 = Runtime(tiny_backbone, registry=zoo.registry)
    for spec in (["sentiment/de@team:1.0.0"], ["topic/de@team:1.0.0"], ["sentiment/nl@team:1.0.0"]):
        got = rt8.predict(spec, TEXTS[:4])
        want = fp32.predict(spec, TEXTS[:4])
        for g, w in zip(got, want):
            for label, value in w["scores"].items():
                assert abs(g["scores"][label] - value) < 0.1  # 8-bit weights: close, not equal
    # and the adapter really applies on the 8-bit Linears: adapted 8-bit states sit near the
    # adapted fp32 ones, far from the bare 8-bit ones
    from adapterhub.runtime.runtime import Lease

    for spec in ("sentiment/de@team:1.0.0", "topic/de@team:1.0.0", "sentiment/nl@team:1.0.0"):
        with rt8.acquire(spec) as lease8, fp32.acquire(spec) as lease32:
            adapted8 = rt8.forward([rt8.encode(TEXTS[0], lease8, mode="embed")])[0].embedding
            bare8 = rt8.forward([rt8.encode(TEXTS[0], Lease((), rt8), mode="embed")])[0].embedding
            adapted32 = fp32.forward([fp32.encode(TEXTS[0], lease32, mode="embed")])[0].embedding
        assert (adapted8 - adapted32).norm() < 0.5 * (adapted8 - bare8).norm(), spec
