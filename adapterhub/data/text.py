"""Text cleaning and the deterministic, hash-derived train/validation/test split.

Splits come from a hash of the normalised text, never from a random generator, so the same text
lands in the same split on every machine, in every version of Python and of every library, and in
every dataset that contains it (a sentence in the sentiment test split is also in the test split of
the unlabelled ``text`` data, so a language adapter never trains on it).
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable, Iterator

SPLITS = ("train", "validation", "test")
# Percent of texts in train and validation; the rest is test.
TRAIN_PERCENT = 80
VALIDATION_PERCENT = 10

_WHITESPACE = re.compile(r"\s+")
_BOM = "\ufeff"
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u00ad"), None)


def clean_text(text: str) -> str:
    """Decode HTML entities, drop byte-order marks and zero-width characters, NFC-normalise and
    collapse every run of whitespace (newlines included) to one space."""
    text = html.unescape(text.replace(_BOM, ""))
    text = unicodedata.normalize("NFC", text.translate(_INVISIBLE))
    return _WHITESPACE.sub(" ", text).strip()


def split_key(text: str) -> str:
    """The normalised form a split is derived from: cleaned and case-folded, so that texts that
    differ only in case or spacing can never sit in two splits."""
    return clean_text(text).casefold()


def text_hash(text: str, salt: str = "") -> int:
    digest = hashlib.sha256((salt + split_key(text)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def split_of(text: str) -> str:
    """``train``, ``validation`` or ``test`` for this text (80/10/10), the same everywhere."""
    bucket = text_hash(text) % 100
    if bucket < TRAIN_PERCENT:
        return "train"
    if bucket < TRAIN_PERCENT + VALIDATION_PERCENT:
        return "validation"
    return "test"


def capped(texts: Iterable[str], cap: int | None) -> set[str]:
    """A deterministic subset of at most ``cap`` texts: those with the smallest salted hash. The
    salt makes the choice independent of the split, so a cap keeps the 80/10/10 proportions."""
    texts = list(texts)
    if cap is None or len(texts) <= cap:
        return set(texts)
    return set(sorted(texts, key=lambda t: (text_hash(t, salt="cap:"), t))[:cap])


def deduplicate_labelled(pairs: Iterable[tuple[str, str]]) -> tuple[dict[str, str], int]:
    """Keep one copy of each cleaned text; drop texts seen with more than one label.

    Returns (text -> label in first-seen order, number of conflicting texts dropped).
    """
    labels: dict[str, set[str]] = {}
    for text, label in pairs:
        labels.setdefault(text, set()).add(label)
    kept = {text: next(iter(seen)) for text, seen in labels.items() if len(seen) == 1}
    return kept, len(labels) - len(kept)


_SENTENCE_END = re.compile(r"(?<=[.!?。！？।؟])\s+(?=\S)")


def sentences(paragraph: str, min_chars: int = 3, max_chars: int = 400) -> Iterator[str]:
    """Split a cleaned paragraph into sentences at end punctuation followed by space (good enough
    for language identification; Chinese full stops need no following space)."""
    for part in _SENTENCE_END.split(paragraph):
        for piece in re.split(r"(?<=[。！？])", part) if re.search(r"[。！？]", part) else [part]:
            piece = piece.strip()
            if min_chars <= len(piece) <= max_chars:
                yield piece
