"""Embeddings per adapter over HTTP: /v1/embed (one adapter, a stack, none, a fan-out), TEI's
/embed, /similarity and /rerank, and the /v1/predict fan-out, each against plain PEFT or
against single-adapter calls."""

from __future__ import annotations

import httpx
import pytest
import torch
from retrieval_helpers import CLASSIFIERS, LANGUAGE, RETRIEVAL, peft_embeddings

from adapterhub.config import ServerConfig
from adapterhub.runtime import Runtime
from adapterhub.server import ServerThread, create_app

TEXTS = [
    "query: the film was very good",
    "query: der film ist nicht gut",
    "query: el libro es malo",
    "query: 电影 非常 好",
]
MAX_INPUTS = 16


class CountingRuntime(Runtime):
    """The real runtime, counting its batched forwards (to show a request took one)."""

    forwards = 0

    def forward(self, rows):
        CountingRuntime.forwards += 1
        return super().forward(rows)


@pytest.fixture(scope="module")
def server(tiny_backbone, retrieval_zoo):
    runtime = CountingRuntime(tiny_backbone, registry=retrieval_zoo.registry)
    config = ServerConfig(max_batch_tokens=4096, max_wait_ms=5, max_inputs=MAX_INPUTS)
    with ServerThread(create_app(runtime, config)) as running:
        yield running


def _post(server, path: str, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=headers or {}, timeout=60)


def _ok(response: httpx.Response):
    assert response.status_code == 200, response.text
    return response.json()


def _forwards(server, path: str, body: dict) -> tuple[dict, int]:
    before = CountingRuntime.forwards
    answer = _ok(_post(server, path, body))
    return answer, CountingRuntime.forwards - before


def test_v1_embed_one_adapter_equals_plain_peft(server, tiny_backbone, retrieval_zoo):
    for adapter in RETRIEVAL:
        body = _ok(_post(server, "/v1/embed", {"adapter": adapter, "inputs": TEXTS}))
        assert body["adapters"] == [adapter] and body["dimensions"] == tiny_backbone.hidden_size
        want = peft_embeddings(tiny_backbone, retrieval_zoo.folders[adapter], TEXTS)
        assert torch.allclose(torch.tensor(body["embeddings"]), want, atol=1e-5)


def test_v1_embed_without_an_adapter_is_the_bare_backbone(server, tiny_backbone):
    body = _ok(_post(server, "/v1/embed", {"inputs": TEXTS}))
    assert body["adapters"] == []
    want = peft_embeddings(tiny_backbone, None, TEXTS)
    assert torch.allclose(torch.tensor(body["embeddings"]), want, atol=1e-5)
    raw = _ok(_post(server, "/v1/embed", {"inputs": TEXTS[:1], "normalize": False}))
    length = torch.tensor(raw["embeddings"][0]).norm()
    assert abs(float(length) - 1) > 1e-3  # not normalised when asked not to be
    direction = torch.nn.functional.normalize(torch.tensor(raw["embeddings"][0]), dim=0)
    assert torch.allclose(direction, want[0], atol=1e-5)


def test_v1_embed_a_stack_applies_both_adapters(server, tiny_backbone, retrieval_zoo):
    stack = [LANGUAGE, RETRIEVAL[0]]
    body = _ok(_post(server, "/v1/embed", {"stack": stack, "inputs": TEXTS[:2]}))
    assert body["adapters"] == stack
    alone = _ok(_post(server, "/v1/embed", {"adapter": RETRIEVAL[0], "inputs": TEXTS[:2]}))
    gap = (torch.tensor(body["embeddings"]) - torch.tensor(alone["embeddings"])).abs().max()
    assert gap > 1e-4  # the language adapter took part


def test_v1_embed_fan_out_is_one_forward_of_mixed_adapters_equal_to_peft(
    server, tiny_backbone, retrieval_zoo
):
    adapters = [*RETRIEVAL, CLASSIFIERS[0]]  # any adapter embeds; heads are not used
    body, forwards = _forwards(server, "/v1/embed", {"adapters": adapters, "inputs": TEXTS})
    assert forwards == 1
    assert body["adapters"] == adapters and list(body["results"]) == adapters
    for adapter in adapters:
        want = peft_embeddings(tiny_backbone, retrieval_zoo.folders[adapter], TEXTS)
        assert torch.allclose(torch.tensor(body["results"][adapter]), want, atol=1e-5)


def test_tei_embed_honours_the_adapter_header_exactly(server, tiny_backbone, retrieval_zoo):
    adapter = RETRIEVAL[1]
    got = _ok(_post(server, "/embed", {"inputs": TEXTS}, {"X-Adapter-Id": adapter}))
    want = peft_embeddings(tiny_backbone, retrieval_zoo.folders[adapter], TEXTS)
    assert torch.allclose(torch.tensor(got), want, atol=1e-5)


