"""The user's own data: CSV/TSV, JSONL/JSON and Parquet files or folders of them, and
``datasets.load_dataset`` hub names, through the same cleaning, splitting and validation as the
built-in datasets. Bad data raises ``DataError`` naming the file and the row.

Rows are numbered from 1 and do not count a CSV header; a CSV row also gives its line.
Files named after a split (``train``, ``validation``/``valid``/``dev``, ``test``) keep that
split; every other row gets the hash-derived split of its text.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from adapterhub.data.builtin import MASKED_LM, TEXT_CLASSIFICATION, TOKEN_CLASSIFICATION
from adapterhub.data.pairs import PAIRS, pairs_dataset_dict, user_pairs
from adapterhub.data.text import SPLITS, clean_text, split_key, split_of
from adapterhub.errors import DataError, UsageError

log = logging.getLogger(__name__)

TASK_ALIASES = {
    TEXT_CLASSIFICATION: TEXT_CLASSIFICATION,
    "classification": TEXT_CLASSIFICATION,
    "sequence-classification": TEXT_CLASSIFICATION,
    "sentiment": TEXT_CLASSIFICATION,
    "langid": TEXT_CLASSIFICATION,
    TOKEN_CLASSIFICATION: TOKEN_CLASSIFICATION,
    "pos": TOKEN_CLASSIFICATION,
    "ner": TOKEN_CLASSIFICATION,
    MASKED_LM: MASKED_LM,
    "mlm": MASKED_LM,
    "text": MASKED_LM,
    PAIRS: PAIRS,
    "retrieval": PAIRS,
}
FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
}
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "validation": "validation",
    "valid": "validation",
    "val": "validation",
    "dev": "validation",
    "test": "test",
    "eval": "test",
}


def normalise_task(task: str) -> str:
    """The canonical task type for a task name or alias (``sentiment`` -> text-classification)."""
    try:
        return TASK_ALIASES[task.lower()]
    except KeyError:
        raise UsageError(
            f"unknown task {task!r}; use one of: {', '.join(sorted(TASK_ALIASES))}"
        ) from None


@dataclass
class _Row:
    where: str  # "file.csv row 3 (line 4)"
    split: str | None  # from the file name, else None
    values: dict


def _where(file: str, row: int, line: int | None = None) -> str:
    return f"{file} row {row}" + (f" (line {line})" if line is not None else "")


def _decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line}: byte 0x{data[exc.start]:02x} at offset {exc.start} is not "
            "UTF-8; re-save the file as UTF-8"
        ) from None


def _split_from_name(path: Path) -> str | None:
    """``train.csv``, ``test-00001.parquet``, ``dev_en.jsonl`` or a file in a folder named
    exactly after a split keep that split."""
    stem = path.stem.lower()
    for piece in (stem, stem.split("-")[0], stem.split("_")[0], stem.split(".")[0]):
        if piece in SPLIT_NAMES:
            return SPLIT_NAMES[piece]
    return SPLIT_NAMES.get(path.parent.name.lower())


def _read_file(path: Path) -> list[_Row]:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unsupported file type {path.suffix or '(none)'}; use "
            f"{', '.join(sorted(FORMATS))}"
        )
    split = _split_from_name(path)
    rows: list[_Row] = []
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for bad files
            raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
        for number, values in enumerate(table.to_pylist(), start=1):
            for key, value in values.items():
                if isinstance(value, bytes):
                    try:
                        values[key] = value.decode("utf-8")
                    except UnicodeDecodeError:
                        raise DataError(
                            f"{_where(str(path), number)}: column {key!r} holds bytes that are "
                            "not UTF-8; re-encode the column as UTF-8 strings"
                        ) from None
            rows.append(_Row(_where(str(path), number), split, values))
        return rows
    text = _decode(path.read_bytes(), path)
    if kind in ("csv", "tsv"):
        reader = csv.DictReader(
            io.StringIO(text, newline=""), delimiter="," if kind == "csv" else "\t"
        )
        try:
            for number, values in enumerate(reader, start=1):
                if None in values:
                    raise DataError(
                        f"{_where(str(path), number, reader.line_num)}: more fields than the "
                        "header has columns; quote fields that contain the delimiter"
                    )
                rows.append(_Row(_where(str(path), number, reader.line_num), split, values))
        except csv.Error as exc:
            raise DataError(f"{path} line {reader.line_num}: malformed CSV ({exc})") from None
        if reader.fieldnames is None:
            raise DataError(f"{path}: the file is empty; it needs a header row and data rows")
        for row in rows:
            row.values["__columns__"] = reader.fieldnames
        return rows
    if kind == "json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {exc.lineno}: invalid JSON ({exc.msg})") from None
        for number, values in enumerate(items, start=1):
            if not isinstance(values, dict):
                raise DataError(f"{_where(str(path), number)}: expected a JSON object per row")
            rows.append(_Row(_where(str(path), number), split, values))
        return rows
    number = 0
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        number += 1
        try:
            values = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path} line {line_number}: invalid JSON ({exc.msg})") from None
        if not isinstance(values, dict):
            raise DataError(f"{path} line {line_number}: expected a JSON object per line")
        rows.append(_Row(f"{path} row {number} (line {line_number})", split, values))
    return rows


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FORMATS)
    if not files:
        raise DataError(
            f"{path}: no data files found; put .csv, .tsv, .jsonl, .json or .parquet files there"
        )
    return files


def _looks_like_path(name: str) -> bool:
    """Hub names are ``name`` or ``owner/name``; anything else that does not exist is a typo'd
    path, which must not be sent to the hub."""
    return (
        name.startswith((".", "/", "~"))
        or "\\" in name
        or name.count("/") > 1
        or Path(name).suffix.lower() in FORMATS
    )


def _hub_unreachable() -> str | None:
    """Why the hub cannot be reached, or None. Checked up front (DNS + one TCP connect, 3 s)
    because the hub client otherwise retries for half a minute before giving up."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return None  # offline mode: the datasets cache answers, or fails at once
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=3):
            return None
    except OSError as exc:
        return f"{host}:{port} is unreachable ({exc.strerror or exc})"


