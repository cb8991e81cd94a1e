"""Language selection as pure functions of per-language training counts."""

from __future__ import annotations

import pytest

from adapterhub.errors import DataError, UsageError
from adapterhub.training.selection import check_lang, choose_languages

COUNTS = {"en": 500, "fr": 300, "de": 20, "zh": 0}


def plan(lang: str, counts=COUNTS, **options):
    options.setdefault("min_train_examples", 200)
    return choose_languages(lang, counts, dataset="reviews", task="sentiment", **options)


def test_a_language_with_enough_data_trains_alone():
    chosen = plan("en")
    assert chosen.train_langs == ["en"] and chosen.eval_langs == ["en"]
    assert not chosen.zero_shot and chosen.message == ""


def test_too_little_data_trains_on_the_others_and_tests_zero_shot():
    chosen = plan("de")
    assert chosen.train_langs == ["en", "fr"]  # zh has none, de too few
    assert chosen.eval_langs == ["de", "en", "fr"]
    assert chosen.zero_shot and "de has only 20 training examples" in chosen.message


def test_source_langs_choose_the_zero_shot_sources():
    chosen = plan("de", source_langs=["fr", "de", "xx"])
    assert chosen.train_langs == ["fr"] and chosen.zero_shot


def test_given_train_langs_are_taken_as_they_are():
    chosen = plan("de", train_langs=["fr", "de"])
    assert chosen.train_langs == ["fr", "de"] and not chosen.zero_shot
    chosen = plan("en", train_langs=["fr"], eval_langs=["zh"])
    assert chosen.zero_shot and chosen.eval_langs == ["zh"]


def test_multi_trains_on_everything_and_tests_every_row():
    chosen = plan("multi")
    assert chosen.train_langs == ["de", "en", "fr", "zh"] and chosen.eval_langs == ["multi"]
    assert not chosen.zero_shot


@pytest.mark.parametrize(
    ("lang", "options", "words"),
    [
        ("xx", {}, "no language 'xx'; it has: de, en, fr, zh"),
        ("en", {"train_langs": ["en", "qq"]}, "no language qq"),
        ("zh", {"min_train_examples": 1000}, "no other language has enough"),
    ],
)
def test_impossible_plans_are_named(lang, options, words):
    with pytest.raises(DataError, match=words):
        plan(lang, **options)


@pytest.mark.parametrize("lang", ["en", "gsw", "multi"])
def test_language_codes(lang):
    assert check_lang(lang) == lang


@pytest.mark.parametrize("lang", ["english", "e", "EN", "d3"])
def test_bad_language_codes(lang):
    with pytest.raises(UsageError, match="ISO 639"):
        check_lang(lang)
