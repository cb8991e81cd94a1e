"""Embeddings per adapter over HTTP: TEI's ``POST /embed`` with 64 distinct retrieval adapters
(``X-Adapter-Id``) against the same server's bare backbone (no header), alternating, one run.

    OMP_NUM_THREADS=1 python benchmarks/embed.py [--texts 128] [--rounds 12] [--adapters 64]
        [--concurrency 64] [--threads 1] [--out benchmarks/results/embed.json]

Texts: ``--texts`` held-out sentences drawn with ``--seed`` from the test splits of
``udhr-pairs`` (articles of 437 languages and their English) and ``bible-pairs`` (Spanish verses
and their English), a third from each of the three sides, shuffled, each with e5's ``query: ``
prefix as ``retrieval/multi`` reads them. Adapters: ``retrieval/multi`` itself and variants of
it (its LoRA tensors, every one rank 8 on query/key/value/dense, each times ``1 + 0.05 N(0,1)``
elementwise: distinct weights, the published adapter's shapes and scale), published into a
throwaway registry as ``retrieval/vN@bench:1.0.0``. The server is ``adapterhub serve`` in its
own process (``--threads`` torch threads) with every variant preloaded. Each request is one
text; ``--concurrency`` clients send back to back until every text was sent once (closed
loop): the bare backbone's pass sends no header, the adapters' pass names the variants round
robin. The two passes alternate ``--rounds`` times, which one goes first alternating too, so a
change of load on a shared machine falls on both (short passes, many rounds: the load here moves
within a minute); the ratio is the mean of the rounds' ratios. ``forward_s``: the part of each
pass the server spent in forwards, from its ``/metrics``.
Before measuring, one text is embedded by the bare backbone and by every adapter and the
vectors are checked to be pairwise different (an adapter that was not applied fails the run).
After the server stops, the same texts run through ``Runtime.forward`` in this process in
batches of ``--concurrency`` rows (:func:`runtime_alone`): the mixed-adapter forward's own cost,
without HTTP and its noise, alternating the same way.

Goal (issue 15): 64 distinct adapters >= 0.9x the bare backbone's ``/embed`` throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).parent))
from realtexts import machine, percentile  # noqa: E402
from traffic import start_server, stats  # noqa: E402

SOURCE = "retrieval/multi"
PREFIX = "query: "
GOAL = 0.9
HEADER = "X-Adapter-Id"


def sentences(count: int, seed: int) -> list[dict]:
    """``count`` held-out sentences, a third from each side of the pair sets, shuffled."""
    from adapterhub.data import load_dataset

    rng = random.Random(seed)
    pools = {}
    for name in ("udhr-pairs", "bible-pairs"):
        test = load_dataset(name)["test"]
        pools[f"{name}:text"] = [(r["text"], r["lang"]) for r in test]
        pools[f"{name}:pair"] = [(r["pair"], r["pair_lang"]) for r in test]
    # English sides of both sets count as one pool: a third each of udhr xx, bible es, English
    english = sorted(set(pools.pop("udhr-pairs:pair") + pools.pop("bible-pairs:pair")))
    pools["english"] = english
    chosen: list[dict] = []
    for index, (name, pool) in enumerate(sorted(pools.items())):
        take = count // 3 + (1 if index < count % 3 else 0)
        picked = rng.sample(sorted(set(pool)), take)
        chosen += [{"text": PREFIX + text, "lang": lang, "source": name} for text, lang in picked]
    rng.shuffle(chosen)
    return chosen


def make_variants(root: Path, count: int) -> tuple[list[Path], dict]:
    """``count`` folders: ``retrieval/multi`` and ``count - 1`` perturbed copies of it; and the
    published manifest (its backbone reference and recipe, published with each)."""
    from adapterhub.registry import resolve

    source = Path(resolve(SOURCE))
    manifest = json.loads((source / "manifest.json").read_text())
    tensors = load_file(str(source / "adapter_model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    folders = []
    for index in range(count):
        folder = root / f"v{index}"
        folder.mkdir(parents=True)
        shutil.copyfile(source / "adapter_config.json", folder / "adapter_config.json")
        if index == 0:
            shutil.copyfile(
                source / "adapter_model.safetensors", folder / "adapter_model.safetensors"
            )
        else:
            varied = {
                key: value * (1 + 0.05 * torch.randn(value.shape, generator=generator))
                for key, value in tensors.items()
            }
            save_file(varied, str(folder / "adapter_model.safetensors"))
        folders.append(folder)
    return folders, manifest


async def _post(client, url: str, text: str, adapter: str | None) -> tuple[float, list[float]]:
    headers = {HEADER: adapter} if adapter else {}
    started = time.perf_counter()
    response = await client.post(url + "/embed", json={"inputs": text}, headers=headers)
    response.raise_for_status()
    return time.perf_counter() - started, response.json()[0]


async def closed_loop(url: str, jobs: list[tuple[str, str | None]], concurrency: int) -> dict:
    """``concurrency`` clients sending back to back until every (text, adapter) was sent once."""
    import httpx

    latencies: list[float] = []
    queue = iter(jobs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def worker():
            for text, adapter in queue:
                latency, _ = await _post(client, url, text, adapter)
                latencies.append(latency)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"requests": len(latencies), "seconds": seconds, "latencies": latencies}


async def vectors_of(url: str, text: str, adapters: list[str | None]) -> list[torch.Tensor]:
    import httpx

    async with httpx.AsyncClient(timeout=600) as client:
        answers = await asyncio.gather(*(_post(client, url, text, a) for a in adapters))
    return [torch.tensor(vector) for _, vector in answers]


def check_distinct(url: str, text: str, adapters: list[str]) -> dict:
    """Every adapter's embedding of ``text`` differs from the bare one's and from each other's:
    the adapters were applied, and are distinct. Raises if not."""
    vectors = torch.stack(asyncio.run(vectors_of(url, text, [None, *adapters])))
    gaps = torch.cdist(vectors, vectors)
    gaps.fill_diagonal_(float("inf"))
    closest = gaps.min().item()
    if closest < 1e-4:
        raise RuntimeError(f"two of the embeddings are equal (distance {closest:.2e})")
    return {
        "closest_pair_distance": closest,
        "adapter_to_bare_min": gaps[0, 1:].min().item(),
        "adapter_to_bare_max": gaps[0, 1:].max().item(),
    }


def forward_seconds(url: str) -> float:
    """Seconds the server's batcher has spent in forwards (``adapterhub_inference_seconds``)."""
    import httpx

    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("adapterhub_inference_seconds_sum"):
            return float(line.split()[-1])
    raise RuntimeError("/metrics has no adapterhub_inference_seconds_sum")


