"""Which languages a run trains and is tested on: pure functions of per-language counts.

The policy, in the order it applies:

- ``train_langs`` given: train on exactly those (zero-shot when the target is not among them);
- target ``multi``: train on every language the data has;
- the target has at least ``min_train_examples`` training examples: train on it alone;
- else train on ``source_langs`` (default: every other language with enough examples) and
  test the target zero-shot.

Test languages default to the target plus the training languages; ``multi`` (a multilingual
task such as langid) is tested on every test row at once.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from adapterhub.errors import DataError, UsageError

LANG_CODE_CHARS = frozenset(string.ascii_lowercase)
MULTI = "multi"
"""The target of a multilingual task: every language, tested together."""


@dataclass(frozen=True)
class LanguagePlan:
    """The languages of one run. ``eval_langs == ["multi"]`` means every test row at once."""

    train_langs: list[str]
    eval_langs: list[str]
    zero_shot: bool
    message: str = ""
    """Why the target is tested zero-shot, for the log; empty otherwise."""


def check_lang(lang: str) -> str:
    """``lang`` itself if it is an ISO 639-1/639-3 code or ``multi``; else a UsageError."""
    if lang != MULTI and not (2 <= len(lang) <= 3 and set(lang) <= LANG_CODE_CHARS):
        raise UsageError(
            f"language {lang!r} is not an ISO 639-1/639-3 code (e.g. de, en, fr, gsw) or 'multi'"
        )
    return lang


def choose_languages(
    lang: str,
    train_counts: dict[str, int],
    *,
    dataset: str,
    task: str,
    min_train_examples: int,
    train_langs: list[str] | None = None,
    source_langs: list[str] | None = None,
    eval_langs: list[str] | None = None,
) -> LanguagePlan:
    """The plan for target ``lang`` given the training examples per language of ``dataset``
    (every language the data has, with 0 for those that appear only in validation or test)."""
    available = sorted(train_counts)
    if lang != MULTI and lang not in available:
        raise DataError(
            f"dataset {dataset!r} has no language {lang!r}; it has: {', '.join(available)}"
        )
    zero_shot = False
    message = ""
    if train_langs:
        unknown = [code for code in train_langs if code not in available]
        if unknown:
            raise DataError(
                f"dataset {dataset!r} has no language {', '.join(unknown)}; "
                f"it has: {', '.join(available)}"
            )
        chosen = list(train_langs)
        zero_shot = lang != MULTI and lang not in chosen
    elif lang == MULTI:
        chosen = available
    elif train_counts[lang] >= min_train_examples:
        chosen = [lang]
    else:
        sources = source_langs or [
            code
            for code, count in train_counts.items()
            if count >= min_train_examples and code != lang
        ]
        chosen = [code for code in sources if code in available and code != lang]
        if not chosen:
            raise DataError(
                f"{lang} has {train_counts[lang]} training examples in {dataset!r} "
                f"(fewer than {min_train_examples}) and no other language has enough; "
                "give more data or lower min_train_examples"
            )
        zero_shot = True
        message = (
            f"{lang} has only {train_counts[lang]} training examples for {task} "
            f"(fewer than {min_train_examples}): training on {', '.join(chosen)} "
            f"and evaluating zero-shot on {lang}"
        )
    if eval_langs:
        tested = list(eval_langs)
    elif lang == MULTI:
        tested = [MULTI]
    else:
        tested = [lang] + [code for code in chosen if code != lang]
    return LanguagePlan(chosen, tested, zero_shot, message)
