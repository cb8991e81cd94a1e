"""``serve --ray``: two Ray Serve replicas behind the ingress, on loopback with the tiny backbone.

One Ray instance and one deployment serve the whole module (Ray starts in ~15-60 s on two
busy cores); every answer is compared with the single-process server's over the same registry.
Skipped, saying so, when ray is not installed (``pip install -e '.[ray]'``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import shutil
import subprocess
import sys
import time

import httpx
import pytest
from serving_helpers import BULK, SENTIMENT, SPECS, make_adapter, post_retrying

from adapterhub.config import RuntimeConfig, ServerConfig
from adapterhub.runtime import Runtime
from adapterhub.server import ServerThread, create_app

pytestmark = [
    pytest.mark.timeout(300),
    # Ray Serve 2.60's own pydantic fields, at import
    pytest.mark.filterwarnings("ignore:Using extra keyword arguments on `Field`"),
]

TOKEN = "ray-admin-token"
REPLICAS = 2
PER_REPLICA = 4
TEXTS = [
    "the film was very good",
    "der film ist nicht gut",
    "le livre est très bon",
    "el libro es malo",
    "i love this book",
    "boring plot and a terrible actor",
]
CONFIG = ServerConfig(
    max_batch_tokens=2048, max_wait_ms=10, max_inputs=8, max_chars=200, admin_token=TOKEN
)
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
HEADER = "X-Adapterhub-Replica"


def test_serve_without_ray_never_imports_it(tiny_backbone_path, zoo):
    """``import adapterhub.cli.serve`` and the whole single-process path up to uvicorn leave
    ray out of sys.modules (fresh interpreter; uvicorn.run replaced by a probe)."""
    probe = (
        "import sys, uvicorn\n"
        "import adapterhub.cli.serve\n"
        "assert 'ray' not in sys.modules, 'imported by adapterhub.cli.serve'\n"
        "uvicorn.run = lambda app, **kw: print('RAY' if 'ray' in sys.modules else 'NO-RAY')\n"
        "from adapterhub.cli import main\n"
        f"sys.exit(main(['serve', '--backbone', {str(tiny_backbone_path)!r}, "
        f"'--registry', {str(zoo.registry)!r}, '--port', '0']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "NO-RAY"


def test_ray_flags_need_ray(tiny_backbone_path, capsys):
    from adapterhub.cli import main

    assert main(["serve", "--backbone", str(tiny_backbone_path), "--replicas", "3"]) != 0
    assert "--replicas only apply with --ray" in capsys.readouterr().err


def test_route_names_come_from_body_header_and_path():
    from adapterhub.server.scaleout.routing import adapter_names

    body = json.dumps({"stack": ["lang/de", "sentiment/en"], "inputs": ["x"]}).encode()
    assert adapter_names("/v1/predict", {}, body) == ("lang/de", "sentiment/en")
    fan = json.dumps({"adapters": ["a/x", "b/y", "a/x"], "inputs": ["x"]}).encode()
    assert adapter_names("/v1/embed", {}, fan) == ("a/x", "b/y")
    assert adapter_names("/predict/sentiment%2Fde", {}, b"{}") == ("sentiment/de",)
    assert adapter_names("/embed", {"x-adapter-id": "retrieval/multi"}, b"{}") == (
        "retrieval/multi",
    )
    assert adapter_names("/v1/predict", {}, b"{not json") == ()


def test_affinity_ranks_holders_then_fills_then_hashes():
    from adapterhub.server.scaleout.routing import Residency, Route

    table = Residency(spill=2)
    table.set_replicas(["r1", "r2"])
    table.observe("r1", ["a", "b"])
    table.observe("r2", ["c"])
    assert table.rank(Route(("b",)), ["r1", "r2"])[0] == ["r1"]  # holds it
    assert table.rank(Route(("a", "c")), ["r1", "r2"])[0] == ["r1"]  # holds more of the set
    assert table.rank(Route(("new",)), ["r1", "r2"])[0] == ["r2"]  # a miss fills the emptier
    # a request on its way counts as held there: the burst for one new adapter stays together,
    # even on the replica the hash would not pick
    table.observe("r2", ["c", "d"])
    hashed = table.rank(Route(("new",)), ["r1", "r2"])[0][0]
    other = "r1" if hashed == "r2" else "r2"
    table.sent("q1", other, ("new",))
    assert table.rank(Route(("new",)), ["r1", "r2"])[0] == [other]
    table.done("q1")
    assert table.rank(Route(("new",)), ["r1", "r2"])[0] == [hashed]
    # a holder more than `spill` requests busier than the least loaded is passed over
    for n in range(3):
        table.sent(f"busy{n}", "r1", ("b",))
    assert table.rank(Route(("b",)), ["r1", "r2"])[0] == ["r2"]
    for n in range(3):
        table.done(f"busy{n}")
    # equally full replicas: a miss always goes to the same one (rendezvous hash)
    first = table.rank(Route(("z",)), ["r1", "r2"])[0]
    assert all(table.rank(Route(("z",)), ["r1", "r2"])[0] == first for _ in range(5))
    table.drop("r1")
    assert table.replicas == ["r2"] and table.held("r1") == frozenset()


def test_round_robin_takes_turns():
    from adapterhub.server.scaleout.routing import Residency, Route

    table = Residency()
    firsts = [table.rank(Route(policy="round-robin"), ["b", "a"])[0][0] for _ in range(4)]
    assert firsts == ["a", "b", "a", "b"]


def test_metrics_pages_merge_under_a_replica_label():
    from prometheus_client import CollectorRegistry, Counter, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from adapterhub.server.scaleout.metrics import IngressMetrics

    pages = {}
    for name, count in (("r1", 2), ("r2", 5)):
        registry = CollectorRegistry()
        Counter("adapterhub_adapter_loads", "loads", registry=registry).inc(count)
        pages[name] = generate_latest(registry).decode()
    text = IngressMetrics().render(pages).decode()
    assert _series(text, "adapterhub_adapter_loads_total") == {"r1": 2.0, "r2": 5.0}
    families = [f.name for f in text_string_to_metric_families(text)]
    assert families.count("adapterhub_adapter_loads") == 1  # one family, a series per replica
    assert "adapterhub_ingress_requests" in families


# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def registry(zoo, tmp_path_factory):
    """A copy of the zoo's registry: these tests publish into it."""
    folder = tmp_path_factory.mktemp("ray-registry") / "registry"
    shutil.copytree(zoo.registry, folder)
    return folder