def measured(url: str, jobs: list[tuple[str, str | None]], concurrency: int) -> dict:
    """One closed-loop pass with the server's counters around it; ``forward_s``: the part of the
    pass the batcher spent in forwards (the rest: HTTP, queueing, the event loop)."""
    before, before_s = stats(url), forward_seconds(url)
    result = asyncio.run(closed_loop(url, jobs, concurrency))
    after, after_s = stats(url), forward_seconds(url)
    latencies = result.pop("latencies")
    delta = {k: after[k] - before[k] for k in ("forwards", "real_tokens", "padded_tokens")}
    return {
        **result,
        **delta,
        "forward_s": after_s - before_s,
        "sentences_per_forward_s": result["requests"] / max(1e-9, after_s - before_s),
        "sentences_per_s": result["requests"] / result["seconds"],
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "mean_s": statistics.mean(latencies),
        "rows_per_forward": result["requests"] / max(1, delta["forwards"]),
        "load_average": machine()["load_average"],
    }


def runtime_alone(
    registry: Path, backbone_name: str, texts: list[str], adapter_ids: list[str], args
) -> dict:
    """The same work without HTTP, in this process once the server has stopped: the texts in
    batches of ``--concurrency`` rows in arrival order (what the server's batcher holds with
    that many clients) through :meth:`Runtime.forward` (its length sub-batches and mixed-adapter
    forward), with the adapters of the HTTP pass against none, alternating ``--rounds`` times."""
    from adapterhub.backbone import load_backbone
    from adapterhub.runtime import Runtime

    torch.set_num_threads(args.threads)
    runtime = Runtime(load_backbone(backbone_name), registry=str(registry))
    leases = {None: runtime.acquire(None)}
    leases.update({a: runtime.acquire(a) for a in adapter_ids})
    plans = {
        "bare": [leases[None]] * len(texts),
        "adapters": [leases[adapter_ids[i % len(adapter_ids)]] for i in range(len(texts))],
    }
    size = args.concurrency

    def one_pass(name: str) -> float:
        rows = [runtime.encode(t, lease, "embed") for t, lease in zip(texts, plans[name])]
        started = time.perf_counter()
        for i in range(0, len(rows), size):
            runtime.forward(rows[i : i + size])
        return len(rows) / (time.perf_counter() - started)

    one_pass("bare"), one_pass("adapters")  # warm-up
    rounds = []
    for index in range(args.rounds):
        order = ("bare", "adapters") if index % 2 == 0 else ("adapters", "bare")
        rates = {name: one_pass(name) for name in order}
        rates["ratio"] = rates["adapters"] / rates["bare"]
        print(f"runtime alone, round {index + 1}: {rates}", flush=True)
        rounds.append(rates)
    return {"rounds": rounds, "ratio": statistics.mean(r["ratio"] for r in rounds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=128, help="sentences per pass")
    parser.add_argument("--rounds", type=int, default=12, help="bare/adapter pass pairs")
    parser.add_argument("--adapters", type=int, default=64, help="distinct adapters")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument("--backbone", default="multilingual-e5-small")
    parser.add_argument("--server-arg", action="append", default=[], help="extra serve flag")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "embed.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from adapterhub.registry import publish

    started = time.perf_counter()
    results: dict = {
        "config": {
            **{k: v for k, v in vars(args).items() if k != "out"},
            "torch": torch.__version__,
            "route": "POST /embed (TEI), one text per request",
        },
        "machine_at_start": machine(),
    }
    print(f"machine: {results['machine_at_start']}", flush=True)
    items = sentences(args.texts, args.seed)
    texts = [item["text"] for item in items]
    results["texts"] = {
        "count": len(texts),
        "languages": len({item["lang"] for item in items}),
        "by_source": {s: sum(i["source"] == s for i in items) for s in sorted({i["source"] for i in items})},
        "median_chars": statistics.median(len(t) for t in texts),
    }  # fmt: skip
    work = Path(tempfile.mkdtemp(prefix="adapterhub-embed-"))
    server = None
    try:
        print(f"making and publishing {args.adapters} retrieval adapters ...", flush=True)
        folders, manifest = make_variants(work / "src", args.adapters)
        adapter_ids = [f"retrieval/v{i}@bench:1.0.0" for i in range(args.adapters)]
        for folder, adapter_id in zip(folders, adapter_ids):
            publish(
                folder,
                adapter_id,
                backbone=manifest["backbone"],
                recipe=manifest["recipe"],
                store=work / "registry",
            )
        extra = ["--backbone", args.backbone, *args.server_arg]
        print(f"starting the server ({' '.join(extra)}) ...", flush=True)
        server, url = start_server(
            work / "registry", args.threads, extra, work / "server.log", "retrieval/*@bench"
        )
        results["server"] = {"flags": extra, "threads": args.threads}
        results["distinct"] = check_distinct(url, texts[0], adapter_ids)
        print(f"embeddings distinct: {results['distinct']}", flush=True)
        plans = {
            "bare": [(text, None) for text in texts],
            "adapters": [(text, adapter_ids[i % args.adapters]) for i, text in enumerate(texts)],
        }
        warm = texts[: args.concurrency]
        for name in plans:  # warm-up: first forwards of each length are slow
            asyncio.run(closed_loop(url, [(t, a) for t, a in plans[name][: len(warm)]], 16))
        rounds = []
        for index in range(args.rounds):
            order = ("bare", "adapters") if index % 2 == 0 else ("adapters", "bare")
            one = {}
            for name in order:
                one[name] = measured(url, plans[name], args.concurrency)
                print(
                    f"round {index + 1}, {name}: {one[name]['sentences_per_s']:.2f} sentences/s, "
                    f"{one[name]['rows_per_forward']:.1f} rows/forward, "
                    f"p50 {one[name]['p50_s']:.2f} s, load {one[name]['load_average']}",
                    flush=True,
                )
            one["ratio"] = one["adapters"]["sentences_per_s"] / one["bare"]["sentences_per_s"]
            one["forward_ratio"] = (
                one["adapters"]["sentences_per_forward_s"] / one["bare"]["sentences_per_forward_s"]
            )
            rounds.append(one)
        results["rounds"] = rounds
        server.terminate()
        server.wait(timeout=60)
        server = None
        results["runtime_alone"] = runtime_alone(
            work / "registry", args.backbone, texts, adapter_ids, args
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    results["machine_at_end"] = machine()
    results["wall_s"] = time.perf_counter() - started
    summarize(results, args.adapters)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    out.with_suffix(".md").write_text(results["markdown"])
    print(results["markdown"])
    print(f"wrote {out} ({results['wall_s'] / 60:.1f} min)")
    return 0


def summarize(results: dict, count: int) -> None:
    """The mean rates, the ratio and the goal, and a Markdown table (into ``results``)."""
    rounds = results["rounds"]
    ratios = [r["ratio"] for r in rounds]
    ratio = statistics.mean(ratios)
    results["summary"] = {
        "bare_sentences_per_s": statistics.mean(r["bare"]["sentences_per_s"] for r in rounds),
        "adapters_sentences_per_s": statistics.mean(
            r["adapters"]["sentences_per_s"] for r in rounds
        ),
        "ratio": ratio,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "runtime_alone_ratio": results["runtime_alone"]["ratio"],
        "forward_time_ratio": statistics.mean(r["forward_ratio"] for r in rounds),
        "forward_share_bare": statistics.mean(
            r["bare"]["forward_s"] / r["bare"]["seconds"] for r in rounds
        ),
        "forward_share_adapters": statistics.mean(
            r["adapters"]["forward_s"] / r["adapters"]["seconds"] for r in rounds
        ),
        "goal": f"{count} adapters >= {GOAL}x bare /embed throughput",
        "met": ratio >= GOAL,
    }
    start, end = results["machine_at_start"], results["machine_at_end"]
    lines = [
        f"# /embed throughput: {count} distinct retrieval adapters against the bare backbone",
        "",
        f"`benchmarks/embed.py`, {results['texts']['count']} held-out sentences "
        f"({results['texts']['languages']} languages) one per request, "
        f"{results['config']['concurrency']} concurrent clients, server with "
        f"{results['server']['threads']} torch thread(s) on {start['cpu']} "
        f"({', '.join(start['flags'])}; {start['cores']} cores, load {start['load_average']} "
        f"at start, {end['load_average']} at end).",
        "",
        "| round | bare sentences/s | adapters sentences/s | ratio | ratio of forward time "
        "alone | rows/forward bare / adapters | p50 s bare / adapters |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for index, r in enumerate(rounds, 1):
        b, a = r["bare"], r["adapters"]
        lines.append(
            f"| {index} | {b['sentences_per_s']:.2f} | {a['sentences_per_s']:.2f} | "
            f"{r['ratio']:.3f} | {r['forward_ratio']:.3f} | "
            f"{b['rows_per_forward']:.1f} / {a['rows_per_forward']:.1f} | "
            f"{b['p50_s']:.2f} / {a['p50_s']:.2f} |"
        )
    s = results["summary"]
    lines += [
        "",
        f"Mean ratio {s['ratio']:.3f} (median {s['ratio_median']:.3f}, rounds "
        f"{s['ratio_min']:.3f}-{s['ratio_max']:.3f}): goal {s['goal']} "
        f"{'met' if s['met'] else 'MISSED'}.",
        "",
        f"Counting only the server's time in forwards (`adapterhub_inference_seconds`): adapters "
        f"/ bare {s['forward_time_ratio']:.3f}; forwards took {s['forward_share_bare']:.0%} of "
        f"the bare passes' wall time and {s['forward_share_adapters']:.0%} of the adapters'.",
        "",
        f"The same texts through `Runtime.forward` without HTTP (batches of "
        f"{results['config']['concurrency']} rows in arrival order, alternating): adapters / "
        f"bare {s['runtime_alone_ratio']:.3f} (rounds "
        + ", ".join(f"{r['ratio']:.3f}" for r in results["runtime_alone"]["rounds"])
        + ").",
    ]
    results["markdown"] = "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
