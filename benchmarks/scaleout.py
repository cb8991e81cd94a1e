"""Scale-out benchmark: adapter-affinity routing across Ray Serve replicas, and the Ray hop's cost.

    OMP_NUM_THREADS=1 python benchmarks/scaleout.py [--quick] [--skip-hop] [--out FILE.json]
    python benchmarks/scaleout.py --bounds-only 3000,30000,100000   # the simulation alone, no Ray

1. Routing (tiny random backbone: the forward is not what is measured). 1000 adapters, a Zipf(1.1)
   sequence of requests (one input each, 16 clients), 2 replicas of 100 resident adapters each.
   Per policy - affinity (ours), multiplex (Ray's ``serve.multiplexed``), pow2 (Ray's default,
   power of two choices), round-robin - from a cold start: adapter loads per 1000 requests after
   a warm-up, and client latency p50/p99. The same sequence is also simulated, to bound what any
   router could reach with these caches: one LRU per replica fed in turn (round robin), one LRU
   of 200 (a perfect partition, the best affinity can do with LRU) and Belady's optimal eviction
   over 200 slots (the best any router and eviction policy can do).
2. Faults: 1000 requests over the same adapters while one replica is killed and a new adapter is
   published into the shared registry; each answer is compared with an in-process runtime's,
   503s are retried after their Retry-After. Counts wrong, lost and 503 answers.
3. The Ray hop: the real backbone, one replica behind the ingress against the single-process
   server (both one torch thread), 16 clients x 8 inputs over 64 r=8 LoRA adapters, in paired
   rounds (as benchmarks/serving.py measures HTTP against in-process).

Goals (issue 16): affinity >= 3x fewer loads than round robin; Ray path >= 0.85x the
single-process server's throughput at one replica; zero wrong or lost answers under replica kill
and adapter publish.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import heapq
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import httpx
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving import iter_adapters  # noqa: E402

ZIPF = 1.1
ADAPTERS = 1000
REPLICAS = 2
PER_REPLICA = 100
CLIENTS = 16
TEXT = "the film was very good"
HEADER = "X-Adapterhub-Replica"
TOKEN = "bench-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
POLICIES = ("affinity", "multiplex", "pow2", "round-robin")
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


def cpu() -> dict:
    """The CPU's model name, flags and core count, as /proc/cpuinfo gives them."""
    info = {
        "model": platform.processor() or platform.machine(),
        "flags": [],
        "cores": os.cpu_count(),
    }
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            info["model"] = value.strip()
        elif key.strip() == "flags":
            info["flags"] = value.split()
            break
    return info


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------- adapters


def publish_adapters(backbone, registry: Path, work: Path, ids: list[str], r: int) -> None:
    """Rank-``r`` LoRA adapters with 2-label heads (:func:`serving.iter_adapters`), one per id,
    each published into ``registry`` and its folder removed before the next is made."""
    from adapterhub.registry import publish

    folders = iter_adapters(backbone, work, len(ids), r)
    for index, (folder, adapter_id) in enumerate(zip(folders, ids, strict=True)):
        publish(folder, adapter_id, backbone=backbone, store=registry)
        shutil.rmtree(folder)
        if (index + 1) % 250 == 0:
            print(f"  published {index + 1}/{len(ids)}", flush=True)


# ---------------------------------------------------------------------------- simulation


def simulate_lru(sequence: list[int], route, replicas: int, capacity: int, warm: int) -> float:
    caches = [OrderedDict() for _ in range(replicas)]
    loads = 0
    for index, item in enumerate(sequence):
        cache = caches[route(index, item)]
        if item in cache:
            cache.move_to_end(item)
            continue
        loads += index >= warm
        cache[item] = True
        if len(cache) > capacity:
            cache.popitem(last=False)
    return 1000 * loads / (len(sequence) - warm)


