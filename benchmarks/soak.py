"""Soak: concurrent requests over many adapters while an admin swaps and the pool evicts, some
clients hanging up; every answer checked against the same adapter's answer computed alone.

    OMP_NUM_THREADS=2 python benchmarks/soak.py [--requests 1000] [--adapters 500]
        [--out benchmarks/results/soak.json]

A tiny random backbone and ``--adapters`` generated LoRA adapters (r=8 on query/value, random
non-zero weights, a 2-label head: :func:`serving.make_adapters`) are published into a throwaway
registry. ``adapterhub serve`` runs them in a subprocess on loopback with a memory budget that
holds about a fifth of them, so the pool evicts all the time. Then ``--requests`` requests (one
to three texts, each for a random adapter) are sent at once; an admin loads or unloads a random
adapter every 100 ms; ``--disconnect`` of the clients send their request and hang up before the
answer. A 429 is retried after its Retry-After, as a client should.

Reported (goal: 0 lost, 0 wrong): lost (a request that kept its connection but got no 200),
wrong (a 200 whose labels or scores differ from the adapter's answer alone, computed in this
process by a Runtime with the adapter alone in each forward), disconnects and the server's
``adapterhub_dropped_requests``, 429s, swaps, evictions, the server's peak RSS (VmHWM) and its
peak allocated adapter bytes against the budget. Bounded: ``--max-seconds`` stops the run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch
from serving import make_adapters

TOKEN = "soak-admin"
WORDS = ["the", "film", "was", "very", "good", "bad", "book", "boring", "plot", "great", "actor",
         "not", "nice", "day", "rain", "sun"]  # fmt: skip
TOLERANCE = 1e-4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def cpu_model() -> str:
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def build(root: Path, count: int) -> tuple[Path, list[str], int]:
    """The backbone folder, the published ids and one adapter's tensor bytes."""
    from adapterhub.backbone import load_backbone
    from adapterhub.registry import publish
    from adapterhub.testing import make_tiny_backbone

    backbone_path = make_tiny_backbone(root / "backbone")
    backbone = load_backbone(str(backbone_path), device="cpu")
    registry = root / "registry"
    ids = []
    for index, folder in enumerate(make_adapters(backbone, root / "adapters", count)):
        adapter_id = f"soak/a{index}@soak:1.0.0"
        publish(folder, adapter_id, backbone=backbone, store=registry)
        ids.append(adapter_id)
    tensor_bytes = sum(f.stat().st_size for f in (root / "adapters" / "a0").glob("*.safetensors"))
    return backbone_path, ids, tensor_bytes


def references(backbone_path: Path, registry: Path, jobs: list[tuple[str, list[str]]]) -> dict:
    """(adapter, text) -> {label, scores}: each adapter's texts in forwards of their own."""
    from adapterhub.backbone import load_backbone
    from adapterhub.runtime import Runtime

    runtime = Runtime(load_backbone(str(backbone_path), device="cpu"), registry=registry)
    wanted: dict[str, set[str]] = {}
    for adapter, texts in jobs:
        wanted.setdefault(adapter, set()).update(texts)
    answers = {}
    for adapter, texts in wanted.items():
        ordered = sorted(texts)
        for text, answer in zip(ordered, runtime.predict([adapter], ordered)):
            answers[(adapter, text)] = answer
        runtime.unload(adapter)
    return answers


def same(got: dict, want: dict) -> bool:
    if got.get("label") != want["label"] or set(got.get("scores", {})) != set(want["scores"]):
        return False
    return all(abs(got["scores"][k] - v) <= TOLERANCE for k, v in want["scores"].items())


