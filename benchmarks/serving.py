"""Serving benchmark: the runtime against PEFT on the real backbone, one run, a table and JSON.

    OMP_NUM_THREADS=2 python benchmarks/serving.py [--quick] [--out benchmarks/results/serving.json]

Measured (batch 32 x 64 tokens, fp32 unless said): the bare backbone; PEFT with one merged
adapter; PEFT with one unmerged adapter; PEFT mixed batches (``adapter_names``) with N distinct
adapters; the runtime with N distinct adapters, N in 1, 8, 64, 512 (PEFT up to --peft-max);
adapter load-to-servable latency p50/p99, runtime (registry resolve + sha256 + fingerprint +
shape checks + copy into a slot) against PEFT ``load_adapter``; memory per resident adapter
against its tensor bytes; HTTP end-to-end against in-process throughput; the 8-bit backbone
(bitsandbytes) against fp32. Adapters are r=8 LoRA on query/value (PEFT's own files, random
non-zero weights) with a 2-label head, published into a throwaway registry.

Targets: runtime with 64 distinct adapters >= 0.9x bare; load p50 <= 1/50 of PEFT's;
memory per resident adapter <= 1.1x its tensor bytes; HTTP >= 0.85x in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

# the paired-rounds timer the peers share (standard library only, so it runs in their venvs too)
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
from common import rounds  # noqa: E402

BATCH, TOKENS = 32, 64
LABELS = ["negative", "positive"]


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def make_adapters(backbone, root: Path, count: int, r: int = 8) -> list[Path]:
    """``count`` PEFT LoRA folders with 2-label heads under ``root`` (:func:`iter_adapters`)."""
    return list(iter_adapters(backbone, root, count, r))


def iter_adapters(backbone, root: Path, count: int, r: int = 8) -> Iterator[Path]:
    """``count`` PEFT LoRA folders (rank ``r`` on query/value) with 2-label heads, one at a time:
    one real ``save_pretrained``, then the same keys with fresh random values (a deep copy of
    the backbone per adapter would take minutes). Seeded: the same folders every run."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file

    template = root / "template"
    model = get_peft_model(
        copy.deepcopy(backbone.model),
        LoraConfig(r=r, lora_alpha=2 * r, target_modules=["query", "value"], lora_dropout=0.0),
    )
    model.save_pretrained(str(template), safe_serialization=True)
    del model
    keys = load_file(str(template / "adapter_model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    for index in range(count):
        folder = root / f"a{index}"
        folder.mkdir(parents=True)
        shutil.copyfile(template / "adapter_config.json", folder / "adapter_config.json")
        tensors = {k: torch.randn(v.shape, generator=generator) * 0.05 for k, v in keys.items()}
        save_file(tensors, str(folder / "adapter_model.safetensors"))
        head = {
            "weight": torch.randn(len(LABELS), backbone.hidden_size, generator=generator),
            "bias": torch.zeros(len(LABELS)),
        }
        save_file(
            head,
            str(folder / "head.safetensors"),
            metadata={"labels": json.dumps(LABELS), "task_type": "sequence"},
        )
        yield folder


def batch_inputs(vocab: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab - 1, (BATCH, TOKENS), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over rounds of time(denominator) / time(numerator): a throughput ratio."""
    return statistics.median(d / n for n, d in zip(numerator, denominator))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests")
    parser.add_argument("--backbone", default="multilingual-e5-small")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "serving.json"))
    parser.add_argument("--peft-max", type=int, default=64, help="largest N for PEFT mixed batches")
    parser.add_argument("--skip-8bit", action="store_true")
    args = parser.parse_args(argv)
    count_rounds = 3 if args.quick else 6
    ns = [1, 8, 64, 512]

    from peft import PeftModel

    from adapterhub.backbone import load_backbone
    from adapterhub.registry import publish
    from adapterhub.runtime import Runtime
    from adapterhub.runtime.runtime import Lease, Row

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results: dict = {
        "config": {
            "batch": BATCH,
            "tokens": TOKENS,
            "threads": torch.get_num_threads(),
            "quick": args.quick,
            "rounds": count_rounds,
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "load_average_at_start": os.getloadavg()[0],
        }
    }
    print("loading the backbone ...", flush=True)
    rss_start = rss_bytes()
    backbone = load_backbone(args.backbone, device="cpu")
    results["memory"] = {"backbone_rss_bytes": rss_bytes() - rss_start}
    inputs = batch_inputs(int(backbone.config["vocab_size"]))
    work = Path(tempfile.mkdtemp(prefix="adapterhub-bench-"))
    registry = work / "registry"
    try:
        count = max(ns)
        print(f"making and publishing {count} LoRA r=8 q/v adapters ...", flush=True)
        folders = make_adapters(backbone, work / "src", count)
        ids = [f"bench/a{i}@bench:1.0.0" for i in range(count)]
        for folder, adapter_id in zip(folders, ids):
            publish(folder, adapter_id, backbone=backbone, store=registry)

        # separate copies, so that no configuration sees another's wrappers or hooks
        bare_model = copy.deepcopy(backbone.model)
        merged_model = PeftModel.from_pretrained(copy.deepcopy(backbone.model), str(folders[0]))
        merged_model = merged_model.merge_and_unload().eval()
        peft_model = PeftModel.from_pretrained(
            copy.deepcopy(backbone.model), str(folders[0]), adapter_name="p0"
        ).eval()
        peft_ns = [n for n in ns if n <= args.peft_max]
        print(f"PEFT load_adapter x{max(peft_ns) - 1} ...", flush=True)
        peft_loads = []
        for index in range(1, max(peft_ns)):
            started = time.perf_counter()
            peft_model.load_adapter(str(folders[index]), adapter_name=f"p{index}")
            peft_loads.append(time.perf_counter() - started)

        print(f"runtime load x{count} (resolve + verify + copy into a slot) ...", flush=True)
        rss_before_runtime = rss_bytes()
        runtime = Runtime(backbone, registry=registry, max_resident=count)
        runtime_loads = []
        for adapter_id in ids:
            started = time.perf_counter()
            runtime.load(adapter_id)
            runtime_loads.append(time.perf_counter() - started)
        rss_after_runtime = rss_bytes()
        leases = [runtime.acquire(adapter_id) for adapter_id in ids]
        results["load_latency_ms"] = {
            "peft_load_adapter": {
                "p50": 1000 * percentile(peft_loads, 50),
                "p99": 1000 * percentile(peft_loads, 99),
                "count": len(peft_loads),
                "note": f"load_adapter with 1..{len(peft_loads)} adapters already loaded",
            },
            "runtime_load": {
                "p50": 1000 * percentile(runtime_loads, 50),
                "p99": 1000 * percentile(runtime_loads, 99),
                "count": len(runtime_loads),
                "note": "registry resolve + sha256 + fingerprint + shape checks + copy into a slot",
            },
        }
        stats = runtime.stats()
        head_bytes = sum(
            sum(t.numel() * t.element_size() for t in r.head)
            for r in runtime.residents.values()
            if r.head is not None
        )
        per_adapter_tensor = stats["tensor_bytes"] / stats["resident"]
        per_adapter_slots = (stats["bank_bytes"] + head_bytes) / stats["resident"]
        results["memory"].update(
            {
                "resident_adapters": stats["resident"],
                "tensor_bytes_per_adapter": per_adapter_tensor,
                "bank_bytes_per_adapter": per_adapter_slots,
                "ratio": per_adapter_slots / per_adapter_tensor,
                "bank_slots": max(b.capacity for b in runtime.banks.values()),
                "rss_growth_per_adapter": (rss_after_runtime - rss_before_runtime)
                / stats["resident"],
                "safetensors_file_bytes": (folders[0] / "adapter_model.safetensors").stat().st_size,
            }
        )

        def run_model(model, **extra):
            def call():
                with torch.inference_mode():
                    model(**inputs, **extra)

            return call

        configs = {
            "bare backbone": run_model(bare_model),
            "PEFT 1 adapter, merged": run_model(merged_model),
            "PEFT 1 adapter, unmerged": run_model(peft_model),
        }
        notes = {}
        for n in peft_ns:
            names = [f"p{i % n}" for i in range(BATCH)]
            configs[f"PEFT mixed, {n} distinct"] = run_model(peft_model, adapter_names=names)
            notes[f"PEFT mixed, {n} distinct"] = f"{min(n, BATCH)} per batch"
        idle = Lease((), runtime)
        idle_rows = [Row(idle, ids_.tolist(), mode="embed") for ids_ in inputs["input_ids"]]
        configs["runtime, no adapter (hooks idle)"] = lambda: runtime.forward(idle_rows)
        for n in ns:
            batches = [
                [
                    Row(leases[(b * BATCH + i) % n], inputs["input_ids"][i].tolist())
                    for i in range(BATCH)
                ]
                for b in range(4)
            ]
            cycle = iter(range(10**9))
            configs[f"runtime, {n} distinct"] = lambda batches=batches, cycle=cycle: (
                runtime.forward(batches[next(cycle) % 4])
            )
            notes[f"runtime, {n} distinct"] = f"{min(n, BATCH)} per batch (heads included)"
        print(f"throughput: {len(configs)} configurations x {count_rounds} rounds ...", flush=True)
        times = rounds(configs, count_rounds)
        bare_times = times["bare backbone"]
        results["throughput"] = {
            name: {
                "sentences_per_s": BATCH / statistics.median(values),
                "vs_bare": paired_ratio(values, bare_times),
                "vs_bare_best": min(bare_times) / min(values),
                "batch_s": values,
                "note": notes.get(name, ""),
            }
            for name, values in times.items()
        }
        for n in ns:
            if n not in peft_ns:
                results["throughput"][f"PEFT mixed, {n} distinct"] = {
                    "sentences_per_s": None,
                    "vs_bare": None,
                    "note": f"not run: --peft-max {args.peft_max} (PEFT load_adapter slows as adapters pile up)",
                }
        for lease in leases:
            lease.release()
        del merged_model, peft_model

        results["http"] = http_vs_inprocess(runtime, ids[:64], 2 if args.quick else 3, args.quick)
        if not args.skip_8bit:
            results["8bit"] = eight_bit(args.backbone, backbone, bare_model, inputs, count_rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


def report(results: dict) -> None:
    tp = results["throughput"]
    loads = results["load_latency_ms"]
    memory = results["memory"]
    http = results["http"]
    print(
        "\n| configuration | sentences/s (median) | x bare (paired median) | x bare (best of rounds) "
        "| note |\n|---|---:|---:|---:|---|"
    )
    for name, row in tp.items():
        if row["sentences_per_s"] is None:
            print(f"| {name} | - | - | - | {row['note']} |")
        else:
            print(
                f"| {name} | {row['sentences_per_s']:.1f} | {row['vs_bare']:.2f} | "
                f"{row['vs_bare_best']:.2f} | {row['note']} |"
            )
    print(
        f"\nload-to-servable p50/p99: runtime {loads['runtime_load']['p50']:.2f}/"
        f"{loads['runtime_load']['p99']:.2f} ms, PEFT load_adapter "
        f"{loads['peft_load_adapter']['p50']:.1f}/{loads['peft_load_adapter']['p99']:.1f} ms"
    )
    print(
        f"memory per resident adapter: {memory['bank_bytes_per_adapter'] / 1024:.1f} KiB in banks+head "
        f"vs {memory['tensor_bytes_per_adapter'] / 1024:.1f} KiB of tensors "
        f"(process RSS grew {memory['rss_growth_per_adapter'] / 1024:.1f} KiB per adapter)"
    )
    print(
        f"HTTP end-to-end {http['http_sentences_per_s']:.1f} sent/s vs in-process "
        f"{http['inprocess_sentences_per_s']:.1f} sent/s (paired ratio {http['ratio']:.2f})"
    )
    if "8bit" in results:
        e = results["8bit"]
        print(
            f"8-bit backbone: {e['sentences_per_s']:.1f} sent/s ({e['speed_vs_fp32']:.2f}x fp32, paired), "
            f"weights {e['weight_bytes'] / 2**20:.0f} MiB vs {e['fp32_weight_bytes'] / 2**20:.0f} MiB, "
            f"embedding cosine to fp32 {e['cosine_mean']:.4f} (min {e['cosine_min']:.4f})"
        )
        acc = e["published_adapter"]
        if "skipped" in acc:
            print(f"  published adapter accuracy: skipped ({acc['skipped']})")
        else:
            print(
                f"  {acc['adapter']} accuracy on {acc['test_texts']} test texts: fp32 "
                f"{acc['accuracy_fp32']:.3f}, 8-bit {acc['accuracy_8bit']:.3f}"
            )
    targets = {
        "runtime_64_vs_bare (paired median)": (tp["runtime, 64 distinct"]["vs_bare"], ">= 0.9"),
        "runtime_64_vs_bare (best of rounds)": (
            tp["runtime, 64 distinct"]["vs_bare_best"],
            ">= 0.9",
        ),
        "load_p50_runtime_over_peft": (
            loads["runtime_load"]["p50"] / loads["peft_load_adapter"]["p50"],
            "<= 0.02",
        ),
        "memory_per_adapter_over_tensor_bytes": (memory["ratio"], "<= 1.1"),
        "http_over_inprocess": (http["ratio"], ">= 0.85"),
    }
    results["targets"] = {k: {"value": v, "target": t} for k, (v, t) in targets.items()}
    print("\ntargets:")
    for key, (value, target) in targets.items():
        print(f"  {key:<40} {value:.3f}  (target {target})")


SENTENCES = [
    "The hotel room was clean and the staff were friendly, but breakfast was disappointing.",
    "Das Essen war ausgezeichnet und der Service sehr aufmerksam, wir kommen gerne wieder.",
    "Le film est beaucoup trop long et l'histoire ne tient pas debout, quelle déception.",
    "El libro tiene personajes memorables y una trama que te atrapa desde el principio.",
    "Il servizio clienti non ha mai risposto alle mie email, sono molto insoddisfatto.",
    "Dit product werkt precies zoals beschreven en de levering was bijzonder snel.",
    "这家餐厅的菜很好吃，但是价格有点贵，服务员的态度也一般。",
    "The battery lasts all day and the screen is bright enough to read in direct sunlight.",
]


def http_vs_inprocess(runtime, ids: list[str], count: int, quick: bool) -> dict:
    """Same texts, same adapters: through uvicorn + httpx (16 concurrent clients, 8 inputs per
    request), against tokenise + ``runtime.forward`` in batches of 32 in this process; the two
    alternate ``count`` times and the ratio is paired."""
    import httpx

    from adapterhub.runtime.runtime import format_prediction
    from adapterhub.server import ServerConfig, ServerThread, create_app

    total_requests = 32 if quick else 64
    per_request = 8
    jobs = [
        (ids[i % len(ids)], [SENTENCES[(i + j) % len(SENTENCES)] for j in range(per_request)])
        for i in range(total_requests)
    ]
    inputs_total = total_requests * per_request

    def inprocess() -> float:
        started = time.perf_counter()
        rows, leases = [], []
        for adapter, texts in jobs:
            lease = runtime.acquire(adapter)
            leases.append(lease)
            rows += [runtime.encode(t, lease) for t in texts]
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            for row, output in zip(chunk, runtime.forward(chunk)):
                format_prediction(row.lease, row, output)
        for lease in leases:
            lease.release()
        return time.perf_counter() - started

    # batches of about 32 rows of these ~30-token sentences, as in-process
    config = ServerConfig(max_batch_tokens=BATCH * 40, max_wait_ms=5, max_queue=4096)
    with ServerThread(create_app(runtime, config)) as server:

        async def fire() -> float:
            limits = httpx.Limits(max_connections=16)
            async with httpx.AsyncClient(timeout=300, limits=limits) as client:
                semaphore = asyncio.Semaphore(16)

                async def one(adapter, texts):
                    async with semaphore:
                        response = await client.post(
                            f"{server.url}/v1/predict", json={"adapter": adapter, "inputs": texts}
                        )
                        response.raise_for_status()

                started = time.perf_counter()
                await asyncio.gather(*(one(a, t) for a, t in jobs))
                return time.perf_counter() - started

        print("HTTP vs in-process ...", flush=True)
        asyncio.run(fire())  # warm-up
        http_times, inprocess_times = [], []
        for _ in range(count):
            http_times.append(asyncio.run(fire()))
            inprocess_times.append(inprocess())
    result = {
        "requests": total_requests,
        "inputs_per_request": per_request,
        "concurrency": 16,
        "http_sentences_per_s": inputs_total / statistics.median(http_times),
        "inprocess_sentences_per_s": inputs_total / statistics.median(inprocess_times),
        "ratio": paired_ratio(http_times, inprocess_times),
        "http_s": http_times,
        "inprocess_s": inprocess_times,
    }
    print(
        f"  HTTP {result['http_sentences_per_s']:.1f} sent/s vs in-process "
        f"{result['inprocess_sentences_per_s']:.1f} sent/s ({result['ratio']:.2f}x)",
        flush=True,
    )
    return result


def eight_bit(name, fp32_backbone, bare_model, inputs, count: int) -> dict:
    from adapterhub.backbone import load_backbone

    print("8-bit backbone (bitsandbytes) ...", flush=True)
    rss = rss_bytes()
    q = load_backbone(name, quantize="8bit", device="cpu")
    rss_8bit = rss_bytes() - rss

    def call(model):
        def run():
            with torch.inference_mode():
                model(**inputs)

        return run

    times = rounds({"fp32": call(bare_model), "8bit": call(q.model)}, count)

    def weight_bytes(model) -> int:
        return sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
            b.numel() * b.element_size() for b in model.buffers()
        )

    a = fp32_backbone.embed(SENTENCES)
    b = q.embed(SENTENCES)
    cosine = (a * b).sum(-1)
    accuracy = published_adapter_accuracy(fp32_backbone, q)
    return {
        "published_adapter": accuracy,
        "sentences_per_s": BATCH / statistics.median(times["8bit"]),
        "fp32_sentences_per_s": BATCH / statistics.median(times["fp32"]),
        "speed_vs_fp32": paired_ratio(times["8bit"], times["fp32"]),
        "weight_bytes": weight_bytes(q.model),
        "fp32_weight_bytes": weight_bytes(fp32_backbone.model),
        "rss_growth_loading_8bit": rss_8bit,
        "cosine_mean": float(cosine.mean()),
        "cosine_min": float(cosine.min()),
    }


def published_adapter_accuracy(
    fp32_backbone, q_backbone, adapter: str = "sentiment/de", lang: str = "de", limit: int = 256
) -> dict:
    """Accuracy of a published adapter on its language's test split, served by the runtime on
    the fp32 and on the 8-bit backbone (the same adapter file: the fingerprints agree)."""
    from adapterhub.data import load_dataset
    from adapterhub.errors import AdapterHubError
    from adapterhub.runtime import Runtime

    try:
        test = load_dataset("sentiment", [lang])["test"]
        Runtime(fp32_backbone).load(adapter)
    except AdapterHubError as exc:
        return {"adapter": adapter, "skipped": str(exc)}
    names = test.features["label"].names
    texts = list(test["text"][:limit])
    gold = [names[i] for i in test["label"][:limit]]
    predictions = {}
    for tag, backbone in (("fp32", fp32_backbone), ("8bit", q_backbone)):
        runtime = Runtime(backbone)
        labels = []
        for start in range(0, len(texts), BATCH):
            labels += [p["label"] for p in runtime.predict(adapter, texts[start : start + BATCH])]
        predictions[tag] = labels
    accuracy = {
        tag: sum(p == g for p, g in zip(labels, gold)) / len(gold)
        for tag, labels in predictions.items()
    }
    agreement = sum(a == b for a, b in zip(predictions["fp32"], predictions["8bit"])) / len(gold)
    print(
        f"  {adapter} on {len(gold)} {lang} test texts: accuracy fp32 {accuracy['fp32']:.3f}, "
        f"8-bit {accuracy['8bit']:.3f} (same label on {agreement:.1%})",
        flush=True,
    )
    return {
        "adapter": adapter,
        "test_texts": len(gold),
        "accuracy_fp32": accuracy["fp32"],
        "accuracy_8bit": accuracy["8bit"],
        "label_agreement": agreement,
    }


if __name__ == "__main__":
    sys.exit(main())