def _hub_rows(name: str) -> list[_Row]:
    import datasets

    reason = _hub_unreachable()
    if reason is not None:
        raise DataError(
            f"could not load {name!r}: it is not a local file or folder, and the Hugging Face hub "
            f"{reason}; check the path, or set HF_HUB_OFFLINE=1 to use a cached copy"
        )
    try:
        loaded = datasets.load_dataset(name)
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; all mean "not loadable"
        detail = " ".join(str(exc).split())[:200]
        raise DataError(
            f"could not load {name!r}: it is not a local file or folder, and the Hugging Face hub "
            f"could not provide it ({type(exc).__name__}: {detail}); check the path, or the "
            "dataset name and network access"
        ) from None
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    rows = []
    for split_name, dataset in loaded.items():
        split = SPLIT_NAMES.get(split_name.lower())
        class_columns = {
            column: feature
            for column, feature in dataset.features.items()
            if isinstance(feature, datasets.ClassLabel)
        }
        sequence_columns = {
            column: feature.feature
            for column, feature in dataset.features.items()
            if isinstance(getattr(feature, "feature", None), datasets.ClassLabel)
        }
        for number, values in enumerate(dataset, start=1):
            for column, feature in class_columns.items():
                values[column] = feature.int2str(values[column])
            for column, feature in sequence_columns.items():
                values[column] = [feature.int2str(v) for v in values[column]]
            rows.append(_Row(f"hub:{name}[{split_name}] row {number}", split, values))
    return rows


def _label_string(value, where: str, column: str) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    label = "" if value is None else str(value).strip()
    if not label:
        raise DataError(f"{where}: empty {column!r}; every row needs a label")
    return label