@pytest.fixture(scope="module")
def cluster(tiny_backbone_path, registry):
    """Two replicas of 4 resident adapters each (the specs name 18 adapters)."""
    pytest.importorskip("ray", reason="ray is not installed: pip install -e '.[ray]'")
    from adapterhub.cli.serve import make_runtime
    from adapterhub.server.scaleout.cluster import DEPLOYMENT, ScaleOut, connect, deploy, stop
    from adapterhub.server.scaleout.replica import ReplicaSpec
    from adapterhub.server.scaleout.routing import residency

    scale = ScaleOut(replicas=REPLICAS, max_resident_per_replica=PER_REPLICA, cpus_per_replica=0.5)
    spec = ReplicaSpec(
        # serve's own construction, as `serve --ray --backbone TINY --registry DIR` passes it
        make_runtime=functools.partial(make_runtime, str(tiny_backbone_path), str(registry)),
        runtime=RuntimeConfig(bank_chunk=2),
        server=CONFIG,
    )
    started = connect(scale)
    try:
        handle = deploy(spec, scale)
        yield handle, residency(DEPLOYMENT)
    finally:
        stop(scale, started)


def ingress(cluster, policy: str = "affinity", **options):
    from adapterhub.server.scaleout.ingress import Ingress

    handle, table = cluster
    return Ingress(handle, table, replicas=REPLICAS, policy=policy, **options)


@pytest.fixture(scope="module")
def server(cluster):
    with ServerThread(ingress(cluster)) as running:
        yield running


@pytest.fixture(scope="module")
def single(tiny_backbone, registry):
    """The single-process server over the same registry and limits."""
    runtime = Runtime(tiny_backbone, registry=registry, max_resident=PER_REPLICA, bank_chunk=2)
    with ServerThread(create_app(runtime, CONFIG)) as running:
        yield running


# ---------------------------------------------------------------------------------- helpers


def _body(spec, texts) -> dict:
    named = {"adapter": spec[0]} if len(spec) == 1 else {"stack": spec}
    return {**named, "inputs": texts}


