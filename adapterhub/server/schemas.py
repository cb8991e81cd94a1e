"""Every payload of the HTTP API, as pydantic models (the OpenAPI at ``/docs`` is built from them),
but the answers to predictions: those are built from the task types, which import torch, and
live in :mod:`adapterhub.server.answers`, so that the pages (``adapterhub hub``) start without it."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _unicode(text: str) -> str:
    """Refuse a lone surrogate (JSON's ``"\\ud800"``, or its UTF-8-style bytes): it is no
    character, and neither the tokenizer nor a UTF-8 writer can take it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"character {exc.start} is a lone surrogate (U+{ord(text[exc.start]):04X}), which is "
            "not Unicode text; send UTF-8, and a character beyond U+FFFF as a pair of escapes "
            "(\\ud83d\\ude00) or as itself"
        ) from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]
"""A string of Unicode characters (every text and id a request sends)."""

# ----------------------------------------------------------------------------- /v1/predict


class PredictRequest(BaseModel):
    """Name ONE adapter, a [language, task] stack, or several adapters (fan-out: each labels
    every input, all from one batched forward; answers keyed by exact id), and the texts."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"adapter": "sentiment/de", "inputs": ["Das Buch ist wunderbar."]},
                {"stack": ["lang/de", "sentiment/en"], "inputs": ["Der Film war langweilig."]},
                {"adapters": ["sentiment/de", "langid/multi"], "inputs": ["Das Buch ist gut."]},
            ]
        },
    )
    adapter: Text | None = Field(
        None, description="adapter id, e.g. sentiment/de or sentiment/de@team:1.2.0"
    )
    stack: list[Text] | None = Field(
        None, min_length=2, max_length=2, description="[LANGUAGE_ADAPTER_ID, TASK_ADAPTER_ID]"
    )
    adapters: list[Text] | None = Field(
        None, min_length=1, description="fan-out: several adapter ids, each answering every input"
    )
    inputs: list[Text] = Field(
        ..., min_length=1, description="texts; for token tasks, words split on spaces"
    )

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if sum(v is not None for v in (self.adapter, self.stack, self.adapters)) != 1:
            raise ValueError('give exactly one of "adapter", "stack" or "adapters"')
        return self

    @property
    def spec(self) -> list[str]:
        return [self.adapter] if self.adapter is not None else list(self.stack or [])


# ----------------------------------------------------------------------------- TEI-shaped

_TRUNCATE = (
    "false: an input longer than the adapter's token limit is refused (413); true or unset: it "
    "is cut at the limit"
)


class TEIPredictRequest(BaseModel):
    """Text Embeddings Inference's ``/predict`` body; the adapter comes from the path or the
    ``X-Adapter-Id`` header."""

    model_config = ConfigDict(extra="ignore")
    inputs: Text | list[Text] = Field(..., description="one text or a list of texts")
    raw_scores: bool = Field(False, description="logits instead of probabilities")
    truncate: bool | None = Field(None, description=_TRUNCATE)


class TEIScore(BaseModel):
    label: str
    score: float


class TEIEmbedRequest(BaseModel):
    """Text Embeddings Inference's ``/embed`` body (mean-pooled backbone embeddings, or the
    adapted backbone's with ``X-Adapter-Id``). No prefix is added: send e5's ``query: `` yourself."""

    model_config = ConfigDict(extra="ignore")
    inputs: Text | list[Text]
    normalize: bool = True
    truncate: bool | None = Field(None, description=_TRUNCATE)


# ----------------------------------------------------------------------------- adapters


class AdapterInfo(BaseModel):
    id: str
    method: str
    kind: str
    task_type: str | None
    labels: list[str]
    bytes: int
    requests: int
    loaded_at: float
    load_ms: float


class AdaptersResponse(BaseModel):
    resident: list[AdapterInfo]
    available: list[str]
    yanked: dict[str, str] = Field(
        default_factory=dict,
        description="yanked versions the registry holds, with the reason: never loaded or served",
    )
    stats: dict[str, Any]


class UnloadResponse(BaseModel):
    id: str
    unloaded: bool


class ErrorResponse(BaseModel):
    error: str
    error_type: str


class Health(BaseModel):
    status: str
