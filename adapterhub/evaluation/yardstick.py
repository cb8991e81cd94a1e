"""A sentiment adapter, or a stack, on the project's yardstick: per language, hard subset, overall.

The yardstick (:mod:`adapterhub.data.yardstick`) is a dev set: what this module measures is
used to choose (checkpoints, ranks, the version a short id means), never to train. Rows are
scored through :func:`~adapterhub.evaluation.inference.predict_rows` on a model loaded by
:func:`~adapterhub.evaluation.inference.load_task_model`, with the adapter's own preprocessing,
so a stack is scored exactly as a plain adapter is. Each row's outcome is kept, which the
paired bootstrap of two adapters (:func:`paired_bootstrap`) and the registry's promotion gate
use.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterhub.data import yardstick
from adapterhub.errors import DataError, UsageError
from adapterhub.evaluation.inference import adapter_folder, load_task_model, predict_rows
from adapterhub.evaluation.stacks import Stack, language_adapter_folder
from adapterhub.preprocessing import Preprocessing

OVERALL = "overall"
HARD = "hard"
YARDSTICKS = {"sentiment": yardstick.NAME}
"""The yardstick of each task that has one: what its published versions are judged on."""


@dataclass
class YardstickScore:
    """Each scored row's outcome, and the accuracies they give."""

    name: str
    rows: list[dict] = field(default_factory=list)
    """``{"id", "lang", "hard", "phenomenon", "genre", "label", "prediction", "correct"}`` per
    scored text."""
    skipped: list[str] = field(default_factory=list)
    """Languages not scored (a stack whose language adapter does not exist)."""

    @property
    def languages(self) -> list[str]:
        return sorted({r["lang"] for r in self.rows})

    def accuracy(self, lang: str | None = None, *, hard: bool | None = None) -> float:
        chosen = [
            r
            for r in self.rows
            if (lang is None or r["lang"] == lang) and (hard is None or r["hard"] == hard)
        ]
        if not chosen:
            raise DataError(f"{self.name}: no yardstick rows scored for {lang or 'any language'}")
        return sum(r["correct"] for r in chosen) / len(chosen)

    def table(self) -> dict[str, float]:
        """``{lang: accuracy, ..., "hard": hard-subset accuracy, "overall": accuracy}``."""
        values = {lang: self.accuracy(lang) for lang in self.languages}
        values[HARD] = self.accuracy(hard=True)
        values[OVERALL] = self.accuracy()
        return values

    def metrics(self) -> dict[str, float]:
        """Flat metrics for a manifest: ``accuracy``, ``hard_accuracy``, ``accuracy_<lang>``,
        ``hard_accuracy_<lang>`` and ``examples``."""
        values = {"accuracy": self.accuracy(), "hard_accuracy": self.accuracy(hard=True)}
        for lang in self.languages:
            values[f"accuracy_{lang}"] = self.accuracy(lang)
            values[f"hard_accuracy_{lang}"] = self.accuracy(lang, hard=True)
        values["examples"] = float(len(self.rows))
        return values

    def by(self, column: str) -> dict[str, float]:
        """Accuracy by the values of a row column (``phenomenon``, ``genre``), empty ones out."""
        values: dict[str, list[bool]] = {}
        for row in self.rows:
            if row[column]:
                values.setdefault(row[column], []).append(row["correct"])
        return {k: sum(v) / len(v) for k, v in sorted(values.items())}

    def only(self, lang: str) -> YardstickScore:
        """The rows of one language, as a score of their own."""
        return YardstickScore(self.name, [r for r in self.rows if r["lang"] == lang])

    def outcomes(self) -> dict[str, bool]:
        """Row id -> correct, for paired comparisons."""
        return {r["id"]: r["correct"] for r in self.rows}


def _preprocessing(info: dict[str, Any]) -> Preprocessing:
    return info.get("preprocessing") or Preprocessing()


def _score(model, rows: list[dict], preprocessing: Preprocessing, tokenizer, batch_size: int):
    chosen = [{**r, "text": preprocessing.apply(r["text"])} for r in rows]
    answers = predict_rows(model, chosen, tokenizer, preprocessing.max_length, batch_size)
    return [
        {
            "id": r["id"],
            "lang": r["lang"],
            "hard": r["hard"],
            "phenomenon": r["phenomenon"],
            "genre": r["genre"],
            "label": a["label"],
            "prediction": a["prediction"],
            "correct": a["label"] == a["prediction"],
        }
        for r, a in zip(rows, answers, strict=True)
    ]


def _labelled(langs: list[str] | None) -> list[dict]:
    return yardstick.load(langs)[yardstick.SPLIT].to_list()