def _jobs(count: int, seed: int) -> list[tuple[list[str], list[str]]]:
    rng = random.Random(seed)
    return [(rng.choice(SPECS), rng.sample(TEXTS, rng.randint(1, 3))) for _ in range(count)]


async def _fire(url: str, jobs, *, retry_503: bool = False, during=None):
    """POST /v1/predict for every job at once; 429s (and 503s when ``retry_503``) retried
    after their Retry-After; ``during(answered so far)`` runs meanwhile. Returns (final responses, 503
    responses seen)."""
    retried, answered = [], []
    retry = frozenset({429, 503}) if retry_503 else frozenset({429})
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=64)) as client:

        async def one(spec, texts):
            body = _body(spec, texts)
            response = await post_retrying(
                client, f"{url}/v1/predict", body, retry=retry, seen=retried
            )
            answered.append(response)
            return response

        tasks = [asyncio.ensure_future(one(s, t)) for s, t in jobs]
        if during is not None:
            await during(answered)
        responses = await asyncio.gather(*tasks)
        return responses, [r for r in retried if r.status_code == 503]


def _same(got: dict, want: dict) -> None:
    """The single-process server's answer, to its tolerance against PEFT (1e-5)."""
    assert got["adapters"] == want["adapters"] and got["task_type"] == want["task_type"]
    assert len(got["predictions"]) == len(want["predictions"])
    for g, w in zip(got["predictions"], want["predictions"]):
        assert g["label"] == w["label"]
        assert g["scores"].keys() == w["scores"].keys()
        for label, value in w["scores"].items():
            assert abs(g["scores"][label] - value) < 1e-5


def _reference(single, jobs) -> list[dict]:
    with httpx.Client(timeout=60) as client:
        answers = []
        for spec, texts in jobs:
            response = client.post(f"{single.url}/v1/predict", json=_body(spec, texts))
            assert response.status_code == 200, response.text
            answers.append(response.json())
        return answers