@pytest.mark.parametrize("adapter", [None, RETRIEVAL[0]])
def test_similarity_is_the_cosine_of_peft_embeddings(server, tiny_backbone, retrieval_zoo, adapter):
    headers = {"X-Adapter-Id": adapter} if adapter else {}
    body = {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]}}
    scores = _ok(_post(server, "/similarity", body, headers))
    assert isinstance(scores, list) and len(scores) == len(TEXTS) - 1
    vectors = peft_embeddings(
        tiny_backbone, retrieval_zoo.folders[adapter] if adapter else None, TEXTS
    )
    want = (vectors[1:] @ vectors[0]).tolist()
    assert max(abs(a - b) for a, b in zip(scores, want)) < 1e-5


def test_rerank_orders_texts_by_cosine_and_can_return_them(server, tiny_backbone, retrieval_zoo):
    adapter = RETRIEVAL[0]
    body = {"query": TEXTS[0], "texts": TEXTS[1:], "return_text": True}
    ranks = _ok(_post(server, "/rerank", body, {"X-Adapter-Id": adapter}))
    vectors = peft_embeddings(tiny_backbone, retrieval_zoo.folders[adapter], TEXTS)
    want = (vectors[1:] @ vectors[0]).tolist()
    assert sorted(r["index"] for r in ranks) == list(range(len(TEXTS) - 1))
    assert [r["index"] for r in ranks] == sorted(range(len(want)), key=lambda i: -want[i])
    for rank in ranks:
        assert abs(rank["score"] - want[rank["index"]]) < 1e-5
        assert rank["text"] == TEXTS[1 + rank["index"]]
    bare = _ok(_post(server, "/rerank", {"query": TEXTS[0], "texts": TEXTS[1:]}))
    assert all(set(r) == {"index", "score"} for r in bare)  # no text unless asked


def test_predict_fan_out_equals_single_adapter_calls_from_one_forward(server):
    single = {
        a: _ok(_post(server, "/v1/predict", {"adapter": a, "inputs": TEXTS})) for a in CLASSIFIERS
    }
    body, forwards = _forwards(server, "/v1/predict", {"adapters": CLASSIFIERS, "inputs": TEXTS})
    assert forwards == 1
    assert body["adapters"] == CLASSIFIERS and list(body["results"]) == CLASSIFIERS
    for adapter, alone in single.items():
        got = body["results"][adapter]
        assert got["task_type"] == alone["task_type"] == "sequence"
        for mine, theirs in zip(got["predictions"], alone["predictions"], strict=True):
            assert mine["label"] == theirs["label"]
            assert mine["scores"].keys() == theirs["scores"].keys()
            for label, value in theirs["scores"].items():
                assert abs(mine["scores"][label] - value) < 1e-6


def test_predict_fan_out_keys_answers_by_the_exact_id(server):
    short = CLASSIFIERS[0].split(":")[0]  # sentiment/de@team: the newest version
    body = _ok(_post(server, "/v1/predict", {"adapters": [short], "inputs": TEXTS[:1]}))
    assert body["adapters"] == [CLASSIFIERS[0]] and list(body["results"]) == [CLASSIFIERS[0]]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/v1/predict", {"adapter": CLASSIFIERS[0], "adapters": CLASSIFIERS, "inputs": ["a"]}, 422,
         "exactly one"),
        ("/v1/predict", {"inputs": ["a"]}, 422, "exactly one"),
        ("/v1/predict", {"adapters": [], "inputs": ["a"]}, 422, "adapters"),
        ("/v1/predict", {"adapters": [CLASSIFIERS[0], CLASSIFIERS[0].split(":")[0]],
                         "inputs": ["a"]}, 422, "once"),
        ("/v1/predict", {"adapters": [CLASSIFIERS[0], RETRIEVAL[0]], "inputs": ["a"]}, 422,
         "head"),
        ("/v1/predict", {"adapter": RETRIEVAL[0], "inputs": ["a"]}, 422, "head"),
        ("/v1/predict", {"adapters": CLASSIFIERS, "inputs": ["a"] * 9}, 413, "18 rows"),
        ("/v1/embed", {"adapter": RETRIEVAL[0], "adapters": RETRIEVAL, "inputs": ["a"]}, 422,
         "at most one"),
        ("/v1/embed", {"adapters": RETRIEVAL * 2, "inputs": ["a"]}, 422, "once"),
        ("/v1/embed", {"inputs": []}, 422, "inputs"),
        ("/similarity", {"inputs": {"source_sentence": "a", "sentences": []}}, 422, "sentences"),
        ("/rerank", {"query": "a", "texts": ["b"] * (MAX_INPUTS + 1)}, 413, "limit"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_with_a_reason(server, path, body, status, words):
    response = _post(server, path, body)
    assert response.status_code == status, response.text
    assert words in response.text