def simulate_belady(sequence: list[int], capacity: int, warm: int) -> float:
    """Loads per 1000 requests with the optimal offline eviction (the farthest next use)."""
    upcoming, last = [0] * len(sequence), {}
    for index in range(len(sequence) - 1, -1, -1):
        upcoming[index] = last.get(sequence[index], len(sequence) + index)
        last[sequence[index]] = index
    cache: dict[int, int] = {}
    heap: list[tuple[int, int]] = []
    loads = 0
    for index, item in enumerate(sequence):
        if item not in cache:
            loads += index >= warm
            while len(cache) >= capacity:
                nxt, victim = heapq.heappop(heap)
                if cache.get(victim) == -nxt:
                    del cache[victim]
        cache[item] = upcoming[index]
        heapq.heappush(heap, (-upcoming[index], item))
    return 1000 * loads / (len(sequence) - warm)


def bounds(sequence: list[int], warm: int) -> dict:
    return {
        "round_robin_lru": simulate_lru(
            sequence, lambda i, _: i % REPLICAS, REPLICAS, PER_REPLICA, warm
        ),
        "perfect_partition_lru": simulate_lru(
            sequence, lambda i, _: 0, 1, REPLICAS * PER_REPLICA, warm
        ),
        "belady_optimal": simulate_belady(sequence, REPLICAS * PER_REPLICA, warm),
    }


def zipf_sequence(length: int) -> list[int]:
    rng = random.Random(0)
    weights = [1 / (rank + 1) ** ZIPF for rank in range(ADAPTERS)]
    return rng.choices(range(ADAPTERS), weights=weights, k=length)


def print_bounds(lengths: list[int], warm: int = 1000) -> int:
    print("| measured requests | round robin LRU | one LRU of 200 | Belady 200 | best ratio |")
    print("|---:|---:|---:|---:|---:|")
    for length in lengths:
        found = bounds(zipf_sequence(warm + length), warm)
        ratio = found["round_robin_lru"] / found["belady_optimal"]
        print(
            f"| {length} | {found['round_robin_lru']:.0f} | {found['perfect_partition_lru']:.0f} "
            f"| {found['belady_optimal']:.0f} | {ratio:.2f}x |",
            flush=True,
        )
    return 0


# ---------------------------------------------------------------------------- HTTP


async def fire(url: str, bodies: list[dict], clients: int, *, retry_503: bool = False, during=None):
    """POST every body to /v1/predict with ``clients`` at a time; returns (responses, seconds
    per request, 503s seen). ``during(answered)`` runs alongside."""
    latencies: list[float] = []
    unavailable: list[httpx.Response] = []
    answered: list[httpx.Response] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        semaphore = asyncio.Semaphore(clients)

        async def one(body):
            async with semaphore:
                for _ in range(120):
                    started = time.perf_counter()
                    response = await client.post(f"{url}/v1/predict", json=body)
                    if not (retry_503 and response.status_code == 503):
                        latencies.append(time.perf_counter() - started)
                        answered.append(response)
                        return response
                    unavailable.append(response)
                    await asyncio.sleep(float(response.headers.get("Retry-After", 1)) / 4)
                return response

        tasks = [asyncio.ensure_future(one(b)) for b in bodies]
        if during is not None:
            await during(answered)
        responses = await asyncio.gather(*tasks)
    return responses, latencies, unavailable


