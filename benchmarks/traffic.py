"""Real traffic against the real server: ragged multilingual reviews, open-loop Poisson arrivals and
a closed-loop saturation run over HTTP on loopback, with 1 / 64 / 512 distinct adapters; in the
same run the bare backbone in arrival order and length-sorted (the limit).

    OMP_NUM_THREADS=1 python benchmarks/traffic.py [--per-lang 32] [--threads 1] [--quick]
        [--dtype bf16 | --quantize int8] [--device cuda] [--out benchmarks/results/traffic.json]

Texts: ``--per-lang`` sentiment test reviews of each of de/en/fr/nl/zh, drawn and shuffled with
``--seed`` (:mod:`realtexts`). Adapters: r=8 LoRA on query/value with random non-zero weights
and a 2-label head, made as ``benchmarks/serving.py`` makes them and published into a throwaway
registry. The server is ``adapterhub serve`` in its own process (``--threads`` torch threads)
with every adapter preloaded; each request is one text for one adapter (round-robin over the
first N). Per adapter count: a closed-loop run (``--concurrency`` clients sending back to back
until every text was sent once) gives the saturation throughput; then open-loop runs with
Poisson arrivals at ``--rates`` times it (each at most ``--seconds`` long and at most one pass
over the texts). The bare backbone (this process, same threads, while the server is idle) runs
every text in batches of 32, in arrival order and sorted by length, before and after the
server runs; ratios use the mean of its two sorted runs. Padded tokens are the server's own
counters (``/v1/stats``: positions its forwards computed) against the texts' real tokens.

Goals: at saturation, 64 adapters >= 0.9x and 512 >= 0.8x the length-sorted bare backbone;
p99 <= 2x p50 at half the saturation rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from realtexts import machine, percentile, review_texts  # noqa: E402
from serving import make_adapters  # noqa: E402

BATCH = 32
MAX_TOKENS = 512


def tokenize(backbone, texts: list[str]) -> list[list[int]]:
    """Token ids as the server reads these adapters' inputs (no recipe prefix, cut at 512)."""
    from adapterhub.tasks.base import encode_text

    return [encode_text(backbone.tokenizer, t, MAX_TOKENS).input_ids for t in texts]


def bare_pass(model, batches: list[list[list[int]]], pad: int) -> float:
    """Seconds for the backbone over these batches (padded to each batch's longest) + pooling."""
    from adapterhub.backbone import mean_pool
    from adapterhub.tasks.base import pad_batch

    device = next(model.parameters()).device
    started = time.perf_counter()
    with torch.inference_mode():
        for rows in batches:
            batch = {k: v.to(device) for k, v in pad_batch(rows, pad).items()}
            hidden = model(**batch).last_hidden_state
            mean_pool(hidden.float(), batch["attention_mask"]).cpu()  # waits for the device
    return time.perf_counter() - started


