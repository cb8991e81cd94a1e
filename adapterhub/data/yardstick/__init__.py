"""The project's multilingual sentiment yardstick: a dev set written by the project, shipped with
the package (``sentiment.jsonl``, card in ``CARD.md``).

It is the ``sentiment-yardstick`` built-in dataset, with one split, ``dev``: used to choose
checkpoints, ranks, recipes and the version a short id means, never trained on (no training
path reads it; the test splits of the ``sentiment`` dataset stay the test). Rows carry ``text``,
``label`` (negative / positive), ``lang``, ``hard`` (negation, contrast, concession, irony-lite
or mixed aspects), ``phenomenon`` (which of those; empty when not hard), ``genre`` (review,
tweet, message) and a stable ``id``.

No download: the rows are the package's own, so this module never touches the build cache.
"""

from __future__ import annotations

import importlib.resources
import json
from collections import Counter
from functools import lru_cache

from adapterhub.errors import DataError

NAME = "sentiment-yardstick"
SPLIT = "dev"
LABELS = ("negative", "positive")
"""The label order of the ``sentiment`` dataset, so sentiment heads score on it unchanged."""
PHENOMENA = ("negation", "contrast", "concession", "irony", "mixed")
GENRES = ("review", "tweet", "message")
COLUMNS = ("id", "text", "label", "lang", "hard", "phenomenon", "genre")
_DATA = "sentiment.jsonl"
_CARD = "CARD.md"


def _read(name: str) -> str:
    return (importlib.resources.files(__package__) / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _rows() -> tuple[dict, ...]:
    rows = []
    for line in _read(_DATA).splitlines():
        if line.strip():
            row = json.loads(line)
            row["phenomenon"] = row.get("phenomenon") or ""
            rows.append(row)
    return tuple(rows)


def rows(langs: list[str] | None = None) -> list[dict]:
    """The yardstick's rows (copies, label as its name), of ``langs`` only when given."""
    wanted = None if langs is None else set(langs)
    return [dict(r) for r in _rows() if wanted is None or r["lang"] in wanted]


def languages() -> list[str]:
    """Every language of the yardstick, sorted."""
    return sorted({r["lang"] for r in _rows()})


def manifest() -> dict:
    """What ``read_manifest`` gives for a built dataset: counts per language in the ``dev``
    split, plus the hard subset's size per language."""
    counts = Counter(r["lang"] for r in _rows())
    hard = Counter(r["lang"] for r in _rows() if r["hard"])
    return {
        "name": NAME,
        "task": "text-classification",
        "archives": {},
        "notes": ["packaged with adapterhub: nothing to download"],
        "counts": {lang: {SPLIT: counts[lang]} for lang in sorted(counts)},
        "stats": {"hard": dict(sorted(hard.items()))},
    }


def card() -> str:
    """The yardstick's data card (Markdown)."""
    return _read(_CARD)


def load(langs: list[str] | None = None):
    """The yardstick as a ``datasets.DatasetDict`` with the one split ``dev``; ``label`` is a
    ClassLabel over :data:`LABELS`."""
    import datasets  # as in builtin.py: ~1 s, and `adapterhub data list` never needs it

    chosen = rows(langs)
    known = set(languages())
    unknown = [lang for lang in (langs or []) if lang not in known]
    if unknown:
        raise DataError(
            f"{NAME} has no language {', '.join(unknown)}; it has: {', '.join(sorted(known))}"
        )
    string = datasets.Value("string")
    features = datasets.Features(
        {
            "id": string,
            "text": string,
            "label": datasets.ClassLabel(names=list(LABELS)),
            "lang": string,
            "hard": datasets.Value("bool"),
            "phenomenon": string,
            "genre": string,
        }
    )
    index = {label: i for i, label in enumerate(LABELS)}
    columns = {c: [r[c] for r in chosen] for c in COLUMNS}
    columns["label"] = [index[label] for label in columns["label"]]
    return datasets.DatasetDict({SPLIT: datasets.Dataset.from_dict(columns, features=features)})
