"""Embeddings per adapter: ``POST /v1/embed``, and TEI's ``POST /similarity`` and ``/rerank``.

An embedding is the mean-pooled last hidden state over the attention mask (the e5 recipe), of
the bare backbone or of the backbone with an adapter (a retrieval adapter, made for this, or any
other), L2-normalised unless ``normalize`` is false. Requests naming different adapters share
the batched forward, and a fan-out (``adapters``) embeds the same inputs with several adapters in
one forward. No prefix is added: send e5's ``query: `` yourself (``retrieval/multi`` was trained
with it on both sides). ``/similarity`` and ``/rerank`` score by cosine similarity (a
bi-encoder: TEI's rerank uses a cross-encoder, whose scores these are not); their adapter comes
from the ``X-Adapter-Id`` header as TEI's ``/embed`` takes it.
"""

from __future__ import annotations

import torch
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from adapterhub.runtime import RowOutput
from adapterhub.runtime.outputs import embedding_vectors
from adapterhub.server.errors import ERROR_RESPONSES
from adapterhub.server.fanout import fan_out
from adapterhub.server.inference import Inference, InferenceDep
from adapterhub.server.routes.tei import AdapterHeader
from adapterhub.server.schemas import Text
from adapterhub.tasks.retrieval import cosine_similarities

router = APIRouter(responses=ERROR_RESPONSES)

_TRUNCATE = "false: an input longer than the token limit is refused (413); true or unset: it is cut"


class EmbedRequest(BaseModel):
    """At most ONE of ``adapter``, ``stack`` or ``adapters`` (none: the bare backbone)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"adapter": "retrieval/multi", "inputs": ["query: ¿Dónde está la estación?"]},
                {"inputs": ["query: Where is the station?"]},
                {
                    "adapters": ["retrieval/multi", "sentiment/de"],
                    "inputs": ["query: Das Buch ist gut."],
                },
            ]
        },
    )
    adapter: Text | None = Field(None, description="adapter id, e.g. retrieval/multi")
    stack: list[Text] | None = Field(
        None, min_length=2, max_length=2, description="[LANGUAGE_ADAPTER_ID, TASK_ADAPTER_ID]"
    )
    adapters: list[Text] | None = Field(
        None,
        min_length=1,
        description="fan-out: embed the inputs with each of these adapters, in one forward",
    )
    inputs: list[Text] = Field(..., min_length=1, description="texts, sent as they are")
    normalize: bool = Field(True, description="scale each embedding to unit length")
    truncate: bool | None = Field(None, description=_TRUNCATE)

    @model_validator(mode="after")
    def _at_most_one(self) -> EmbedRequest:
        given = [k for k in ("adapter", "stack", "adapters") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                f'give at most one of "adapter", "stack" or "adapters", not {" and ".join(given)}'
            )
        return self


class EmbedResponse(BaseModel):
    adapters: list[str] = Field(..., description="the exact ids applied (stack order); []: none")
    dimensions: int
    embeddings: list[list[float]] = Field(..., description="one per input, in order")


class FanOutEmbedResponse(BaseModel):
    adapters: list[str] = Field(..., description="the exact ids, in request order")
    dimensions: int
    results: dict[str, list[list[float]]] = Field(
        ..., description="each adapter's embeddings (one per input), keyed by its exact id"
    )


class SimilarityInputs(BaseModel):
    source_sentence: Text
    sentences: list[Text] = Field(..., min_length=1)


class SimilarityRequest(BaseModel):
    """Text Embeddings Inference's ``/similarity`` body."""

    model_config = ConfigDict(extra="ignore")
    inputs: SimilarityInputs
    truncate: bool | None = Field(None, description=_TRUNCATE)


class RerankRequest(BaseModel):
    """Text Embeddings Inference's ``/rerank`` body."""

    model_config = ConfigDict(extra="ignore")
    query: Text
    texts: list[Text] = Field(..., min_length=1)
    return_text: bool = Field(False, description="include each text in its answer")
    truncate: bool | None = Field(None, description=_TRUNCATE)


class Rank(BaseModel):
    index: int = Field(..., description="the text's position in the request")
    score: float = Field(..., description="cosine similarity to the query")
    text: str | None = None


async def _embed(
    inference: Inference, spec: list[str] | None, texts: list[str], truncate: bool | None
) -> tuple[list[str], list[RowOutput]]:
    """(exact ids, each text's output: its mean-pooled embedding) with one adapter, a stack or
    none (the bare backbone)."""
    inference.check_inputs(texts)
    with await inference.acquire(spec) as lease:
        rows = inference.encode(lease, texts, "embed")
        if truncate is False:
            inference.refuse_cut(rows)
        return lease.ids, await inference.forward(rows)


async def _scores(
    inference: Inference, adapter: str | None, source: str, texts: list[str], truncate: bool | None
) -> list[float]:
    """Cosine similarity of ``source`` with each of ``texts``, from one forward."""
    _, outputs = await _embed(inference, [adapter] if adapter else None, [source, *texts], truncate)
    vectors = [output.embedding for output in outputs]
    return cosine_similarities(vectors[0], torch.stack(vectors[1:]))


@router.post(
    "/v1/embed",
    tags=["embed"],
    response_model=EmbedResponse | FanOutEmbedResponse,
)
async def embed(body: EmbedRequest, inference: InferenceDep) -> EmbedResponse | FanOutEmbedResponse:
    """Embeddings of the inputs with one adapter, a [language, task] stack, none (the bare
    backbone), or each of several adapters (fan-out, keyed by exact id)."""
    if body.adapters is not None:
        async with fan_out(inference, body.adapters, body.inputs, "embed", body.truncate) as out:
            results = {a.id: embedding_vectors(a.outputs, body.normalize) for a in out}
        first = next(iter(results.values()))
        return FanOutEmbedResponse(
            adapters=list(results), dimensions=len(first[0]), results=results
        )
    spec = [body.adapter] if body.adapter is not None else body.stack
    ids, outputs = await _embed(inference, spec, body.inputs, body.truncate)
    vectors = embedding_vectors(outputs, body.normalize)
    return EmbedResponse(adapters=ids, dimensions=len(vectors[0]), embeddings=vectors)


@router.post("/similarity", tags=["tei"], response_model=list[float])
async def similarity(
    body: SimilarityRequest, inference: InferenceDep, x_adapter_id: AdapterHeader = None
) -> list[float]:
    """TEI's ``/similarity``: the cosine of ``source_sentence`` with each of ``sentences``."""
    inputs = body.inputs
    return await _scores(
        inference, x_adapter_id, inputs.source_sentence, inputs.sentences, body.truncate
    )


@router.post("/rerank", tags=["tei"], response_model=list[Rank], response_model_exclude_none=True)
async def rerank(
    body: RerankRequest, inference: InferenceDep, x_adapter_id: AdapterHeader = None
) -> list[Rank]:
    """TEI's ``/rerank``: the texts by cosine similarity to ``query``, best first."""
    scores = await _scores(inference, x_adapter_id, body.query, body.texts, body.truncate)
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [
        Rank(index=i, score=scores[i], text=body.texts[i] if body.return_text else None)
        for i in order
    ]