def _series(text: str, name: str) -> dict[str, float]:
    """``{replica: value}`` of a metric on the merged /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and "replica" in sample.labels:
                replica = sample.labels["replica"]
                found[replica] = found.get(replica, 0.0) + sample.value
    return found


def _loads(server) -> float:
    return sum(
        _series(httpx.get(f"{server.url}/metrics").text, "adapterhub_adapter_loads_total").values()
    )


def _empty_every_replica(server) -> None:
    """Unload every resident adapter of every replica (a cold start for the next workload)."""
    with httpx.Client(timeout=60) as client:
        ready = client.get(f"{server.url}/readyz").json()
        for replica in ready["replicas"]:
            listed = client.get(f"{server.url}/v1/adapters", headers={HEADER: replica}).json()
            for adapter in listed["resident"]:
                client.delete(
                    f"{server.url}/v1/adapters/{adapter['id']}", headers={**ADMIN, HEADER: replica}
                )


# ---------------------------------------------------------------------------------- tests


def test_concurrent_answers_equal_the_single_process_server(server, single):
    """300 concurrent requests over 18 adapters and stacks, 4 resident per replica: every
    answer equals the single-process server's, both replicas answered, and they loaded and
    evicted adapters as they went."""
    jobs = _jobs(300, seed=1)
    want = _reference(single, jobs)
    responses, _ = asyncio.run(_fire(server.url, jobs))
    replicas = set()
    for response, expected in zip(responses, want):
        assert response.status_code == 200, response.text
        _same(response.json(), expected)
        replicas.add(response.headers[HEADER])
    assert len(replicas) == REPLICAS
    page = httpx.get(f"{server.url}/metrics").text
    assert set(_series(page, "adapterhub_adapter_loads_total")) == replicas
    assert sum(_series(page, "adapterhub_adapter_evictions_total").values()) > 0
    assert max(_series(page, "adapterhub_resident_adapters").values()) <= PER_REPLICA


def test_tei_routes_and_embeddings_through_the_replicas(server, single):
    for path, body, headers in (
        ("/predict/sentiment/fr@team:1.0.0", {"inputs": TEXTS[:2]}, {}),
        ("/predict", {"inputs": TEXTS[0]}, {"X-Adapter-Id": "topic/de@team:1.0.0"}),
        ("/embed", {"inputs": TEXTS[:2]}, {"X-Adapter-Id": "sentiment/de@team:1.0.0"}),
        ("/embed", {"inputs": TEXTS[:2]}, {}),
    ):
        got = httpx.post(server.url + path, json=body, headers=headers)
        want = httpx.post(single.url + path, json=body, headers=headers)
        assert got.status_code == want.status_code == 200, got.text
        assert got.headers[HEADER]
        _close_tree(got.json(), want.json())


def _close_tree(got, want) -> None:
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _close_tree(g, w)
    elif isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            _close_tree(got[key], want[key])
    elif isinstance(want, float):
        assert abs(got - want) < 1e-5
    else:
        assert got == want


def test_errors_keep_the_servers_shape(server, single):
    for body in ({"adapter": "nope/xx", "inputs": ["a"]}, {"inputs": ["a"]}):
        got = httpx.post(f"{server.url}/v1/predict", json=body)
        want = httpx.post(f"{single.url}/v1/predict", json=body)
        assert got.status_code == want.status_code
        assert got.json()["error_type"] == want.json()["error_type"]
    big = httpx.post(
        f"{server.url}/v1/predict",
        content=b"x" * (CONFIG.max_body_bytes + 10),
        headers={"Content-Type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["error_type"] == "payload_too_large"
    unknown = httpx.get(f"{server.url}/v1/adapters", headers={HEADER: "no-such-replica"})
    assert unknown.status_code == 404 and "no-such-replica" in unknown.json()["error"]


def test_admin_routes_act_on_every_replica(server):
    adapter = BULK[0]
    loaded = httpx.post(f"{server.url}/v1/adapters/{adapter}:load", headers=ADMIN)
    assert loaded.status_code == 200, loaded.text
    replicas = [r.strip() for r in loaded.headers[HEADER].split(",")]
    assert len(replicas) == REPLICAS
    for replica in replicas:
        listed = httpx.get(f"{server.url}/v1/adapters", headers={HEADER: replica}).json()
        assert adapter in [r["id"] for r in listed["resident"]]
    assert httpx.post(f"{server.url}/v1/adapters/{adapter}:load").status_code == 401
    gone = httpx.delete(f"{server.url}/v1/adapters/{adapter}", headers=ADMIN)
    assert gone.status_code == 200 and gone.json() == {"id": adapter, "unloaded": True}
    for replica in replicas:
        listed = httpx.get(f"{server.url}/v1/adapters", headers={HEADER: replica}).json()
        assert adapter not in [r["id"] for r in listed["resident"]]
    again = httpx.delete(f"{server.url}/v1/adapters/{adapter}", headers=ADMIN)
    assert again.status_code == 404
    # one replica only, named by the header
    one = httpx.post(
        f"{server.url}/v1/adapters/{adapter}:load", headers={**ADMIN, HEADER: replicas[0]}
    )
    assert one.status_code == 200 and one.headers[HEADER] == replicas[0]


def test_health_readiness_and_metrics_per_replica(server):
    health = httpx.get(f"{server.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready["status"] == "ready" and len(ready["replicas"]) == REPLICAS
    assert set(ready["replicas"].values()) == {"ready"}
    page = httpx.get(f"{server.url}/metrics").text
    for name in (
        "adapterhub_resident_adapters",
        "adapterhub_adapter_evictions_total",
        "adapterhub_batch_size_count",
        "adapterhub_queue_seconds_count",
    ):
        assert set(_series(page, name)) == set(ready["replicas"]), name
    assert "adapterhub_ingress_requests_total" in page


def test_affinity_loads_fewer_adapters_than_random_routing(server, cluster):
    """A skewed workload over 8 adapters, 4 slots per replica: routed by affinity the two
    replicas split the adapters between them; routed at random (Ray's power of two choices)
    both thrash. Same requests, same cold start."""
    rng = random.Random(7)
    adapters = BULK[:8]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(adapters))]
    jobs = [([a], [TEXTS[0]]) for a in rng.choices(adapters, weights=weights, k=160)]
    loads = {}
    for policy in ("affinity", "pow2"):
        with ServerThread(ingress(cluster, policy)) as front:
            _empty_every_replica(front)
            before = _loads(front)
            for start in range(0, len(jobs), 4):  # four clients at a time
                responses, _ = asyncio.run(_fire(front.url, jobs[start : start + 4]))
                assert all(r.status_code == 200 for r in responses)
            loads[policy] = _loads(front) - before
    print("loads", loads)
    assert loads["affinity"] * 2 <= loads["pow2"], loads


def test_replica_killed_and_adapter_published_under_load(
    server, single, cluster, registry, tiny_backbone
):
    """A replica is killed while 200 requests are in flight and an adapter is published into
    the shared registry: requests to the dead replica get 503 + Retry-After (retried here),
    none is answered wrongly or lost, Ray replaces the replica, and both replicas serve the
    new adapter without a restart."""
    import ray

    from adapterhub.registry import publish

    jobs = _jobs(200, seed=3)
    want = _reference(single, jobs)
    victim = httpx.get(f"{server.url}/readyz").json()["replicas"]
    victim = sorted(victim)[0]
    new_id = "sentiment/pt@team:1.0.0"

    async def kill_and_publish(answered):
        while len(answered) < 30:  # both replicas are busy by then
            await asyncio.sleep(0.01)
        actor = ray.get_actor(f"SERVE_REPLICA::adapterhub#Replica#{victim}", namespace="serve")
        ray.kill(actor, no_restart=True)
        folder = make_adapter(tiny_backbone, registry.parent / "src-pt", "lora", 77, SENTIMENT)
        await asyncio.to_thread(publish, folder, new_id, backbone=tiny_backbone, store=registry)

    responses, unavailable = asyncio.run(
        _fire(server.url, jobs, retry_503=True, during=kill_and_publish)
    )
    for response, expected in zip(responses, want):
        assert response.status_code == 200, response.text
        _same(response.json(), expected)
    for response in unavailable:
        assert response.json()["error_type"] == "unavailable" and response.headers["Retry-After"]
    assert unavailable, "the kill landed between requests: nothing exercised the 503 path"
    print(f"{len(unavailable)} answers were 503 while {victim} died")
    # Ray replaces the replica; then both serve the adapter published meanwhile
    deadline = time.monotonic() + 150
    while True:
        ready = httpx.get(f"{server.url}/readyz", timeout=30).json()
        if ready["status"] == "ready" and victim not in ready["replicas"]:
            break
        assert time.monotonic() < deadline, ready
        time.sleep(1)
    want_new = httpx.post(
        f"{single.url}/v1/predict", json={"adapter": new_id, "inputs": TEXTS[:2]}
    ).json()
    for replica in ready["replicas"]:
        got = httpx.post(
            f"{server.url}/v1/predict",
            json={"adapter": new_id, "inputs": TEXTS[:2]},
            headers={HEADER: replica},
        )
        assert got.status_code == 200, got.text
        assert got.headers[HEADER] == replica
        _same(got.json(), want_new)


def test_shutdown_answers_what_it_accepted(cluster):
    """The ingress is told to stop while requests are in flight: every request it accepted is
    answered, and only after the last one does it take the replicas down (here: it records
    how many it had answered by then)."""
    answered_at_shutdown: list[float] = []
    front_app = ingress(
        cluster, on_shutdown=lambda: answered_at_shutdown.append(_answered(front_app))
    )
    jobs = _jobs(80, seed=5)
    in_flight_at_exit = []
    with ServerThread(front_app) as front:

        async def fire():
            async with httpx.AsyncClient(timeout=120) as client:
                done = []

                async def one(spec, texts):
                    response = await client.post(f"{front.url}/v1/predict", json=_body(spec, texts))
                    done.append(response)
                    return response

                tasks = [asyncio.ensure_future(one(s, t)) for s, t in jobs]
                while not done:
                    await asyncio.sleep(0.01)
                in_flight_at_exit.append(len(jobs) - len(done))
                front.server.should_exit = True
                return await asyncio.gather(*tasks, return_exceptions=True)

        responses = asyncio.run(fire())
    accepted = [r for r in responses if isinstance(r, httpx.Response)]
    assert in_flight_at_exit[0] > 0
    assert accepted and all(r.status_code == 200 for r in accepted)
    assert answered_at_shutdown == [len(accepted)]


def _answered(app) -> float:
    return sum(
        s.value
        for m in app.metrics.requests.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )
