"""Fan-out: one request names several adapters over the same inputs, answered from one forward.

Each adapter is pinned for the request, every input is encoded as each adapter reads it, and all
the rows (adapters x inputs) go to the batcher as ONE piece of work, so the backbone runs once
for all of them (several times only if they exceed ``--max-batch-tokens``); each adapter's rows
carry its own adapter through the batched forward, so its answers equal a request that names it
alone. ``/v1/predict`` and ``/v1/embed`` key each adapter's answers by its full id.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from adapterhub.runtime import Lease, Row, RowOutput, format_prediction
from adapterhub.server.answers import AdapterPredictions, FanOutResponse
from adapterhub.server.errors import ApiError
from adapterhub.server.inference import Inference, require_head


@dataclass
class Answer:
    """One adapter's share of a fan-out: its lease, its rows and their outputs, in input order."""

    lease: Lease
    rows: list[Row]
    outputs: list[RowOutput]

    @property
    def id(self) -> str:
        return self.lease.ids[0]


@contextlib.asynccontextmanager
async def fan_out(
    inference: Inference,
    names: Sequence[str],
    texts: Sequence[str],
    mode: str,
    truncate: bool | None = None,
) -> AsyncIterator[list[Answer]]:
    """Pin ``names``, run ``texts`` through each in one batched forward, yield each adapter's
    :class:`Answer` (the adapters stay pinned until the block ends)."""
    inference.check_inputs(texts)
    total = len(names) * len(texts)
    if total > inference.config.max_inputs:
        raise ApiError(
            413,
            f"{len(names)} adapters x {len(texts)} inputs = {total} rows; the limit is "
            f"{inference.config.max_inputs} (fewer adapters or inputs per request)",
            "payload_too_large",
        )
    async with contextlib.AsyncExitStack() as stack:
        leases: list[Lease] = []
        for name in names:
            lease = await inference.acquire([name])
            stack.callback(lease.release)
            leases.append(lease)
        seen: dict[str, str] = {}
        for name, lease in zip(names, leases):
            if lease.ids[0] in seen:
                raise ApiError(
                    422,
                    f"{seen[lease.ids[0]]} and {name} are both {lease.ids[0]}; name each "
                    "adapter once",
                    "validation",
                )
            seen[lease.ids[0]] = name
        if mode == "classify":
            for lease in leases:
                require_head(lease)
        per_adapter = [inference.encode(lease, texts, mode) for lease in leases]
        rows = [row for adapter_rows in per_adapter for row in adapter_rows]
        if truncate is False:
            inference.refuse_cut(rows)
        outputs = await inference.forward(rows)
        answers, start = [], 0
        for lease, adapter_rows in zip(leases, per_adapter):
            answers.append(Answer(lease, adapter_rows, outputs[start : start + len(adapter_rows)]))
            start += len(adapter_rows)
        yield answers


async def predict_each(
    inference: Inference, names: Sequence[str], texts: Sequence[str]
) -> FanOutResponse:
    """``/v1/predict`` with ``adapters``: every adapter's predictions, keyed by its full id."""
    async with fan_out(inference, names, texts, "classify") as answers:
        return FanOutResponse(
            adapters=[a.id for a in answers],
            results={
                a.id: AdapterPredictions(
                    task_type=a.lease.head_owner.task_type or "sequence",
                    predictions=[
                        format_prediction(a.lease, row, output)
                        for row, output in zip(a.rows, a.outputs)
                    ],
                )
                for a in answers
            },
        )
