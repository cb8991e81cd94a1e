"""Fixtures for the quality tests: the built-in corpora (built once in the shared test home) and
the tiny random backbone of ``tests/conftest.py``."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def built_corpora(test_home) -> Path:
    """The shared test home with the corpora the project trains on fetched and built."""
    from adapterhub.data import fetch

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ADAPTERHUB_HOME", str(test_home))
        for name in ("sentiment", "text", "langid"):
            fetch(name)
    return test_home


@pytest.fixture
def builtin_home(built_corpora, monkeypatch) -> Path:
    monkeypatch.setenv("ADAPTERHUB_HOME", str(built_corpora))
    return built_corpora


GOOD = ["good", "great", "excellent", "fun", "love", "gut", "bon", "goed", "好"]
BAD = ["bad", "terrible", "awful", "boring", "hate", "schlecht", "mauvais", "slecht", "坏"]
FILLER = ["the", "movie", "film", "book", "plot", "story", "is", "was", "very", "this", "a"]


def _sentence(rng: random.Random, word: str) -> str:
    words = rng.sample(FILLER, rng.randint(2, 6))
    words.insert(rng.randint(0, len(words)), word)
    return " ".join(words)


@pytest.fixture(scope="session")
def sentiment_texts(tmp_path_factory) -> Path:
    """A learnable sentiment CSV (one polar word per text), mostly English."""
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("quality-data") / "sentiment.csv"
    seen: set[str] = set()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "lang"])
        while len(seen) < 200:
            label = rng.choice(["negative", "positive"])
            text = _sentence(rng, rng.choice(GOOD if label == "positive" else BAD))
            if text not in seen:
                seen.add(text)
                writer.writerow([text, label, "en" if len(seen) > 40 else "de"])
    return path


@pytest.fixture(scope="session")
def plain_texts(tmp_path_factory) -> Path:
    """Unlabelled text in de and ja (the languages the tiny language adapters are made for)."""
    rng = random.Random(1)
    path = tmp_path_factory.mktemp("quality-data") / "text.csv"
    seen: set[str] = set()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "lang"])
        while len(seen) < 160:
            text = _sentence(rng, rng.choice(GOOD + BAD))
            if text not in seen:
                seen.add(text)
                writer.writerow([text, "de" if len(seen) % 2 else "ja"])
    return path