def _sorted_labels(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def _check_columns(row: _Row, needed: list[str]) -> None:
    columns = row.values.get("__columns__") or list(row.values)
    missing = [c for c in needed if c not in columns]
    if missing:
        shown = ", ".join(str(c) for c in columns if c != "__columns__")
        flag = {"text": "--text-column", "label": "--label-column"}
        raise DataError(
            f"{row.where}: no column {', '.join(map(repr, missing))} (columns: {shown}); "
            f"rename it or pass the column name ({flag['text']}, {flag['label']})"
        )


def load_user_data(
    path_or_hub_name: str,
    *,
    task: str,
    text_column: str = "text",
    label_column: str = "label",
    lang: str | None = None,
):
    """Load the user's data as a ``datasets.DatasetDict`` with train/validation/test and the
    standard columns of ``task`` (see :mod:`adapterhub.data`).

    ``path_or_hub_name`` is a CSV/TSV/JSONL/JSON/Parquet file, a folder of them, or a
    ``datasets.load_dataset`` name. For token classification the columns default to ``tokens``
    and ``tags`` (lists, or whitespace-separated strings in CSV); for aligned pairs (task
    ``pairs`` or ``retrieval``) they are ``text`` and ``pair`` (plus optional ``pair_lang`` and
    ``ref``, :func:`adapterhub.data.pairs.user_pairs`). ``lang`` sets the language of every
    row; otherwise a ``lang`` column is used if present, else ``und``.
    """
    import datasets

    kind = normalise_task(task)
    if kind == TOKEN_CLASSIFICATION:
        text_column = "tokens" if text_column == "text" else text_column
        label_column = "tags" if label_column == "label" else label_column
    path = Path(path_or_hub_name).expanduser()
    if path.exists():
        rows = [row for file in _files(path) for row in _read_file(file)]
    elif _looks_like_path(path_or_hub_name):
        raise DataError(f"{path_or_hub_name}: no such file or folder; check the path")
    else:
        rows = _hub_rows(path_or_hub_name)
    if not rows:
        raise DataError(f"{path_or_hub_name}: no rows; the data needs at least a header and rows")
    if kind == PAIRS:  # text + pair columns, split by alignment unit (adapterhub.data.pairs)
        return pairs_dataset_dict(user_pairs(rows, path_or_hub_name, lang))

    needed = [text_column] if kind == MASKED_LM else [text_column, label_column]
    examples: list[dict] = []
    first_where: dict[str, str] = {}
    for row in rows:
        _check_columns(row, needed)
        values = row.values
        row_lang = lang or str(values.get("lang") or "und")
        raw = values[text_column]
        if kind == TOKEN_CLASSIFICATION:
            tokens = raw.split() if isinstance(raw, str) else raw
            tags = values[label_column]
            tags = tags.split() if isinstance(tags, str) else tags
            if not isinstance(tokens, list) or not isinstance(tags, list):
                raise DataError(f"{row.where}: {text_column!r} and {label_column!r} must be lists")
            tokens = [clean_text(str(t)) for t in tokens]
            if not tokens or any(not t for t in tokens):
                raise DataError(f"{row.where}: empty {text_column!r} or an empty token")
            if len(tokens) != len(tags):
                raise DataError(
                    f"{row.where}: {len(tokens)} tokens but {len(tags)} tags; give one tag per token"
                )
            tags = [_label_string(t, row.where, label_column) for t in tags]
            key = " ".join(tokens)
            example = {"tokens": tokens, "tags": tags, "lang": row_lang}
        else:
            if raw is None or not isinstance(raw, str):
                raise DataError(f"{row.where}: {text_column!r} is not text ({raw!r})")
            text = clean_text(raw)
            if not text:
                raise DataError(f"{row.where}: empty {text_column!r}; remove the row or fill it")
            key = text
            example = {"text": text, "lang": row_lang}
            if kind == TEXT_CLASSIFICATION:
                example["label"] = _label_string(values[label_column], row.where, label_column)
        example["__where__"] = row.where
        example["__split__"] = row.split or split_of(key)
        example["__key__"] = key
        examples.append(example)
        first_where.setdefault(key, row.where)

    examples = _deduplicate(examples, kind)
    label_field = "tags" if kind == TOKEN_CLASSIFICATION else "label"
    if kind != MASKED_LM:
        _validate_labels(examples, label_field, kind, path_or_hub_name)
    return _to_dataset_dict(examples, kind, label_field, datasets)


def _deduplicate(examples: list[dict], kind: str) -> list[dict]:
    """Drop exact duplicates; drop texts with conflicting labels; keep a text that the files
    put in two splits only in the later of train < validation < test, so no text leaks."""
    by_key: dict[str, list[dict]] = {}
    for example in examples:
        by_key.setdefault(split_key(example["__key__"]), []).append(example)
    kept = []
    order = {split: i for i, split in enumerate(SPLITS)}
    for group in by_key.values():
        if kind == TEXT_CLASSIFICATION and len({e["label"] for e in group}) > 1:
            log.warning(
                "dropped a text seen with labels %s (%s)",
                sorted({e["label"] for e in group}),
                ", ".join(e["__where__"] for e in group[:3]),
            )
            continue
        if len({e["__split__"] for e in group}) > 1:
            log.warning("text in two splits kept only in the later one: %s", group[0]["__where__"])
        kept.append(max(group, key=lambda e: order[e["__split__"]]))
    return kept


def _validate_labels(examples: list[dict], field: str, kind: str, source: str) -> None:
    def labels_of(example):
        return example[field] if kind == TOKEN_CLASSIFICATION else [example[field]]

    all_labels = {label for e in examples for label in labels_of(e)}
    if len(all_labels) < 2:
        only = next(iter(all_labels), "")
        raise DataError(
            f"{source}: only one class ({only!r}) in {len(examples)} rows; a classifier needs at "
            "least two labels"
        )
    train = {label for e in examples if e["__split__"] == "train" for label in labels_of(e)}
    if not train:
        raise DataError(f"{source}: no training rows; add a train file or more rows")
    for example in examples:
        if example["__split__"] == "train":
            continue
        unseen = [label for label in labels_of(example) if label not in train]
        if unseen:
            raise DataError(
                f"{example['__where__']}: label {unseen[0]!r} in the {example['__split__']} split "
                "never occurs in train; add training examples with it or remove the row"
            )


def _to_dataset_dict(examples: list[dict], kind: str, label_field: str, datasets):
    string = datasets.Value("string")
    if kind == TOKEN_CLASSIFICATION:
        names = _sorted_labels({t for e in examples for t in e["tags"]})
        features = datasets.Features(
            {
                "tokens": datasets.Sequence(string),
                "tags": datasets.Sequence(datasets.ClassLabel(names=names)),
                "lang": string,
            }
        )
    elif kind == TEXT_CLASSIFICATION:
        names = _sorted_labels({e["label"] for e in examples})
        features = datasets.Features(
            {"text": string, "label": datasets.ClassLabel(names=names), "lang": string}
        )
    else:
        names = []
        features = datasets.Features({"text": string, "lang": string})
    index = {name: i for i, name in enumerate(names)}
    columns = {split: {c: [] for c in features} for split in SPLITS}
    for example in examples:
        target = columns[example["__split__"]]
        for column in features:
            value = example[column]
            if column == label_field and kind == TOKEN_CLASSIFICATION:
                value = [index[t] for t in value]
            elif column == label_field and kind == TEXT_CLASSIFICATION:
                value = index[value]
            target[column].append(value)
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict(data, features=features)
            for split, data in columns.items()
        }
    )
