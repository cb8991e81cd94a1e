"""Cleaning, hash-derived splits, deduplication and caps: pure functions, no downloads."""

from __future__ import annotations

from collections import Counter

from adapterhub.data.text import (
    capped,
    clean_text,
    deduplicate_labelled,
    sentences,
    split_key,
    split_of,
    text_hash,
)


def test_clean_text_removes_bom_entities_and_collapses_whitespace():
    assert clean_text("\ufeffMarley &amp; me  ebook &gt;\r\n fantastisch. ") == (
        "Marley & me ebook > fantastisch."
    )
    assert clean_text("cafe\u0301") == "café"  # NFC
    assert clean_text("soft\u00adhyphen zero\u200bwidth") == "softhyphen zerowidth"
    assert clean_text(" \n\t ") == ""


def test_splits_are_pinned_and_identical_everywhere():
    # Literal expectations: if the hash, the normalisation or the thresholds ever change, every
    # published split would move, so this must fail loudly.
    assert text_hash("hello world") == 13352372148217134600
    assert text_hash("Guten Tag") == 894936213742732795
    pins = {t: split_of(t) for t in ("a", "f", "h", "hello world", "Guten Tag", "你好")}
    assert pins == {
        "a": "train",
        "f": "validation",
        "h": "validation",
        "hello world": "train",
        "Guten Tag": "test",
        "你好": "train",
    }


def test_split_ignores_case_and_spacing():
    assert split_key("  Hello\n  WORLD &amp; co ") == "hello world & co"
    for text in ("Hello World", "This is a longer sentence.", "Ünïcödé"):
        assert split_of(text) == split_of(text.upper()) == split_of(f"  {text}\n")


def test_split_proportions_are_80_10_10():
    counts = Counter(split_of(f"sentence number {i}") for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.8) < 0.015
    assert abs(counts["validation"] / 20000 - 0.1) < 0.01
    assert abs(counts["test"] / 20000 - 0.1) < 0.01


def test_deduplicate_drops_conflicting_texts_and_keeps_one_copy():
    kept, conflicts = deduplicate_labelled(
        [("good", "positive"), ("good", "positive"), ("bad", "negative"), ("meh", "positive"),
         ("meh", "negative")]
    )  # fmt: skip
    assert kept == {"good": "positive", "bad": "negative"}
    assert conflicts == 1


def test_cap_is_deterministic_and_a_subset():
    texts = [f"text {i}" for i in range(500)]
    chosen = capped(texts, 100)
    assert len(chosen) == 100 and chosen <= set(texts)
    assert capped(reversed(texts), 100) == chosen  # order of input does not matter
    assert capped(texts, None) == set(texts) == capped(texts, 1000)
    splits = Counter(split_of(t) for t in capped([f"x {i}" for i in range(5000)], 1000))
    assert 700 < splits["train"] < 900  # the cap keeps the split proportions


def test_sentences_split_paragraphs():
    assert list(sentences("One here. Two there! Three?")) == ["One here.", "Two there!", "Three?"]
    assert list(sentences("我很好。你呢？")) == ["我很好。", "你呢？"]
    assert list(sentences("ok. a")) == ["ok."]  # pieces under 3 characters are dropped
