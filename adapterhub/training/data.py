"""A recipe's rows: load the data through :mod:`adapterhub.data`, choose the languages
(:mod:`~adapterhub.training.selection`), cut each split to the recipe's caps."""

from __future__ import annotations

from dataclasses import dataclass

from adapterhub import data as hubdata
from adapterhub.errors import DataError
from adapterhub.evaluation.inference import sample_rows
from adapterhub.recipes import Recipe
from adapterhub.tasks import TaskSpec, get_task
from adapterhub.training.selection import MULTI, check_lang, choose_languages

SPLITS = ("train", "validation", "test")
UNKNOWN_LANG = "und"
"""ISO 639's code for an undetermined language: rows without a ``lang`` column."""


@dataclass
class PreparedData:
    """What one run trains, validates and tests on. ``test`` maps test language -> rows."""

    train: list[dict]
    validation: list[dict]
    test: dict[str, list[dict]]
    labels: list[str]
    train_langs: list[str]
    zero_shot: bool
    dataset: str
    message: str = ""


def load_rows(recipe: Recipe, spec: TaskSpec) -> tuple[dict[str, list[dict]], list[str], str]:
    """(rows per split, label names, dataset name): the user's data or the built-in dataset,
    every row with a ``lang`` and the recipe's ``prefix`` in front of its text."""
    dataset_name = recipe.data or recipe.dataset or spec.dataset
    if recipe.data:
        dd = hubdata.load_user_data(recipe.data, task=spec.type.data_kind)
    elif spec.task_type == "sequence" and recipe.train_langs and recipe.lang == MULTI:
        # langid over chosen languages: the label set is exactly those languages
        dd = hubdata.load_dataset(dataset_name, sorted(set(recipe.train_langs)))
    else:
        dd = hubdata.load_dataset(dataset_name)
    splits = {name: dd[name].to_list() if name in dd else [] for name in SPLITS}
    features = dd["train"].features if "train" in dd else next(iter(dd.values())).features
    for rows in splits.values():
        for row in rows:
            row.setdefault("lang", UNKNOWN_LANG)
            for column in spec.type.text_columns:  # every input text: a pair's both sides
                if recipe.prefix and column in row:
                    row[column] = recipe.prefix + row[column]
    return splits, spec.type.labels(features), dataset_name


def _languages(splits: dict[str, list[dict]]) -> list[str]:
    return sorted({r["lang"] for rows in splits.values() for r in rows})


def _in(rows: list[dict], lang: str) -> list[dict]:
    return [r for r in rows if r["lang"] == lang]


def prepare_data(recipe: Recipe) -> PreparedData:
    """Train/validation/test rows for the recipe, its languages chosen (zero-shot when the
    target language has too little data)."""
    spec = get_task(recipe.task)
    lang = check_lang(recipe.lang)
    splits, labels, dataset_name = load_rows(recipe, spec)
    available = _languages(splits)
    if recipe.data and lang not in available and lang != MULTI:
        if available != [UNKNOWN_LANG]:
            raise DataError(
                f"{dataset_name} has no language {lang!r}; it has: {', '.join(available)}"
            )
        for rows in splits.values():  # the user's file has no lang column: it is the target
            for row in rows:
                row["lang"] = lang
        available = [lang]
    plan = choose_languages(
        lang,
        {code: len(_in(splits["train"], code)) for code in available},
        dataset=dataset_name,
        task=recipe.task,
        min_train_examples=recipe.min_train_examples,
        train_langs=recipe.train_langs,
        source_langs=recipe.source_langs,
        eval_langs=recipe.eval_langs,
    )
    train_rows = [
        row
        for code in plan.train_langs
        for row in sample_rows(_in(splits["train"], code), recipe.max_train_examples)
    ]
    validation = [
        row
        for code in plan.train_langs
        for row in sample_rows(_in(splits["validation"], code), recipe.max_validation_examples)
    ]
    if not train_rows:
        raise DataError(
            f"no training examples for {recipe.task} in {', '.join(plan.train_langs)} "
            f"({dataset_name}); check the data and the languages"
        )
    if not validation:  # small user data: judge on a slice of train rather than not at all
        validation = train_rows[: max(1, min(len(train_rows), 64))]
    if plan.eval_langs == [MULTI]:
        cap = (recipe.max_eval_examples or 10**9) * 10
        test = {MULTI: sample_rows(splits["test"], cap)}
    else:
        chosen = {
            code: sample_rows(_in(splits["test"], code), recipe.max_eval_examples)
            for code in plan.eval_langs
        }
        test = {code: rows for code, rows in chosen.items() if rows}
    return PreparedData(
        train_rows,
        validation,
        test,
        labels,
        plan.train_langs,
        plan.zero_shot,
        dataset_name,
        plan.message,
    )
