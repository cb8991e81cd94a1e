"""Evaluation: trained folders on test sets, per language and as the cross-lingual matrix.

- ``inference.py``: load a trained folder (:func:`load_task_model`), its metrics on rows
  (:func:`evaluate_rows`, through the task type's ``compute_metrics``), each row's prediction
  and probabilities (:func:`predict_rows`), an adapter on the test sets of several languages
  (:func:`evaluate_adapter`);
- ``matrix.py``: train language x test language, as JSON, Markdown and a heatmap;
- ``plots.py``: the loss curve and the heatmap as PNG files.

Training depends on this package (validation, the test report, the loss curve); this package
depends on nothing in training.
"""

from adapterhub.evaluation.inference import (
    FINETUNED_FILE,
    evaluate_adapter,
    evaluate_rows,
    load_task_model,
    predict_rows,
    primary,
    sample_rows,
)
from adapterhub.evaluation.matrix import evaluate_matrix, markdown_matrix, write_matrix
from adapterhub.evaluation.plots import heatmap, loss_curve

__all__ = [
    "FINETUNED_FILE",
    "evaluate_adapter",
    "evaluate_matrix",
    "evaluate_rows",
    "heatmap",
    "load_task_model",
    "loss_curve",
    "markdown_matrix",
    "predict_rows",
    "primary",
    "sample_rows",
    "write_matrix",
]