def score_adapter(
    adapter: str | Path | Stack,
    *,
    backbone,
    langs: list[str] | None = None,
    batch_size: int = 64,
) -> YardstickScore:
    """``adapter`` (a sentiment adapter id or folder, or a :class:`Stack`) on the yardstick's
    ``langs`` (default: all). A stack with ``lang/{lang}`` skips languages that have no
    language adapter (listed in ``skipped``)."""
    rows = _labelled(langs)
    if isinstance(adapter, Stack):
        return _score_stack(adapter, rows, backbone, batch_size)
    folder, info = adapter_folder(adapter, backbone)
    model = load_task_model(folder, backbone)
    return score_model(
        model,
        backbone.tokenizer,
        _preprocessing(info),
        name=str(info.get("id") or adapter),
        rows=rows,
        batch_size=batch_size,
    )


def score_model(
    model,
    tokenizer,
    preprocessing: Preprocessing,
    *,
    name: str,
    rows: list[dict] | None = None,
    batch_size: int = 64,
) -> YardstickScore:
    """A sentiment task model in memory (a run's current weights, say) on the yardstick's
    ``rows`` (default: all), its texts preprocessed as ``preprocessing`` says."""
    _check_labels(model.labels, name)
    score = YardstickScore(name)
    score.rows = _score(
        model, _labelled(None) if rows is None else rows, preprocessing, tokenizer, batch_size
    )
    return score


def measures(labels: list[str]) -> bool:
    """Whether the yardstick can score a model of these labels (its own, in its order)."""
    return list(labels) == list(yardstick.LABELS)


def _check_labels(labels: list[str], name: str) -> None:
    if not measures(labels):
        raise UsageError(
            f"{name} predicts {labels}; the sentiment yardstick needs {list(yardstick.LABELS)}"
        )


def _score_stack(stack: Stack, rows: list[dict], backbone, batch_size: int) -> YardstickScore:
    folder, info = adapter_folder(stack.task, backbone)
    task_name = str(info.get("id") or stack.task)
    score = YardstickScore(str(Stack(stack.language, task_name)))
    by_adapter: dict[str, list[dict]] = {}
    for row in rows:
        by_adapter.setdefault(stack.language_for(row["lang"]), []).append(row)
    for language, chosen in sorted(by_adapter.items()):
        language_folder = language_adapter_folder(language, backbone)
        if language_folder is None:
            if not stack.per_language:
                raise UsageError(f"no store holds the language adapter {language}")
            score.skipped += sorted({r["lang"] for r in chosen})
            continue
        model = load_task_model(folder, backbone, language_adapter=language_folder)
        _check_labels(model.labels, task_name)
        score.rows += _score(model, chosen, _preprocessing(info), backbone.tokenizer, batch_size)
        del model  # one copy of the backbone at a time
    if not score.rows:
        raise UsageError(f"{stack}: no language of the yardstick has its language adapter")
    return score


def card_results(adapter: str | Path, task: str, *, backbone) -> dict[str, Any] | None:
    """The ``yardstick`` record of a manifest for an adapter of ``task`` (None when the task
    has no yardstick, or the adapter predicts other labels than it has): dataset, split and
    :meth:`YardstickScore.metrics`."""
    if task not in YARDSTICKS:
        return None
    folder, info = adapter_folder(adapter, backbone)
    model = load_task_model(folder, backbone)
    if not measures(model.labels):
        return None  # other classes (a 5-star scale, say): the yardstick does not measure them
    score = score_model(model, backbone.tokenizer, _preprocessing(info), name=str(adapter))
    return {"dataset": YARDSTICKS[task], "split": yardstick.SPLIT, **score.metrics()}


def paired_bootstrap(
    new: YardstickScore, old: YardstickScore, *, samples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(accuracy difference new - old, and its 95% interval) over the rows both scored,
    resampled in pairs so that the two adapters' shared easy and hard texts cancel out."""
    a, b = new.outcomes(), old.outcomes()
    shared = sorted(set(a) & set(b))
    if not shared:
        raise DataError(f"{new.name} and {old.name} scored no yardstick text in common")
    diffs = [int(a[i]) - int(b[i]) for i in shared]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(samples))
    return sum(diffs) / n, means[int(0.025 * samples)], means[int(0.975 * samples) - 1]


def markdown_table(scores: list[YardstickScore], *, title: str = "") -> str:
    """Languages (rows) by adapter (columns), then the hard subset and overall."""
    langs = sorted({lang for s in scores for lang in s.languages})
    tables = [s.table() for s in scores]
    lines = [f"### {title}", ""] if title else []
    lines.append("| lang | " + " | ".join(s.name for s in scores) + " |")
    lines.append("|---|" + "---:|" * len(scores))
    for lang in [*langs, HARD, OVERALL]:
        cells = [f"{t[lang]:.3f}" if lang in t else "" for t in tables]
        label = {HARD: "**hard subset**", OVERALL: "**overall**"}.get(lang, lang)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