async def hang_up(port: int, adapter: str, texts: list[str], rng: random.Random) -> None:
    """Send a whole request, then close the connection before the answer."""
    body = json.dumps({"adapter": adapter, "inputs": texts}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/predict HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    await asyncio.sleep(rng.uniform(0, 0.05))
    writer.close()


async def ask(client: httpx.AsyncClient, url: str, adapter: str, texts: list[str], tally: dict):
    """The request's answer, retrying after 429 as Retry-After says; None when it got none."""
    for _ in range(20):
        try:
            response = await client.post(url, json={"adapter": adapter, "inputs": texts})
        except httpx.HTTPError as exc:
            tally["errors"].append(f"{adapter}: {type(exc).__name__}")
            return None
        if response.status_code == 429:
            tally["429"] += 1
            await asyncio.sleep(float(response.headers.get("retry-after", 1)))
            continue
        if response.status_code != 200:
            tally["errors"].append(f"{adapter}: {response.status_code} {response.text[:200]}")
            return None
        return response.json()
    tally["errors"].append(f"{adapter}: still 429 after 20 tries")
    return None


def admin_loop(base: str, ids: list[str], stop: threading.Event, seen: dict) -> None:
    """Every 100 ms load or unload a random adapter."""
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
        while not stop.wait(0.1):
            adapter = rng.choice(ids)
            if rng.random() < 0.5:
                response = client.post(f"/v1/adapters/{adapter}:load")
            else:
                response = client.delete(f"/v1/adapters/{adapter}")
            seen["swaps"] += 1
            if response.status_code not in (200, 404, 429):
                seen["admin_errors"].append(f"{response.status_code} {response.text[:200]}")


def sample_loop(base: str, stop: threading.Event, pid: int, seen: dict) -> None:
    """Every 0.5 s: the pool's allocated bytes and the server's RSS."""
    with httpx.Client(base_url=base, timeout=60) as client:
        while not stop.wait(0.5):
            stats = client.get("/v1/adapters").json()["stats"]
            seen["allocated_peak"] = max(seen["allocated_peak"], stats["allocated_bytes"])
            seen["rss_peak_kb"] = max(seen["rss_peak_kb"], status_kb(pid, "VmRSS"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--adapters", type=int, default=500)
    parser.add_argument("--disconnect", type=float, default=0.05, help="share of hang-ups")
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "soak.json"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="adapterhub-soak-") as tmp:
        root = Path(tmp)
        print(f"publishing {args.adapters} adapters ...", flush=True)
        backbone_path, ids, tensor_bytes = build(root, args.adapters)
        budget_mb = round(tensor_bytes * args.adapters / 5 / 2**20, 3)
        jobs = [
            (
                rng.choice(ids),
                [
                    " ".join(rng.choices(WORDS, k=rng.randint(2, 12)))
                    for _ in range(rng.randint(1, 3))
                ],
            )
            for _ in range(args.requests)
        ]
        hang_ups = {i for i in range(args.requests) if rng.random() < args.disconnect}
        print("computing each adapter's answers alone ...", flush=True)
        expected = references(backbone_path, root / "registry", jobs)

        port = free_port()
        env = {**os.environ, "ADAPTERHUB_HOME": str(root / "home"), "HF_HUB_OFFLINE": "1"}
        serve = [
            sys.executable, "-m", "adapterhub", "serve", "--backbone", str(backbone_path),
            "--registry", str(root / "registry"), "--port", str(port),
            "--memory-budget", str(budget_mb), "--admin-token", TOKEN,
        ]  # fmt: skip
        server = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 300  # a loaded machine imports torch slowly
            while True:
                try:
                    if httpx.get(base + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the server did not start (exit code {server.poll()})")
                time.sleep(0.2)
            rss_start_kb = status_kb(server.pid, "VmRSS")
            seen = {"swaps": 0, "admin_errors": [], "allocated_peak": 0, "rss_peak_kb": 0}
            tally = {"429": 0, "errors": []}
            stop = threading.Event()
            helpers = [
                threading.Thread(target=admin_loop, args=(base, ids, stop, seen), daemon=True),
                threading.Thread(target=sample_loop, args=(base, stop, server.pid, seen)),
            ]

            async def fire() -> list:
                limits = httpx.Limits(max_connections=args.requests, max_keepalive_connections=0)
                async with httpx.AsyncClient(timeout=300, limits=limits) as client:
                    tasks = []
                    for index, (adapter, texts) in enumerate(jobs):
                        if index in hang_ups:
                            tasks.append(hang_up(port, adapter, texts, rng))
                        else:
                            tasks.append(ask(client, base + "/v1/predict", adapter, texts, tally))
                    remaining = args.max_seconds - (time.monotonic() - started)
                    return await asyncio.wait_for(asyncio.gather(*tasks), max(10, remaining))

            for helper in helpers:
                helper.start()
            load_started = time.monotonic()
            try:
                answers = asyncio.run(fire())
            finally:
                stop.set()
                for helper in helpers:
                    helper.join()
            load_seconds = time.monotonic() - load_started
            time.sleep(0.5)  # the last hang-ups reach the server's counters
            metrics = httpx.get(base + "/metrics").text
            stats = httpx.get(base + "/v1/adapters").json()["stats"]
            rss_peak_kb = status_kb(server.pid, "VmHWM")
        finally:
            server.terminate()
            server.wait(timeout=30)

    def metric(name: str) -> float:
        for line in metrics.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    lost = wrong = 0
    wrong_examples = []
    for index, ((adapter, texts), answer) in enumerate(zip(jobs, answers)):
        if index in hang_ups:
            continue
        if answer is None:
            lost += 1
            continue
        for text, got in zip(texts, answer["predictions"]):
            if not same(got, expected[(adapter, text)]):
                wrong += 1
                wrong_examples.append({"adapter": adapter, "text": text, "got": got})
    result = {
        "requests": args.requests,
        "adapters": args.adapters,
        "answered_requests": args.requests - len(hang_ups) - lost,
        "lost_requests": lost,
        "wrong_answers": wrong,
        "wrong_examples": wrong_examples[:5],
        "errors": tally["errors"][:10],
        "disconnected_clients": len(hang_ups),
        "server_dropped_requests": metric("adapterhub_dropped_requests_total"),
        "retried_429": tally["429"],
        "admin_swaps": seen["swaps"],
        "admin_errors": seen["admin_errors"][:10],
        "evictions": stats["evictions"],
        "loads": stats["loads"],
        "load_seconds": round(load_seconds, 2),
        "memory_budget_bytes": stats["memory_budget_bytes"],
        "allocated_bytes_peak": seen["allocated_peak"],
        "allocated_bytes_end": stats["allocated_bytes"],
        "server_rss_after_start_mb": round(rss_start_kb / 1024, 1),
        "server_rss_peak_mb": round(max(rss_peak_kb, seen["rss_peak_kb"]) / 1024, 1),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "flags": sys.argv[1:],
        "seconds": round(time.monotonic() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if lost == 0 and wrong == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
