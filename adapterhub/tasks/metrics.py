"""The classification metric every labelled task type builds on, as an ``evaluate`` module.

``evaluate.load`` fetches metric scripts from the hub, which these machines cannot reach, so the
metric is defined here: accuracy and macro-F1 over integer predictions and references.
"""

from __future__ import annotations

from typing import Any

_METRIC: Any = None


def _build_metric() -> Any:
    """The ``evaluate`` module, defined on first use. Imported here, not at the top:
    ``evaluate``, ``datasets`` and ``sklearn`` pull in scipy.stats, pandas and pyarrow, which
    every importer of the task types paid, the server's start included, though serving never
    computes a metric (``import adapterhub.server`` after torch and transformers: 2.0-2.5 s of
    CPU with them at the top, 0.73 s without, on a 2-core EPYC)."""
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
                    f1_score(
                        references, predictions, labels=labels, average="macro", zero_division=0
                    )
                ),
            }

    return ClassificationMetric()


def classification_metrics(predictions: list[int], references: list[int]) -> dict[str, float]:
    """``{"accuracy", "macro_f1"}``; for token tasks pass the words' first sub-tokens."""
    global _METRIC
    if _METRIC is None:  # building the evaluate module costs ~50 ms: once per process
        _METRIC = _build_metric()
    return _METRIC.compute(predictions=list(predictions), references=list(references))