def in_batches(rows: list[list[int]], size: int = BATCH) -> list[list[list[int]]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def padded(batches: list[list[list[int]]]) -> int:
    return sum(len(b) * max(len(r) for r in b) for b in batches)


def sub_batched(ids: list[list[int]], budget: int = 8192) -> list[list[list[int]]]:
    """All texts as the server's batcher would run them were they queued at once: sub-batches of
    similar length (the runtime's cost model), each at most ``budget`` padded tokens."""
    from adapterhub.runtime.padding import sub_batches

    batches = []
    for group in sub_batches([len(r) for r in ids]):
        rows = [ids[i] for i in group]
        per = max(1, budget // max(len(r) for r in rows))
        batches += [rows[i : i + per] for i in range(0, len(rows), per)]
    return batches


def service_floor(model, ids: list[list[int]], pad: int) -> dict:
    """Seconds of one forward of the median-length text alone and of the 99th-percentile one:
    their ratio is the p99/p50 latency that ragged traffic has before any queueing."""
    ordered = sorted(ids, key=len)
    picks = {"p50": ordered[len(ordered) // 2], "p99": ordered[round(0.99 * (len(ordered) - 1))]}
    seconds = {k: min(bare_pass(model, [[row]], pad) for _ in range(3)) for k, row in picks.items()}
    return {
        "p50_tokens": len(picks["p50"]),
        "p99_tokens": len(picks["p99"]),
        "p50_s": seconds["p50"],
        "p99_s": seconds["p99"],
        "p99_over_p50": seconds["p99"] / seconds["p50"],
    }


def bare_runs(model, ids: list[list[int]], pad: int, which: tuple[str, ...]) -> dict:
    arrival = in_batches(ids)
    ordered = in_batches(sorted(ids, key=len))
    plans = {"arrival": arrival, "sorted": ordered, "sub-batched": sub_batched(ids)}
    bare_pass(model, [ordered[-1][:4], ordered[0][:4]], pad)  # warm-up: first calls are slow
    result = {}
    for name in which:
        seconds = bare_pass(model, plans[name], pad)
        result[name] = {
            "seconds": seconds,
            "sentences_per_s": len(ids) / seconds,
            "padded_tokens": padded(plans[name]),
        }
        print(f"  bare, {name}: {len(ids) / seconds:.2f} sentences/s", flush=True)
    return result


# ---------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    registry: Path, threads: int, extra: list[str], log: Path, preload: str = "bench/*@bench"
) -> tuple:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "adapterhub", "serve", "--registry", str(registry)]
    command += ["--preload", preload, "--port", str(port), *extra]
    process = subprocess.Popen(command, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError("the server did not become ready in 600 s")


async def _post(client, url: str, adapter: str, text: str) -> float:
    started = time.perf_counter()
    response = await client.post(url + "/v1/predict", json={"adapter": adapter, "inputs": [text]})
    response.raise_for_status()
    return time.perf_counter() - started


async def closed_loop(url: str, jobs: list[tuple[str, str]], concurrency: int) -> dict:
    """``concurrency`` clients sending back to back until every job was sent once."""
    import httpx

    latencies: list[float] = []
    queue = iter(jobs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def worker():
            for adapter, text in queue:
                latencies.append(await _post(client, url, adapter, text))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {"requests": len(latencies), "seconds": seconds, "latencies": latencies}


async def open_loop(url: str, jobs: list[tuple[str, str]], rate: float, seed: int) -> dict:
    """Poisson arrivals at ``rate`` requests/s: each sent at its time, whatever is in flight."""
    import httpx

    rng = random.Random(seed)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        arrival = 0.0
        tasks = []

        async def one(at: float, adapter: str, text: str):
            await asyncio.sleep(max(0.0, started + at - time.perf_counter()))
            latencies.append(await _post(client, url, adapter, text))

        for adapter, text in jobs:
            arrival += rng.expovariate(rate)
            tasks.append(asyncio.create_task(one(arrival, adapter, text)))
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - started
    return {"requests": len(latencies), "seconds": seconds, "latencies": latencies}


def stats(url: str) -> dict:
    import httpx

    return httpx.get(url + "/v1/stats", timeout=30).json()["pool"]


def point(url: str, run, real_tokens: int) -> dict:
    """One measured run with the server's token counters around it."""
    before = stats(url)
    result = asyncio.run(run)
    after = stats(url)
    latencies = result.pop("latencies")
    delta = {k: after[k] - before[k] for k in ("forwards", "real_tokens", "padded_tokens")}
    return {
        **result,
        "sentences_per_s": result["requests"] / result["seconds"],
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "mean_s": statistics.mean(latencies),
        "forwards": delta["forwards"],
        "real_tokens": delta["real_tokens"],
        "padded_tokens": delta["padded_tokens"],
        "texts_real_tokens": real_tokens,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-lang", type=int, default=32, help="test reviews per language")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--adapters", default="1,64,512", help="distinct adapter counts")
    parser.add_argument("--rates", default="0.25,0.5,0.75", help="fractions of saturation")
    parser.add_argument("--seconds", type=float, default=30.0, help="longest open-loop run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument("--backbone", default="multilingual-e5-small")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--quantize", choices=["int8", "8bit"], default=None)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (the server picks it too)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra serve flag")
    parser.add_argument("--quick", action="store_true", help="8 texts a language, 1 and 64")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "traffic.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.per_lang, args.adapters, args.rates, args.seconds = 8, "1,64", "0.5", 15.0
    counts = [int(n) for n in args.adapters.split(",")]
    rates = [float(r) for r in args.rates.split(",")]
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from adapterhub.backbone import load_backbone
    from adapterhub.registry import publish
    from adapterhub.tasks.base import pad_id

    started = time.perf_counter()
    results: dict = {
        "config": {
            **{k: v for k, v in vars(args).items() if k != "out"},
            "torch": torch.__version__,
            "requests_note": "one pass over the texts per point (fewer for short open-loop runs): "
            "p99 of so few requests is close to their maximum",
        },
        "machine_at_start": machine(),
    }
    print(f"machine: {results['machine_at_start']}", flush=True)
    items = review_texts(args.per_lang, args.seed)
    texts = [item["text"] for item in items]
    backbone = load_backbone(args.backbone, device=args.device)
    ids = tokenize(backbone, texts)
    lengths = sorted(len(r) for r in ids)
    results["texts"] = {
        "count": len(texts),
        "langs": sorted({item["lang"] for item in items}),
        "real_tokens": sum(lengths),
        "median_tokens": statistics.median(lengths),
        "mean_tokens": statistics.mean(lengths),
        "max_tokens": lengths[-1],
    }
    print(f"texts: {results['texts']}", flush=True)
    pad = pad_id(backbone.tokenizer)
    print("bare backbone (fp32) ...", flush=True)
    which = ("arrival", "sorted", "sub-batched")
    results["bare_before"] = bare_runs(backbone.model, ids, pad, which)
    results["service_floor"] = service_floor(backbone.model, ids, pad)
    print(f"  one text alone: {results['service_floor']}", flush=True)
    low = None
    if args.dtype != "fp32" or args.quantize:
        low = load_backbone(
            args.backbone, device=args.device, dtype=args.dtype, quantize=args.quantize
        )
        tag = args.quantize or args.dtype
        print(f"bare backbone ({tag}) ...", flush=True)
        results[f"bare_{tag}_before"] = bare_runs(low.model, ids, pad, ("sorted",))

    work = Path(tempfile.mkdtemp(prefix="adapterhub-traffic-"))
    server = None
    try:
        count = max(counts)
        print(f"making and publishing {count} LoRA adapters ...", flush=True)
        folders = make_adapters(backbone, work / "src", count)
        adapter_ids = [f"bench/a{i}@bench:1.0.0" for i in range(count)]
        for folder, adapter_id in zip(folders, adapter_ids):
            publish(folder, adapter_id, backbone=backbone, store=work / "registry")
        extra = ["--backbone", args.backbone, "--dtype", args.dtype, *args.server_arg]
        if args.quantize:
            extra = ["--backbone", args.backbone, "--quantize", args.quantize, *args.server_arg]
        print(f"starting the server ({' '.join(extra)}) ...", flush=True)
        server, url = start_server(work / "registry", args.threads, extra, work / "server.log")
        results["server"] = {"flags": extra, "threads": args.threads}
        warm = [(adapter_ids[i % count], texts[i]) for i in range(8)]
        asyncio.run(closed_loop(url, warm, 4))
        real = results["texts"]["real_tokens"]
        results["server_runs"] = {}
        for n in counts:
            jobs = [(adapter_ids[i % n], text) for i, text in enumerate(texts)]
            print(f"{n} adapters: saturation ({args.concurrency} clients) ...", flush=True)
            saturation = point(url, closed_loop(url, jobs, args.concurrency), real)
            runs = {"saturation": saturation}
            print(
                f"  {saturation['sentences_per_s']:.2f} sentences/s, p50 "
                f"{saturation['p50_s']:.2f} s, p99 {saturation['p99_s']:.2f} s",
                flush=True,
            )
            for fraction in rates:
                rate = fraction * saturation["sentences_per_s"]
                take = max(16, min(len(jobs), round(rate * args.seconds)))
                subset = jobs[:take]
                subset_real = sum(len(r) for r in ids[:take])
                print(f"  open loop at {fraction:g}x ({rate:.2f}/s, {take} requests) ...")
                runs[f"open_{fraction:g}"] = measured = point(
                    url, open_loop(url, subset, rate, args.seed), subset_real
                )
                measured["offered_per_s"] = rate
                print(
                    f"    p50 {measured['p50_s']:.2f} s, p99 {measured['p99_s']:.2f} s",
                    flush=True,
                )
            results["server_runs"][str(n)] = runs
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    print("bare backbone again (drift check) ...", flush=True)
    results["bare_after"] = bare_runs(backbone.model, ids, pad, ("sorted", "sub-batched"))
    if low is not None:
        tag = args.quantize or args.dtype
        results[f"bare_{tag}_after"] = bare_runs(low.model, ids, pad, ("sorted",))
    results["machine_at_end"] = machine()
    results["wall_s"] = time.perf_counter() - started
    summarize(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out} ({results['wall_s'] / 60:.1f} min)")
    return 0


def summarize(results: dict) -> None:
    """Ratios against the bare backbone, the table and the goals (into ``results``)."""
    sorted_rate = statistics.mean(
        [results["bare_before"]["sorted"]["sentences_per_s"]]
        + [results["bare_after"]["sorted"]["sentences_per_s"]]
    )
    arrival = results["bare_before"]["arrival"]
    real = results["texts"]["real_tokens"]
    rows = [
        ("bare backbone, batches of 32, arrival order", arrival["sentences_per_s"], "-", "-",
         arrival["padded_tokens"] / real),
        ("bare backbone, batches of 32, length-sorted (the limit)", sorted_rate, "-", "-",
         results["bare_before"]["sorted"]["padded_tokens"] / real),
        ("bare backbone, all texts in length sub-batches (runtime cost model)",
         statistics.mean(results[w]["sub-batched"]["sentences_per_s"] for w in ("bare_before", "bare_after")),
         "-", "-", results["bare_before"]["sub-batched"]["padded_tokens"] / real),
    ]  # fmt: skip
    for tag in ("bf16", "fp16", "int8", "8bit"):
        if f"bare_{tag}_before" in results:
            rate = statistics.mean(
                [results[f"bare_{tag}_{when}"]["sorted"]["sentences_per_s"] for when in ("before", "after")]
            )  # fmt: skip
            results[f"bare_{tag}_sorted_mean"] = rate
            rows.append((f"bare backbone {tag}, length-sorted", rate, "-", "-", "-"))
    goals = {}
    for n, runs in results["server_runs"].items():
        for name, run in runs.items():
            run["x_sorted_bare"] = run["sentences_per_s"] / sorted_rate
            run["x_arrival_bare"] = run["sentences_per_s"] / arrival["sentences_per_s"]
            run["x_subbatched_bare"] = run["sentences_per_s"] / rows[2][1]
            run["padding_factor"] = run["padded_tokens"] / max(1, run["real_tokens"])
            label = "saturation" if name == "saturation" else name.replace("open_", "open loop ")
            rows.append(
                (f"server, {n} adapters, {label}", run["sentences_per_s"],
                 f"{run['p50_s']:.2f}", f"{run['p99_s']:.2f}", run["padding_factor"])
            )  # fmt: skip
        saturation = runs["saturation"]["x_sorted_bare"]
        if n == "64":
            goals["64 adapters at saturation >= 0.9x sorted bare"] = (saturation, saturation >= 0.9)
        if n == "512":
            goals["512 adapters at saturation >= 0.8x sorted bare"] = (
                saturation,
                saturation >= 0.8,
            )
        half = runs.get("open_0.5")
        if half:
            ratio = half["p99_s"] / half["p50_s"]
            goals[f"{n} adapters: p99 <= 2x p50 at 0.5x saturation"] = (ratio, ratio <= 2)
    if "service_floor" in results:
        floor = results["service_floor"]
        print(
            f"a text alone: {floor['p50_tokens']} tokens {floor['p50_s']:.3f} s, "
            f"{floor['p99_tokens']} tokens {floor['p99_s']:.3f} s: p99/p50 of the service time "
            f"itself {floor['p99_over_p50']:.1f}"
        )
    for tag in ("bf16", "int8"):  # the CPU goals
        if f"bare_{tag}_before" in results and "64" in results["server_runs"]:
            need = 2.5 if tag == "bf16" else 1.3
            value = results["server_runs"]["64"]["saturation"]["x_sorted_bare"]
            goals[f"{tag} server, 64 adapters >= {need}x fp32 sorted bare"] = (value, value >= need)
    results["table"] = [
        {"configuration": r[0], "sentences_per_s": r[1], "p50_s": r[2], "p99_s": r[3],
         "padded_over_real": r[4]}
        for r in rows
    ]  # fmt: skip
    results["goals"] = {k: {"value": v, "met": m} for k, (v, m) in goals.items()}
    print(
        "\n| configuration | sentences/s | x sorted bare | p50 s | p99 s | padded / real tokens |"
        "\n|---|---:|---:|---:|---:|---:|"
    )
    for name, rate, p50, p99, factor in rows:
        factor = f"{factor:.2f}" if isinstance(factor, float) else factor
        print(f"| {name} | {rate:.2f} | {rate / sorted_rate:.2f} | {p50} | {p99} | {factor} |")
    print("\ngoals:")
    for key, (value, met) in goals.items():
        print(f"  {key}: {value:.2f} {'met' if met else 'MISSED'}")
    print(f"load average at start {results['machine_at_start']['load_average']}, "
          f"at end {results['machine_at_end']['load_average']}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
