"""``POST /v1/predict``: labels and scores from one adapter or a [language, task] stack."""

from __future__ import annotations

from fastapi import APIRouter

from adapterhub.runtime import format_prediction
from adapterhub.server.errors import ERROR_RESPONSES
from adapterhub.server.inference import InferenceDep, require_head
from adapterhub.server.schemas import PredictRequest, PredictResponse

router = APIRouter(tags=["predict"])


@router.post(
    "/v1/predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
)
async def predict(body: PredictRequest, inference: InferenceDep) -> PredictResponse:
    """Labels and scores per input (per word for token tasks) from one adapter or a stack."""
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
