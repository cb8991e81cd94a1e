"""The hand-written parallel set of benchmarks/retrieval_handwritten.py (issue 15's independent
check): whole, in the scripts it names, in no language retrieval/multi was trained on, and the
published adapter is nowhere more than a point below the bare backbone on it."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from adapterhub.data import available_languages
from adapterhub.evaluation.inference import adapter_folder, bare_task_model, load_task_model
from adapterhub.preprocessing import Preprocessing
from adapterhub.recipes import load_recipe
from adapterhub.tasks.retrieval import DIRECTIONS, embed_texts, mine_pairs

ROOT = Path(__file__).resolve().parents[2]
DATA = json.loads((ROOT / "benchmarks/data/handwritten_parallel.json").read_text("utf-8"))
MANIFEST = json.loads(
    (ROOT / "registry/adapterhub/retrieval/multi/1.0.0/manifest.json").read_text("utf-8")
)
UNICODE_SCRIPT = {
    "Latin": "LATIN",
    "Cyrillic": "CYRILLIC",
    "Arabic": "ARABIC",
    "Arabic (Shahmukhi)": "ARABIC",
    "Bengali-Assamese": "BENGALI",
    "Odia": "ORIYA",
}
LANGS = sorted(DATA["languages"])


def test_every_sentence_is_translated_into_every_language_once():
    assert len(DATA["sentences"]) >= 30 and len(LANGS) >= 6
    assert DATA["license"] and "adapterhub project" in DATA["license_note"]
    for lang in ["en", *LANGS]:
        texts = [row[lang] for row in DATA["sentences"]]
        assert all(t.strip() for t in texts), lang
        assert len(set(texts)) == len(texts), f"{lang} has a sentence twice"
    for row in DATA["sentences"]:
        assert set(row) == {"id", "en", *LANGS}
        assert all(row[lang] != row["en"] for lang in LANGS), row["id"]


@pytest.mark.parametrize("lang", LANGS)
def test_each_language_is_written_in_its_script(lang):
    wanted = UNICODE_SCRIPT[DATA["languages"][lang]["script"]]
    for row in DATA["sentences"]:
        letters = [c for c in row[lang] if c.isalpha()]
        inside = sum(unicodedata.name(c, "").startswith(wanted) for c in letters)
        assert inside >= 0.9 * len(letters), (lang, row[lang])


def test_no_language_is_in_the_adapters_training_data():
    dataset = MANIFEST["recipe"]["dataset"]
    trained = set(available_languages(dataset))
    assert len(trained) > 400  # the parallel set: UDHR languages and Spanish
    assert not trained & set(LANGS), sorted(trained & set(LANGS))


@pytest.mark.real
def test_published_adapter_is_nowhere_a_point_below_the_bare_backbone(real_backbone, test_home):
    pairs = {
        lang: [{"text": row[lang], "pair": row["en"]} for row in DATA["sentences"]]
        for lang in LANGS
    }
    folder, info = adapter_folder("retrieval/multi@adapterhub:1.0.0", real_backbone)
    models = {
        "bare": (
            bare_task_model(real_backbone, "retrieval"),
            Preprocessing.from_dict(load_recipe("retrieval").to_dict()),
        ),
        "adapter": (
            load_task_model(folder, real_backbone, task_type="retrieval"),
            info["preprocessing"],
        ),
    }
    scores = {}
    for name, (model, preprocessing) in models.items():
        prepared = {
            lang: [{k: preprocessing.apply(v) for k, v in r.items()} for r in rows]
            for lang, rows in pairs.items()
        }
        texts = sorted({r[c] for rows in prepared.values() for r in rows for c in ("text", "pair")})
        vectors = embed_texts(
            model, texts, real_backbone.tokenizer, preprocessing.max_length, batch_size=64
        )
        lookup = dict(zip(texts, vectors))
        scores[name] = {lang: mine_pairs(rows, lookup) for lang, rows in prepared.items()}
    for lang in LANGS:
        for direction in DIRECTIONS:
            key = f"p_at_1_{direction}"
            bare, adapted = scores["bare"][lang][key], scores["adapter"][lang][key]
            assert adapted >= bare - 0.01, (lang, direction, bare, adapted)
    assert scores["bare"]["or"]["p_at_1"] > 0.5  # the texts are real translations
