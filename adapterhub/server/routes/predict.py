"""``POST /v1/predict``: labels and scores from one adapter, a [language, task] stack, or several
adapters over the same inputs (fan-out, :mod:`adapterhub.server.fanout`)."""

from __future__ import annotations

from fastapi import APIRouter

from adapterhub.runtime import format_prediction
from adapterhub.server.answers import FanOutResponse, PredictResponse
from adapterhub.server.errors import ERROR_RESPONSES
from adapterhub.server.fanout import predict_each
from adapterhub.server.inference import InferenceDep, require_head
from adapterhub.server.schemas import PredictRequest

router = APIRouter(tags=["predict"])


@router.post(
    "/v1/predict",
    response_model=PredictResponse | FanOutResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
)
async def predict(
    body: PredictRequest, inference: InferenceDep
) -> PredictResponse | FanOutResponse:
    """Labels and scores per input (per word for token tasks) from one adapter or a stack; with
    ``adapters``, from each of them, keyed by exact id, in one batched forward."""
    if body.adapters is not None:
        return await predict_each(inference, body.adapters, body.inputs)
    inference.check_inputs(body.inputs)
    with await inference.acquire(body.spec) as lease:
        owner = require_head(lease)
        rows = inference.encode(lease, body.inputs, "classify")
        outputs = await inference.forward(rows)
        return PredictResponse(
            adapters=lease.ids,
            task_type=owner.task_type or "sequence",
            predictions=[format_prediction(lease, r, o) for r, o in zip(rows, outputs)],
        )
