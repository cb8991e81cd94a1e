"""The classification metric every labelled task type builds on, as an ``evaluate`` module.

``evaluate.load`` fetches metric scripts from the hub, which these machines cannot reach, so the
metric is defined here: accuracy and macro-F1 over integer predictions and references.
"""

from __future__ import annotations

import datasets
import evaluate
from sklearn.metrics import accuracy_score, f1_score


class ClassificationMetric(evaluate.Metric):
    """Accuracy and macro-F1 over integer predictions and references."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description="accuracy and macro-averaged F1 (adapterhub)",
            citation="",
            inputs_description="predictions and references: lists of label ids",
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        if not references:
            return {"accuracy": 0.0, "macro_f1": 0.0}
        labels = sorted(set(references))  # macro over the classes present in the references
        return {
            "accuracy": float(accuracy_score(references, predictions)),
            "macro_f1": float(
                f1_score(references, predictions, labels=labels, average="macro", zero_division=0)
            ),
        }


_METRIC: ClassificationMetric | None = None


def classification_metrics(predictions: list[int], references: list[int]) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}``; for token tasks pass the words' first sub-tokens."""
    global _METRIC
    if _METRIC is None:  # building the evaluate module costs ~50 ms: once per process
        _METRIC = ClassificationMetric()
    return _METRIC.compute(predictions=list(predictions), references=list(references))
