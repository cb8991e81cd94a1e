"""Text Embeddings Inference's routes, so its clients work unchanged: ``POST /predict`` (adapter
in the path or the ``X-Adapter-Id`` header) and ``POST /embed``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from adapterhub.runtime.outputs import embedding_vectors, tei_scores
from adapterhub.server.errors import ERROR_RESPONSES, ApiError
from adapterhub.server.inference import Inference, InferenceDep, require_head
from adapterhub.server.schemas import TEIEmbedRequest, TEIPredictRequest, TEIScore

ADAPTER_HEADER = "X-Adapter-Id"
AdapterHeader = Annotated[str | None, Header(alias=ADAPTER_HEADER)]
TEIScores = list[TEIScore] | list[list[TEIScore]]

router = APIRouter(tags=["tei"], responses=ERROR_RESPONSES)


def _texts(inputs: str | list[str]) -> list[str]:
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    if not texts:
        raise ApiError(422, "inputs is empty; send a text or a list of texts", "validation")
    return texts


async def _predict(body: TEIPredictRequest, adapter: str | None, inference: Inference) -> TEIScores:
    if not adapter:
        raise ApiError(
            422,
            f"name the adapter in the path (/predict/ADAPTER_ID) or the {ADAPTER_HEADER} header",
            "validation",
        )
    texts = _texts(body.inputs)
    inference.check_inputs(texts)
    with await inference.acquire([adapter]) as lease:
        owner = require_head(lease)
        if owner.task_type == "token":
            raise ApiError(422, f"{owner.id} is a token task; use POST /v1/predict", "validation")
        rows = inference.encode(lease, texts, "classify")
        if body.truncate is False:
            inference.refuse_cut(rows)
        outputs = await inference.forward(rows)
    answers = [
        [
            TEIScore(label=label, score=score)
            for label, score in tei_scores(owner.labels, o.logits, body.raw_scores)
        ]
        for o in outputs
    ]
    return answers[0] if isinstance(body.inputs, str) else answers


@router.post("/predict", response_model=TEIScores)
async def predict(
    body: TEIPredictRequest, inference: InferenceDep, x_adapter_id: AdapterHeader = None
) -> TEIScores:
    """TEI's ``/predict``; the adapter comes from the ``X-Adapter-Id`` header."""
    return await _predict(body, x_adapter_id, inference)


@router.post("/predict/{adapter_id:path}", response_model=TEIScores)
async def predict_path(
    adapter_id: str, body: TEIPredictRequest, inference: InferenceDep
) -> TEIScores:
    """TEI's ``/predict`` with the adapter in the path: ``/predict/sentiment/de``."""
    return await _predict(body, adapter_id, inference)


@router.post("/embed", response_model=list[list[float]])
async def embed(
    body: TEIEmbedRequest, inference: InferenceDep, x_adapter_id: AdapterHeader = None
) -> list[list[float]]:
    """Mean-pooled embeddings of the backbone (or of the backbone with an adapter)."""
    texts = _texts(body.inputs)
    inference.check_inputs(texts)
    with await inference.acquire([x_adapter_id] if x_adapter_id else None) as lease:
        rows = inference.encode(lease, texts, "embed")
        if body.truncate is False:
            inference.refuse_cut(rows)
        outputs = await inference.forward(rows)
    return embedding_vectors(outputs, body.normalize)
