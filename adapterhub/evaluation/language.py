"""A language adapter on masked language modelling, against the two baselines it must beat.

A language adapter's MLM head is never published, so a registry entry is scored as a probe:
a fresh MLM head is fitted on the frozen encoder (:func:`adapterhub.tasks.mlm.fit_head`) with
the same budget, data, masks and seed twice, once on the backbone with the adapter and once on
the bare backbone (the *head-only* baseline: what a head alone learns from e5's states), and
both are scored on the same masked tokens of the language's ``text`` test split, with the
*unigram* baseline (the training texts' token frequencies) beside them. A trained folder that
kept its head (:data:`~adapterhub.tasks.mlm.MLM_HEAD_FILE`) is scored with that head as well.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from adapterhub import data as hubdata
from adapterhub.errors import DataError, UsageError
from adapterhub.evaluation.inference import adapter_folder, sample_rows
from adapterhub.methods.adapted import LANGUAGE_ADAPTER, load_adapter, wrap
from adapterhub.preprocessing import Preprocessing
from adapterhub.recipes import load_recipe
from adapterhub.tasks import get_task_type
from adapterhub.tasks.mlm import MLM_HEAD_FILE, MaskedLanguageModel, fit_head

HEAD_ONLY = "head_only"
UNIGRAM = "unigram"
ADAPTER = "adapter"
TRAINED_HEAD = "adapter_trained_head"


def mlm_model(backbone, folder: Path | None, mlm_probability: float) -> MaskedLanguageModel:
    """An MLM model on a copy of the backbone, with the language adapter in ``folder`` (or
    none: the head-only baseline), its head fresh."""
    adapted = wrap(backbone.model)
    if folder is not None:
        load_adapter(adapted, folder, role=LANGUAGE_ADAPTER)
    return get_task_type("mlm").model(
        adapted,
        backbone.hidden_size,
        [],
        embeddings=adapted.base_model().get_input_embeddings(),
        mask_token_id=backbone.tokenizer.mask_token_id,
        mlm_probability=mlm_probability,
    )


def language_rows(
    lang: str,
    max_train: int | None,
    max_test: int | None,
    preprocessing: Preprocessing,
    data: str | Path | None = None,
):
    """(train rows, test rows) in ``lang`` of the ``text`` dataset (or of the user's ``data``),
    capped as training caps, each text as ``preprocessing`` makes it."""
    if data is not None:
        splits = hubdata.load_user_data(str(data), task="text")
    else:
        splits = hubdata.load_dataset("text", [lang])
    train = sample_rows([r for r in splits["train"].to_list() if r["lang"] == lang], max_train)
    test = sample_rows([r for r in splits["test"].to_list() if r["lang"] == lang], max_test)
    if not train or not test:
        raise DataError(f"the text dataset has no train or test texts in {lang!r}")
    train = [{**r, "text": preprocessing.apply(r["text"])} for r in train]
    test = [{**r, "text": preprocessing.apply(r["text"])} for r in test]
    return train, test


def _score(model: MaskedLanguageModel, rows, backbone, max_length: int, batch_size: int):
    model.eval()
    with torch.no_grad():
        return model.task_type.evaluate(model, rows, backbone.tokenizer, max_length, batch_size)


def evaluate_language_adapter(
    adapter: str | Path,
    *,
    backbone,
    lang: str | None = None,
    steps: int | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    data: str | Path | None = None,
) -> dict[str, Any]:
    """``{"adapter": metrics, "head_only": metrics, "unigram": metrics, ...}`` of a language
    adapter (id or folder) on its language's ``text`` test split (or ``data``'s), each with
    ``mlm_accuracy``
    and ``perplexity``. The probe fits each head for ``steps`` (default: the mlm recipe's
    ``max_steps``) at the recipe's ``head_learning_rate``, batch size and input length."""
    folder, info = adapter_folder(adapter, backbone)
    if info.get("task") not in ("lang", "mlm"):
        raise UsageError(f"{adapter} is not a language adapter (its task is {info.get('task')})")
    lang = lang or info.get("lang")
    if not lang:
        raise UsageError(f"{adapter}: cannot tell its language; pass --langs")
    recipe = load_recipe("mlm")
    steps = steps or recipe.max_steps or 150
    batch_size = batch_size or recipe.batch_size
    head_lr = recipe.head_learning_rate or recipe.learning_rate
    # the adapter's own preprocessing (its manifest or recipe); the mlm recipe's otherwise
    preprocessing = info.get("preprocessing") or Preprocessing.from_dict(recipe.to_dict())
    max_length = preprocessing.max_length
    train, test = language_rows(
        lang,
        max_train or recipe.max_train_examples,
        max_test or recipe.max_eval_examples,
        preprocessing,
        data,
    )
    report: dict[str, Any] = {
        "adapter_id": str(info.get("id") or adapter),
        "lang": lang,
        "probe_steps": steps,
        "train_texts": len(train),
        "test_texts": len(test),
    }
    for name, source in ((ADAPTER, folder), (HEAD_ONLY, None)):
        model = mlm_model(backbone, source, recipe.mlm_probability)
        fit_head(
            model,
            train,
            backbone.tokenizer,
            max_length,
            steps=steps,
            batch_size=batch_size,
            learning_rate=head_lr,
            seed=seed,
        )
        values = _score(model, test, backbone, max_length, batch_size)
        report[name] = {k: values[k] for k in ("mlm_accuracy", "perplexity")}
        report[UNIGRAM] = {
            "mlm_accuracy": values["unigram_mlm_accuracy"],
            "perplexity": values["unigram_perplexity"],
        }
        report["masked_tokens"] = values["masked_tokens"]
        del model  # one copy of the backbone at a time
    if (folder / MLM_HEAD_FILE).is_file():
        model = mlm_model(backbone, folder, recipe.mlm_probability)
        model.load_head(folder)
        values = _score(model, test, backbone, max_length, batch_size)
        report[TRAINED_HEAD] = {k: values[k] for k in ("mlm_accuracy", "perplexity")}
    head_only = report[HEAD_ONLY]["mlm_accuracy"]
    report["accuracy_ratio_to_head_only"] = (
        report[ADAPTER]["mlm_accuracy"] / head_only if head_only else float("inf")
    )
    report["beats_baselines"] = all(
        report[ADAPTER]["mlm_accuracy"] > report[b]["mlm_accuracy"]
        and report[ADAPTER]["perplexity"] < report[b]["perplexity"]
        for b in (HEAD_ONLY, UNIGRAM)
    )
    return report
