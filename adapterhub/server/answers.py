"""The answers to predictions, as pydantic models: each task type's answer for one input
(:data:`Prediction`, from ``adapterhub.tasks``) and the responses of ``/v1/predict``.

Apart from :mod:`adapterhub.server.schemas` because the task types import torch: the web pages
(``adapterhub hub``) use the schemas without loading it.
"""

from __future__ import annotations

from typing import Union

from pydantic import BaseModel, Field

from adapterhub.tasks import TASK_TYPES

Prediction = Union[tuple(t.output_model for t in TASK_TYPES.values() if t.output_model)]  # noqa: UP007
"""One input's answer: the schema of the answering adapter's task type (``adapterhub.tasks``)."""


class PredictResponse(BaseModel):
    adapters: list[str] = Field(..., description="the exact ids that answered (stack order)")
    task_type: str
    predictions: list[Prediction]


class AdapterPredictions(BaseModel):
    task_type: str
    predictions: list[Prediction] = Field(..., description="one per input, in order")


class FanOutResponse(BaseModel):
    """The answer to ``adapters``: each adapter's predictions, keyed by its exact id."""

    adapters: list[str] = Field(..., description="the exact ids, in request order")
    results: dict[str, AdapterPredictions]