def loads(url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    page = httpx.get(f"{url}/metrics", timeout=60).text
    return sum(
        s.value
        for family in text_string_to_metric_families(page)
        for s in family.samples
        if s.name == "adapterhub_adapter_loads_total" and "replica" in s.labels
    )


def empty_replicas(url: str) -> None:
    with httpx.Client(timeout=120) as client:
        for replica in client.get(f"{url}/readyz").json()["replicas"]:
            listed = client.get(f"{url}/v1/adapters", headers={HEADER: replica}).json()
            for adapter in listed["resident"]:
                client.delete(
                    f"{url}/v1/adapters/{adapter['id']}", headers={**ADMIN, HEADER: replica}
                )


# ---------------------------------------------------------------------------- parts


def routing(cluster, sequence, ids, warm) -> dict:
    from adapterhub.server import ServerThread

    results = {}
    bodies = [{"adapter": ids[i], "inputs": [TEXT]} for i in sequence]
    for policy in POLICIES:
        print(f"routing: {policy} ...", flush=True)
        with ServerThread(cluster.ingress(policy)) as front:
            empty_replicas(front.url)
            asyncio.run(fire(front.url, bodies[:warm], CLIENTS))
            before = loads(front.url)
            started = time.perf_counter()
            responses, latencies, _ = asyncio.run(fire(front.url, bodies[warm:], CLIENTS))
            seconds = time.perf_counter() - started
            measured = loads(front.url) - before
            failed = [r.status_code for r in responses if r.status_code != 200]
            by_replica: dict[str, int] = {}
            for response in responses:
                name = response.headers.get(HEADER, "?")
                by_replica[name] = by_replica.get(name, 0) + 1
        results[policy] = {
            "loads_per_1000": 1000 * measured / len(responses),
            "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99),
            "requests_per_s": len(responses) / seconds,
            "share_by_replica": sorted(by_replica.values(), reverse=True),
            "failed": failed,
        }
        print(
            f"  {results[policy]['loads_per_1000']:.0f} loads / 1000, "
            f"p50 {results[policy]['p50_ms']:.1f} ms, p99 {results[policy]['p99_ms']:.1f} ms",
            flush=True,
        )
    return results


def faults(cluster, backbone, registry, work, sequence, ids, count) -> dict:
    """Kill a replica and publish an adapter during load; compare every answer."""
    import ray

    from adapterhub.runtime import Runtime
    from adapterhub.server import ServerThread

    new_id = "bench/new@bench:1.0.0"
    chosen = [ids[i] for i in sequence[:count]]
    reference = Runtime(backbone, registry=registry)
    killed: list[str] = []
    late: list = []

    with ServerThread(cluster.ingress("affinity")) as front:

        async def kill_and_publish(answered):
            while len(answered) < count // 5:
                await asyncio.sleep(0.01)
            victim = sorted(httpx.get(f"{front.url}/readyz", timeout=60).json()["replicas"])[0]
            actor = ray.get_actor(f"SERVE_REPLICA::adapterhub#Replica#{victim}", namespace="serve")
            ray.kill(actor, no_restart=True)
            killed.append(victim)
            await asyncio.to_thread(publish_adapters, backbone, registry, work / "new", [new_id], 8)
            late.append(
                await fire(
                    front.url, [{"adapter": new_id, "inputs": [TEXT]}] * 50, 4, retry_503=True
                )
            )

        bodies = [{"adapter": a, "inputs": [TEXT]} for a in chosen]
        responses, _, unavailable = asyncio.run(
            fire(front.url, bodies, CLIENTS, retry_503=True, during=kill_and_publish)
        )
        late_responses, _, late_unavailable = late[0]
    wanted = {a: reference.predict(a, [TEXT])[0] for a in set(chosen) | {new_id}}
    wrong = lost = 0
    for adapter, response in [*zip(chosen, responses), *((new_id, r) for r in late_responses)]:
        if response.status_code != 200:
            lost += 1
            continue
        got, want = response.json()["predictions"][0], wanted[adapter]
        close = got["label"] == want["label"] and all(
            abs(got["scores"][k] - v) < 1e-5 for k, v in want["scores"].items()
        )
        wrong += not close
    return {
        "requests": len(responses) + len(late_responses),
        "killed": killed,
        "published": new_id,
        "wrong": wrong,
        "lost": lost,
        "answered_503_then_retried": len(unavailable) + len(late_unavailable),
    }


def ray_hop(args, work: Path, rounds: int) -> dict:
    """One replica behind the ingress against the single-process server, same requests."""
    from adapterhub.backbone import load_backbone
    from adapterhub.cli.serve import make_runtime
    from adapterhub.config import RuntimeConfig, ServerConfig
    from adapterhub.server import ServerThread, create_app

    backbone = load_backbone(args.backbone, device="cpu")
    registry = work / "hop-registry"
    ids = [f"bench/hop{i}@bench:1.0.0" for i in range(64)]
    print("Ray hop: publishing 64 adapters on the real backbone ...", flush=True)
    publish_adapters(backbone, registry, work / "hop-src", ids, 8)
    per_request, requests = 8, 32 if args.quick else 64
    bodies = [
        {
            "adapter": ids[i % len(ids)],
            "inputs": [SENTENCES[(i + j) % len(SENTENCES)] for j in range(per_request)],
        }
        for i in range(requests)
    ]
    # batches of about 32 of these ~30-token sentences, as benchmarks/serving.py
    config = ServerConfig(max_batch_tokens=32 * 40, max_wait_ms=5, max_queue=4096)
    limits = RuntimeConfig()
    single_app = create_app(make_runtime(args.backbone, str(registry), limits), config)
    times: dict[str, list[float]] = {"single": [], "ray": []}
    with (
        Cluster(args.backbone, registry, limits, config, replicas=1, per_replica=None) as cluster,
        ServerThread(single_app) as single,
        ServerThread(cluster.ingress("affinity")) as ray_front,
    ):
        urls = {"single": single.url, "ray": ray_front.url}
        for url in urls.values():
            asyncio.run(fire(url, bodies, CLIENTS))  # warm-up: loads, first forwards
        for index in range(rounds):
            for name in ("single", "ray") if index % 2 else ("ray", "single"):
                started = time.perf_counter()
                responses, _, _ = asyncio.run(fire(urls[name], bodies, CLIENTS))
                times[name].append(time.perf_counter() - started)
                assert all(r.status_code == 200 for r in responses)
            print(f"  round {index + 1}/{rounds} done", flush=True)
    inputs = requests * per_request
    return {
        "backbone": args.backbone,
        "requests": requests,
        "inputs_per_request": per_request,
        "concurrency": CLIENTS,
        "single_sentences_per_s": inputs / statistics.median(times["single"]),
        "ray_sentences_per_s": inputs / statistics.median(times["ray"]),
        "ratio": statistics.median(s / r for s, r in zip(times["single"], times["ray"])),
        "single_s": times["single"],
        "ray_s": times["ray"],
    }


class Cluster:
    """A Ray instance with the replicas deployed, for the ``with`` block; ingress apps over it."""

    def __init__(
        self, backbone: str, registry: Path, limits, config, *, replicas: int, per_replica
    ):
        from adapterhub.server.scaleout.cluster import ScaleOut

        self.scale = ScaleOut(replicas=replicas, max_resident_per_replica=per_replica)
        self.backbone, self.registry, self.limits, self.config = backbone, registry, limits, config

    def __enter__(self) -> Cluster:
        from adapterhub.cli.serve import make_runtime
        from adapterhub.server.scaleout.cluster import DEPLOYMENT, connect, deploy
        from adapterhub.server.scaleout.replica import ReplicaSpec
        from adapterhub.server.scaleout.routing import residency

        self.started = connect(self.scale)
        spec = ReplicaSpec(
            make_runtime=functools.partial(make_runtime, self.backbone, str(self.registry)),
            runtime=self.limits,
            server=self.config,
        )
        started = time.perf_counter()
        self.handle = deploy(spec, self.scale)
        self.startup_s = time.perf_counter() - started
        self.table = residency(DEPLOYMENT)
        return self

    def ingress(self, policy: str):
        from adapterhub.server.scaleout.ingress import Ingress

        return Ingress(
            self.handle,
            self.table,
            replicas=self.scale.replicas,
            policy=policy,
            max_body_bytes=self.config.max_body_bytes,
        )

    def __exit__(self, *exc) -> None:
        from adapterhub.server.scaleout.cluster import stop

        stop(self.scale, self.started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--backbone", default="multilingual-e5-small", help="for the Ray hop")
    parser.add_argument("--skip-hop", action="store_true", help="routing and faults only")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "scaleout.json"))
    parser.add_argument(
        "--bounds-only",
        metavar="N[,N...]",
        help="print the simulated bounds for these numbers of measured requests (after the "
        "warm-up of 1000) and exit: whether a longer run could reach the 3x goal",
    )
    args = parser.parse_args(argv)
    if args.bounds_only:
        return print_bounds([int(n) for n in args.bounds_only.split(",")])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # replicas get it too (one thread each)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    import ray

    from adapterhub.backbone import load_backbone
    from adapterhub.config import RuntimeConfig, ServerConfig
    from adapterhub.testing import make_tiny_backbone

    results: dict = {
        "config": {
            "adapters": ADAPTERS,
            "zipf": ZIPF,
            "replicas": REPLICAS,
            "resident_per_replica": PER_REPLICA,
            "clients": CLIENTS,
            "quick": args.quick,
            "ray": ray.__version__,
            "torch": torch.__version__,
            "python": sys.version.split()[0],
            "cpu": cpu(),
            "load_average_at_start": os.getloadavg()[0],
        }
    }
    warm, measured = (600, 1400) if args.quick else (1000, 3000)
    sequence = zipf_sequence(warm + measured)
    ids = [f"bench/a{i}@bench:1.0.0" for i in range(ADAPTERS)]
    results["simulated_bounds_loads_per_1000"] = bounds(sequence, warm)
    print(
        "simulated bounds (loads / 1000):", results["simulated_bounds_loads_per_1000"], flush=True
    )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after each part: a later failure keeps what was measured
        out.write_text(json.dumps(results, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="scaleout-") as tmp:
        work = Path(tmp)
        tiny_path = make_tiny_backbone(work / "tiny")
        tiny = load_backbone(str(tiny_path), device="cpu")
        registry = work / "registry"
        print(f"publishing {ADAPTERS} adapters (tiny backbone) ...", flush=True)
        started = time.perf_counter()
        publish_adapters(tiny, registry, work / "src", ids, 4)
        results["config"]["publish_s"] = time.perf_counter() - started
        config = ServerConfig(max_queue=4096, admin_token=TOKEN)
        with Cluster(
            str(tiny_path),
            registry,
            RuntimeConfig(),
            config,
            replicas=REPLICAS,
            per_replica=PER_REPLICA,
        ) as cluster:
            results["config"]["startup_s"] = cluster.startup_s
            results["routing"] = routing(cluster, sequence, ids, warm)
            save()
            print("faults: kill a replica and publish an adapter under load ...", flush=True)
            results["faults"] = faults(
                cluster, tiny, registry, work, sequence[warm:], ids, 400 if args.quick else 1000
            )
            print("  ", results["faults"], flush=True)
            save()
        if not args.skip_hop:
            results["ray_hop"] = ray_hop(args, work, 3 if args.quick else 5)
            print(f"  Ray hop: {results['ray_hop']['ratio']:.2f}x single-process", flush=True)

    routed = results["routing"]
    fewer = routed["round-robin"]["loads_per_1000"] / max(
        routed["affinity"]["loads_per_1000"], 1e-9
    )
    results["targets"] = {
        "affinity_fewer_loads_than_round_robin": [fewer, ">= 3", fewer >= 3],
        "wrong_or_lost_under_kill_and_publish": [
            results["faults"]["wrong"] + results["faults"]["lost"],
            "== 0",
            results["faults"]["wrong"] + results["faults"]["lost"] == 0,
        ],
    }
    if "ray_hop" in results:
        ratio = results["ray_hop"]["ratio"]
        results["targets"]["ray_over_single_process"] = [ratio, ">= 0.85", ratio >= 0.85]
    save()
    print(json.dumps(results["targets"], indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
