"""The real server (uvicorn on a loopback port) driven over HTTP with httpx."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import httpx
import pytest
import torch
from serving_helpers import BULK, SPECS, post_retrying, reference_logits, reference_model

from adapterhub.config import ServerConfig
from adapterhub.errors import UsageError
from adapterhub.runtime import Runtime
from adapterhub.server import ServerThread, create_app

TOKEN = "s3cret-token"
TEXTS = [
    "the film was very good",
    "der film ist nicht gut",
    "le livre est très bon",
    "el libro es malo",
    "i love this book",
    "het boek is heel slecht",
    "电影 非常 好",
    "boring plot and a terrible actor",
]


@pytest.fixture(scope="module")
def expected(tiny_backbone, zoo):
    """Scores per (spec, text) from an unbounded in-process runtime (exact vs PEFT: test_runtime)."""

    reference = Runtime(tiny_backbone, registry=zoo.registry)
    return {
        (tuple(spec), text): prediction
        for spec in SPECS
        for text, prediction in zip(TEXTS, reference.predict(spec, TEXTS))
    }


@pytest.fixture(scope="module")
def server(tiny_backbone, zoo):

    runtime = Runtime(tiny_backbone, registry=zoo.registry, max_resident=5, bank_chunk=2)
    config = ServerConfig(
        max_batch_tokens=2048, max_wait_ms=10, max_inputs=8, max_chars=200, admin_token=TOKEN
    )
    with ServerThread(create_app(runtime, config)) as running:
        running.runtime = runtime
        yield running


def _close(got: dict, want: dict) -> None:
    assert got["label"] == want["label"]
    assert got["scores"].keys() == want["scores"].keys()
    for label, value in want["scores"].items():
        assert abs(got["scores"][label] - value) < 1e-5


def test_predict_single_adapter_matches_peft(server, tiny_backbone, zoo):
    adapter = "sentiment/fr@team:1.0.0"
    response = httpx.post(
        f"{server.url}/v1/predict", json={"adapter": adapter, "inputs": TEXTS[:3]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["adapters"] == [adapter] and body["task_type"] == "sequence"
    model = reference_model(tiny_backbone, [zoo.folders[adapter]], ["lora"])
    # this adapter's recipe prefixed every text with "query: " in training: so must serving
    want = reference_logits(tiny_backbone, model, zoo.folders[adapter], TEXTS[:3], prefix="query: ")
    for prediction, logits in zip(body["predictions"], want):
        probs = torch.softmax(logits, -1)
        for label, p in zip(["negative", "positive"], probs):
            assert abs(prediction["scores"][label] - float(p)) < 1e-5


def test_stack_and_token_task(server, expected):
    spec = ["lang/de@team:1.0.0", "sentiment/de@team:1.0.0"]
    response = httpx.post(f"{server.url}/v1/predict", json={"stack": spec, "inputs": TEXTS[:2]})
    assert response.status_code == 200, response.text
    assert response.json()["adapters"] == spec
    for got, text in zip(response.json()["predictions"], TEXTS[:2]):
        _close(got, expected[(tuple(spec), text)])
    response = httpx.post(
        f"{server.url}/v1/predict", json={"adapter": "pos/de@team", "inputs": ["der film ist gut"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task_type"] == "token"
    tokens = body["predictions"][0]["tokens"]
    assert [t["word"] for t in tokens] == ["der", "film", "ist", "gut"]
    assert all(t["label"] in {"NOUN", "VERB", "ADJ", "DET", "X"} for t in tokens)


def test_concurrent_mixed_requests_with_loads_and_evictions(server, expected):
    """300 concurrent requests over 18 adapters/stacks in a pool of 5, while an admin loads and
    unloads adapters: every answer is right and none is dropped."""
    rng = random.Random(1)
    jobs = []
    for _ in range(300):
        spec = rng.choice(SPECS)
        texts = rng.sample(TEXTS, rng.randint(1, 3))
        jobs.append((spec, texts))
    stop = threading.Event()
    admin_errors = []

    def admin() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                adapter = rng.choice(BULK)
                r = client.post(f"{server.url}/v1/adapters/{adapter}:load", headers=headers)
                if r.status_code != 200:
                    admin_errors.append(r.text)
                r = client.delete(f"{server.url}/v1/adapters/{rng.choice(BULK)}", headers=headers)
                if r.status_code not in (200, 404):
                    admin_errors.append(r.text)

    async def fire():
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:

            async def one(spec, texts):
                # wrong answers and 5xx are what the test counts, not backpressure under load
                body = {"adapter": spec[0]} if len(spec) == 1 else {"stack": spec}
                body["inputs"] = texts
                return await post_retrying(client, f"{server.url}/v1/predict", body)

            return await asyncio.gather(*(one(s, t) for s, t in jobs))

    before = server.runtime.stats()
    swapper = threading.Thread(target=admin)
    swapper.start()
    try:
        responses = asyncio.run(fire())
    finally:
        stop.set()
        swapper.join()
    assert not admin_errors
    assert len(responses) == len(jobs)
    for (spec, texts), response in zip(jobs, responses):
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == len(texts)
        for got, text in zip(predictions, texts):
            _close(got, expected[(tuple(spec), text)])
    after = server.runtime.stats()
    assert after["evictions"] > before["evictions"]
    assert after["loads"] > before["loads"]
    metrics = httpx.get(f"{server.url}/metrics").text
    # batching really happened: some forward served more than one request's inputs
    count = _metric(metrics, "adapterhub_batch_size_count")
    summed = _metric(metrics, "adapterhub_batch_size_sum")
    assert summed / count > 2.5
    assert _metric(metrics, "adapterhub_batch_distinct_adapters_sum") > count


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_tei_predict_and_embed(server, tiny_backbone, expected):
    adapter = "sentiment/de@team:1.0.0"
    by_path = httpx.post(f"{server.url}/predict/{adapter}", json={"inputs": TEXTS[0]})
    assert by_path.status_code == 200, by_path.text
    scores = by_path.json()
    assert [s["score"] for s in scores] == sorted((s["score"] for s in scores), reverse=True)
    want = expected[((adapter,), TEXTS[0])]
    assert scores[0]["label"] == want["label"]
    assert abs(scores[0]["score"] - want["scores"][want["label"]]) < 1e-5
    by_header = httpx.post(
        f"{server.url}/predict",
        json={"inputs": TEXTS[:2], "raw_scores": True},
        headers={"X-Adapter-Id": adapter},
    )
    assert by_header.status_code == 200, by_header.text
    assert len(by_header.json()) == 2 and len(by_header.json()[0]) == 2
    embedded = httpx.post(
        f"{server.url}/embed", json={"inputs": ["query: " + t for t in TEXTS[:3]]}
    )
    assert embedded.status_code == 200, embedded.text
    reference = tiny_backbone.embed(TEXTS[:3])  # adds the "query: " prefix itself
    assert torch.allclose(torch.tensor(embedded.json()), reference, atol=1e-5)
    adapted = httpx.post(
        f"{server.url}/embed", json={"inputs": TEXTS[0]}, headers={"X-Adapter-Id": adapter}
    )
    assert adapted.status_code == 200
    plain = httpx.post(f"{server.url}/embed", json={"inputs": TEXTS[0]})
    assert max(abs(a - b) for a, b in zip(adapted.json()[0], plain.json()[0])) > 1e-4


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"adapter": "nothing/xx@team", "inputs": ["a"]}, 404, "not"),
        ({"adapter": "sentiment/de@team:9.9.9", "inputs": ["a"]}, 404, "not"),
        ({"adapter": "sentiment/it@other:1.0.0", "inputs": ["a"]}, 409, "backbone"),
        ({"adapter": "sentiment/de@team", "inputs": ["a"] * 9}, 413, "limit is 8"),
        ({"adapter": "sentiment/de@team", "inputs": ["a" * 201]}, 413, "limit is 200"),
        ({"adapter": "sentiment/de@team", "inputs": []}, 422, "inputs"),
        (
            {
                "adapter": "sentiment/de@team",
                "stack": ["lang/de@team", "sentiment/de@team"],
                "inputs": ["a"],
            },
            422,
            "exactly one",
        ),
        ({"inputs": ["a"]}, 422, "exactly one"),
        ({"adapter": "Not An Id", "inputs": ["a"]}, 422, "not an adapter id"),
        ({"adapter": "lang/de@team", "inputs": ["a"]}, 422, "no task head"),
        ({"stack": ["lang/de@team"], "inputs": ["a"]}, 422, "stack"),
        ({"adapter": "sentiment/de@team", "inputs": [3]}, 422, "string"),
    ],
)
def test_error_cases(server, body, status, words):
    response = httpx.post(f"{server.url}/v1/predict", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert words.lower() in error["error"].lower()
    assert error["error_type"]


def test_tei_errors(server):
    assert httpx.post(f"{server.url}/predict", json={"inputs": "a"}).status_code == 422
    assert httpx.post(f"{server.url}/predict/nothing/xx", json={"inputs": "a"}).status_code == 404
    token_task = httpx.post(f"{server.url}/predict/pos/de@team", json={"inputs": "a"})
    assert token_task.status_code == 422 and "/v1/predict" in token_task.json()["error"]
    assert httpx.post(f"{server.url}/embed", json={"inputs": ["a"] * 9}).status_code == 413


def test_admin_routes_need_the_token(server):
    url = f"{server.url}/v1/adapters/topic/x0@bulk:1.0.0:load"
    assert httpx.post(url).status_code == 401
    wrong = httpx.post(url, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.delete(f"{server.url}/v1/adapters/topic/x0@bulk:1.0.0").status_code == 401
    headers = {"Authorization": f"Bearer {TOKEN}"}
    loaded = httpx.post(url, headers=headers)
    assert loaded.status_code == 200 and loaded.json()["id"] == "topic/x0@bulk:1.0.0"
    listing = httpx.get(f"{server.url}/v1/adapters").json()
    assert "topic/x0@bulk:1.0.0" in {r["id"] for r in listing["resident"]}
    assert "sentiment/it@other:1.0.0" in listing["available"]
    assert (
        httpx.delete(f"{server.url}/v1/adapters/topic/x0@bulk:1.0.0", headers=headers).status_code
        == 200
    )
    assert (
        httpx.delete(f"{server.url}/v1/adapters/topic/x0@bulk:1.0.0", headers=headers).status_code
        == 404
    )
    assert (
        httpx.post(f"{server.url}/v1/adapters/nothing/xx:load", headers=headers).status_code == 404
    )
    assert (
        httpx.post(
            f"{server.url}/v1/adapters/sentiment/it@other:1.0.0:load", headers=headers
        ).status_code
        == 409
    )


def test_ops_routes(server):
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").status_code == 200
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200
    for name in (
        "adapterhub_queue_seconds_bucket",
        "adapterhub_inference_seconds_bucket",
        "adapterhub_batch_size_bucket",
        "adapterhub_adapter_loads_total",
        "adapterhub_adapter_evictions_total",
        "adapterhub_adapter_requests_total{adapter=",
    ):
        assert name in metrics.text
    assert httpx.get(f"{server.url}/docs").status_code == 200
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert {"/v1/predict", "/predict", "/embed", "/v1/adapters", "/metrics"} <= set(paths)


def test_full_queue_answers_429_with_retry_after(tiny_backbone, zoo):

    runtime = Runtime(tiny_backbone, registry=zoo.registry)
    # a long batching window keeps the first requests counted as queued while the next arrive
    config = ServerConfig(max_queue=4, max_inputs=2, max_wait_ms=4000, max_batch_tokens=100_000)
    with ServerThread(create_app(runtime, config)) as running:
        body = {"adapter": "sentiment/de@team", "inputs": ["a", "b"]}
        runtime.load("sentiment/de@team")

        async def fire():
            async with httpx.AsyncClient(timeout=30) as client:
                first = [
                    asyncio.create_task(client.post(f"{running.url}/v1/predict", json=body))
                    for _ in range(2)
                ]
                # wait until both sit in the queue (the gauge), then overflow it
                deadline = time.monotonic() + 3
                while time.monotonic() < deadline:
                    metrics = (await client.get(f"{running.url}/metrics")).text
                    if "adapterhub_queue_inputs 4.0" in metrics:
                        break
                    await asyncio.sleep(0.05)
                third = await client.post(f"{running.url}/v1/predict", json=body)
                return third, await asyncio.gather(*first)

        started = time.monotonic()
        refused, served = asyncio.run(fire())
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        assert "queue is full" in refused.json()["error"]
        assert [r.status_code for r in served] == [200, 200]  # queued work still completes
        assert time.monotonic() - started < 20


def test_admin_disabled_without_token(tiny_backbone, zoo):

    with ServerThread(create_app(Runtime(tiny_backbone, registry=zoo.registry))) as running:
        response = httpx.post(
            f"{running.url}/v1/adapters/topic/x0@bulk:1.0.0:load",
            headers={"Authorization": "Bearer x"},
        )
        assert response.status_code == 403 and "--admin-token" in response.json()["error"]


def test_limits_that_cannot_work_are_refused(tiny_backbone, zoo):

    with pytest.raises(UsageError, match="max-queue"):
        create_app(
            Runtime(tiny_backbone, registry=zoo.registry), ServerConfig(max_inputs=10, max_queue=5)
        )
