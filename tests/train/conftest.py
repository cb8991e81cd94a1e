"""Small real data files for training tests: a learnable sentiment task, tagged sentences and
plain text, written as CSV and read through adapterhub.data.load_user_data like a user's."""

from __future__ import annotations

import csv
import random

import pytest

GOOD = ["good", "great", "excellent", "fun", "love", "gut", "bon", "goed", "好"]
BAD = ["bad", "terrible", "awful", "boring", "hate", "schlecht", "mauvais", "slecht", "坏"]
FILLER = ["the", "movie", "film", "book", "plot", "story", "is", "was", "very", "this", "a"]


def _sentence(rng: random.Random, word: str) -> str:
    words = rng.sample(FILLER, rng.randint(2, 6))
    words.insert(rng.randint(0, len(words)), word)
    return " ".join(words)


def write_sentiment_csv(path):
    rng = random.Random(0)
    seen = set()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "lang"])
        while len(seen) < 240:
            label = rng.choice(["negative", "positive"])
            text = _sentence(rng, rng.choice(GOOD if label == "positive" else BAD))
            if text in seen:
                continue
            seen.add(text)
            writer.writerow([text, label, rng.choice(["en", "fr"]) if len(seen) > 20 else "de"])
    return path


@pytest.fixture(scope="session")
def sentiment_csv(tmp_path_factory):
    return write_sentiment_csv(tmp_path_factory.mktemp("data") / "sentiment.csv")


TAGS = {"the": "DET", "a": "DET", "this": "DET", "is": "AUX", "was": "AUX", "very": "ADV"}


def write_pos_csv(path):
    rng = random.Random(1)
    seen = set()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tokens", "tags", "lang"])
        while len(seen) < 200:
            words = [rng.choice(["the", "a", "this"]), rng.choice(["movie", "film", "book"])]
            words += [rng.choice(["is", "was"])] + (["very"] if rng.random() < 0.5 else [])
            words.append(rng.choice(GOOD + BAD))
            text = " ".join(words)
            if text in seen:
                continue
            seen.add(text)
            tags = [TAGS.get(w, "NOUN" if w in ("movie", "film", "book") else "ADJ") for w in words]
            writer.writerow([text, " ".join(tags), "en"])
    return path


@pytest.fixture(scope="session")
def pos_csv(tmp_path_factory):
    return write_pos_csv(tmp_path_factory.mktemp("data") / "pos.csv")


@pytest.fixture(scope="session")
def text_csv(tmp_path_factory):
    rng = random.Random(2)
    path = tmp_path_factory.mktemp("data") / "text.csv"
    seen = set()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "lang"])
        while len(seen) < 200:
            text = _sentence(rng, rng.choice(GOOD + BAD))
            if text not in seen:
                seen.add(text)
                writer.writerow([text, "de"])
    return path


@pytest.fixture(scope="session")
def data_for(sentiment_csv, pos_csv, text_csv):
    return {"sentiment": sentiment_csv, "pos": pos_csv, "mlm": text_csv}
