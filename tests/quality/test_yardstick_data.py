"""The sentiment yardstick as data: broad, balanced, with its hard subset, a dev set only."""

from __future__ import annotations

import unicodedata
from collections import Counter

import datasets
import pytest

from adapterhub.cli import main as cli
from adapterhub.data import DATASETS, available_languages, dataset_card, load_dataset, yardstick
from adapterhub.data.builtin import SENTIMENT_LABELS
from adapterhub.errors import DataError

REQUIRED = {"en", "de", "fr", "nl", "zh", "es", "it", "pt", "ru", "pl", "tr", "ar", "hi", "ja"}
REQUIRED |= {"ko", "sw"}
SCRIPTS = {  # a letter of each script the yardstick must cover, and a language written in it
    "LATIN": "en",
    "CYRILLIC": "ru",
    "ARABIC": "ar",
    "HEBREW": "he",
    "GREEK": "el",
    "DEVANAGARI": "hi",
    "BENGALI": "bn",
    "THAI": "th",
    "HANGUL": "ko",
    "CJK": "zh",
    "HIRAGANA": "ja",
}


def _script(char: str) -> str:
    return unicodedata.name(char, "").split(" ")[0]


def test_the_dev_split_only_with_the_sentiment_labels():
    data = load_dataset("sentiment-yardstick")
    assert list(data) == ["dev"]
    assert data["dev"].features["label"] == datasets.ClassLabel(names=list(SENTIMENT_LABELS))
    assert {"text", "label", "lang", "hard", "phenomenon", "genre", "id"} <= set(
        data["dev"].column_names
    )
    assert DATASETS["sentiment-yardstick"].splits == "dev only"


def test_many_languages_scripts_and_enough_texts_each():
    rows = yardstick.rows()
    per_lang = Counter(r["lang"] for r in rows)
    assert len(per_lang) >= 24 and set(per_lang) >= REQUIRED
    assert min(per_lang.values()) >= 25
    for script, lang in SCRIPTS.items():
        letters = {_script(c) for r in rows if r["lang"] == lang for c in r["text"] if c.isalpha()}
        assert script in letters, (script, lang)


def test_balanced_per_language_with_a_balanced_hard_subset():
    rows = yardstick.rows()
    for lang in yardstick.languages():
        mine = [r for r in rows if r["lang"] == lang]
        labels = Counter(r["label"] for r in mine)
        assert labels["positive"] == labels["negative"], lang
        hard = [r for r in mine if r["hard"]]
        assert 0.3 <= len(hard) / len(mine) <= 0.5, lang
        assert Counter(r["label"] for r in hard)["positive"] == len(hard) / 2, lang
        # every phenomenon, with both labels, in every language
        assert {(r["phenomenon"], r["label"]) for r in hard} == {
            (p, label) for p in yardstick.PHENOMENA for label in SENTIMENT_LABELS
        }, lang
        assert all(not r["phenomenon"] for r in mine if not r["hard"]), lang
        assert {r["genre"] for r in mine} == set(yardstick.GENRES), lang


def test_texts_are_unique_normalised_and_ids_stable():
    rows = yardstick.rows()
    texts = [r["text"] for r in rows]
    assert len(set(texts)) == len(texts)
    assert all(t == unicodedata.normalize("NFC", t).strip() and t for t in texts)
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["id"].startswith(r["lang"] + "-") for r in rows)


def test_languages_are_chosen_and_unknown_ones_refused():
    data = load_dataset("sentiment-yardstick", ["sw", "ja"])
    assert Counter(data["dev"]["lang"]) == {"sw": 26, "ja": 26}
    with pytest.raises(DataError, match="has no language xx"):
        load_dataset("sentiment-yardstick", ["xx"])


def test_catalogue_card_and_counts_need_no_download(isolated_home):
    counts = available_languages("sentiment-yardstick")
    assert set(counts) == set(yardstick.languages()) and counts["de"] == {"dev": 26}
    card = dataset_card("sentiment-yardstick")
    assert "dev set" in card and "never trained on" in card.lower()
    assert not any(isolated_home.iterdir())  # nothing fetched, built or cached


def test_cli_lists_and_shows_the_dev_split(isolated_home, capsys):
    assert cli(["data", "show", "sentiment-yardstick", "--lang", "ko", "-n", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "sentiment-yardstick dev: 26 examples" and out[1].startswith("[ko] ")
    assert cli(["data", "fetch", "sentiment-yardstick", "--lang", "th"]) == 0
    assert "th    26" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["sentiment", "text", "langid"])
def test_no_yardstick_text_is_in_a_training_corpus(request, name):
    """A dev set must never be trained on: none of its texts is in a built-in corpus."""
    request.getfixturevalue("builtin_home")
    ours = {r["text"].casefold() for r in yardstick.rows()}
    data = load_dataset(name)
    for split in data:
        assert not ours & {t.casefold() for t in data[split]["text"]}, (name, split)
