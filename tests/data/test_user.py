"""The user's own data: every format, column mapping, splits, and every kind of bad data.

Fixture files are written into tmp_path by the tests themselves; each error test checks that the
message names the file and the row.
"""

from __future__ import annotations

import csv
import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adapterhub.data import load_user_data
from adapterhub.data.text import split_of
from adapterhub.errors import DataError, UsageError

POSITIVE = [f"I really liked item {i}, it works well" for i in range(30)]
NEGATIVE = [f"Item {i} broke after a day, very poor" for i in range(30)]


def _rows():
    return [{"text": t, "label": "positive"} for t in POSITIVE] + [
        {"text": t, "label": "negative"} for t in NEGATIVE
    ]


def _check_classification(data, n=60):
    assert set(data) == {"train", "validation", "test"}
    assert sum(len(s) for s in data.values()) == n
    assert data["train"].features["label"] == datasets.ClassLabel(names=["negative", "positive"])
    assert data["train"].column_names == ["text", "label", "lang"]
    for split, dataset in data.items():
        for row in dataset:
            assert split_of(row["text"]) == split  # hash-derived, not random


def test_csv_with_bom_entities_and_column_mapping(tmp_path):
    path = tmp_path / "reviews.csv"
    lines = ["review,stars"] + [f'"{r["text"]} &amp; more",{r["label"]}' for r in _rows()]
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())
    data = load_user_data(
        str(path), task="sentiment", text_column="review", label_column="stars", lang="en"
    )
    _check_classification(data)
    texts = [row["text"] for split in data.values() for row in split]
    assert all(t.endswith("& more") for t in texts)
    assert set(data["train"]["lang"]) == {"en"}


def test_tsv_jsonl_json_and_parquet_give_the_same_dataset(tmp_path):
    rows = _rows()
    (tmp_path / "a.tsv").write_text(
        "text\tlabel\n" + "\n".join(f"{r['text']}\t{r['label']}" for r in rows), encoding="utf-8"
    )
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "c.json").write_text(json.dumps(rows))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    loaded = [
        load_user_data(str(tmp_path / name), task="text-classification")
        for name in ("a.tsv", "b.jsonl", "c.json", "d.parquet")
    ]
    for data in loaded:
        _check_classification(data)
        assert set(data["test"]["lang"]) == {"und"}
    reference = {s: sorted(loaded[0][s]["text"]) for s in loaded[0]}
    for data in loaded[1:]:
        assert {s: sorted(data[s]["text"]) for s in data} == reference


def test_folder_with_split_files_keeps_their_splits_and_lang_column(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    rows = [dict(r, lang="de") for r in _rows()]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows[5:55]))
    with (folder / "dev.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label", "lang"])
        writer.writeheader()
        writer.writerows(rows[:5])
    pq.write_table(pa.Table.from_pylist(rows[55:]), folder / "test.parquet")
    (folder / "README.md").write_text("ignored")
    data = load_user_data(str(folder), task="classification")
    assert {s: len(d) for s, d in data.items()} == {"train": 50, "validation": 5, "test": 5}
    assert sorted(data["test"]["text"]) == sorted(r["text"] for r in rows[55:])
    assert set(data["train"]["lang"]) == {"de"}


def test_duplicates_and_conflicting_labels_are_dropped(tmp_path):
    rows = _rows() + _rows()[:3] + [{"text": POSITIVE[10], "label": "negative"}]
    path = tmp_path / "dups.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    data = load_user_data(str(path), task="sentiment")
    texts = [row["text"] for split in data.values() for row in split]
    assert len(texts) == len(set(texts)) == 59  # 3 duplicates kept once, one conflict dropped
    assert POSITIVE[10] not in texts


def test_text_in_two_split_files_stays_only_in_the_later_split(tmp_path):
    rows = _rows()
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows[25:35]))
    data = load_user_data(str(tmp_path), task="sentiment")
    assert len(data["test"]) == 10 and len(data["train"]) == 50
    assert not set(data["train"]["text"]) & set(data["test"]["text"])


def test_token_classification_jsonl_and_csv(tmp_path):
    sentences = [
        {"tokens": ["Der", "Hund", f"bellt{i}", "."], "tags": ["DET", "NOUN", "VERB", "PUNCT"]}
        for i in range(40)
    ]
    (tmp_path / "pos.jsonl").write_text("\n".join(json.dumps(s) for s in sentences))
    data = load_user_data(str(tmp_path / "pos.jsonl"), task="pos", lang="de")
    feature = data["train"].features["tags"]
    assert feature.feature.names == ["DET", "NOUN", "PUNCT", "VERB"]
    row = data["train"][0]
    assert [feature.feature.names[t] for t in row["tags"]] == ["DET", "NOUN", "VERB", "PUNCT"]
    assert sum(len(d) for d in data.values()) == 40
    csv_path = tmp_path / "pos.csv"
    csv_path.write_text(
        "words,upos\n"
        + "\n".join(f"{' '.join(s['tokens'])},{' '.join(s['tags'])}" for s in sentences)
    )
    data_csv = load_user_data(
        str(csv_path), task="token-classification", text_column="words", label_column="upos"
    )
    assert sorted(map(tuple, data_csv["test"]["tokens"])) == sorted(
        map(tuple, data["test"]["tokens"])
    )


def test_mlm_text_needs_only_a_text_column(tmp_path):
    path = tmp_path / "corpus.csv"
    path.write_text("body\n" + "\n".join(f"Satz Nummer {i}." for i in range(50)))
    data = load_user_data(str(path), task="mlm", text_column="body", lang="de")
    assert data["train"].column_names == ["text", "lang"]
    assert sum(len(d) for d in data.values()) == 50


# ---- bad data: DataError naming the file and the row ----------------------------------------


def _error(path, **kwargs) -> str:
    kwargs.setdefault("task", "sentiment")
    with pytest.raises(DataError) as caught:
        load_user_data(str(path), **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_missing_column(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("review,label\nnice,positive\nbad,negative\n")
    message = _error(path)
    assert "reviews.csv row 1" in message and "'text'" in message and "--text-column" in message
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"text": "a", "label": "x"}\n{"text": "b"}\n')
    assert "rows.jsonl row 2 (line 2)" in _error(jsonl) and "'label'" in _error(jsonl)


def test_empty_text(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text("text,label\nnice,positive\n  &nbsp; ,negative\nbad,negative\n")
    message = _error(path)
    assert "reviews.csv row 2 (line 3)" in message and "empty 'text'" in message


def test_empty_label(tmp_path):
    path = tmp_path / "reviews.jsonl"
    path.write_text('{"text": "nice", "label": "positive"}\n{"text": "bad", "label": null}\n')
    assert "reviews.jsonl row 2" in _error(path)


def test_one_class_only(tmp_path):
    path = tmp_path / "happy.jsonl"
    path.write_text("\n".join(json.dumps({"text": t, "label": "positive"}) for t in POSITIVE))
    message = _error(path)
    assert "happy.jsonl" in message and "only one class ('positive')" in message


def test_label_in_test_unseen_in_train(tmp_path):
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in _rows()))
    (tmp_path / "test.jsonl").write_text(
        json.dumps({"text": "fine", "label": "positive"})
        + "\n"
        + json.dumps({"text": "so-so", "label": "neutral"})
    )
    message = _error(tmp_path)
    assert "test.jsonl row 2 (line 2)" in message and "'neutral'" in message
    assert "never occurs in train" in message


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("text,label\ngood,positive\ncaf\xe9 bad,negative\n".encode("latin-1"))
    message = _error(path)
    assert "latin1.csv line 3" in message and "0xe9" in message and "UTF-8" in message
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "\xff", "label": "b"}\n')
    assert "bad.jsonl line 2" in _error(jsonl)


def test_undecodable_bytes_in_parquet_name_the_row(tmp_path):
    table = pa.table(
        {"text": pa.array([b"good", b"\xff\xfe bad"], type=pa.binary()), "label": ["p", "n"]}
    )
    pq.write_table(table, tmp_path / "bytes.parquet")
    message = _error(tmp_path / "bytes.parquet")
    assert "bytes.parquet row 2" in message and "not UTF-8" in message


def test_token_and_tag_counts_must_match(tmp_path):
    path = tmp_path / "pos.jsonl"
    path.write_text(
        json.dumps({"tokens": ["a", "b"], "tags": ["X", "Y"]})
        + "\n"
        + json.dumps({"tokens": ["a", "b"], "tags": ["X"]})
    )
    message = _error(path, task="pos")
    assert "pos.jsonl row 2" in message and "2 tokens but 1 tags" in message


def test_malformed_json_and_unsupported_files(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "a", "label": "x"}\n{"text": \n')
    assert "broken.jsonl line 2: invalid JSON" in _error(path)
    other = tmp_path / "data.xlsx"
    other.write_bytes(b"PK")
    assert "unsupported file type .xlsx" in _error(other)
    assert "no such file" in _error(tmp_path / "missing.csv")
    (tmp_path / "empty").mkdir()
    assert "no data files" in _error(tmp_path / "empty")


def test_unknown_task_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="unknown task"):
        load_user_data(str(tmp_path), task="summarisation")


def test_hub_name_offline_fails_with_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    message = _error("someone/no-such-dataset-xyz")
    assert message.startswith("could not load 'someone/no-such-dataset-xyz'")
    assert "Hugging Face hub" in message


def test_hub_name_with_unreachable_hub_fails_fast(monkeypatch, tmp_path):
    import socket
    import time

    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    message = _error("someone/dataset")
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port} is unreachable" in message and "HF_HUB_OFFLINE=1" in message


def test_cli_show_user_file(tmp_path, capsys):
    from adapterhub.cli import main as cli

    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _rows()))
    assert (
        cli(["data", "show", str(path), "--task", "sentiment", "--split", "train", "-n", "2"]) == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("train: " + str(sum(split_of(r["text"]) == "train" for r in _rows()))
                             + " examples")  # fmt: skip
    assert len(lines) == 3 and lines[1].startswith("[und] ")
    assert cli(["data", "show", str(path)]) == 2
    assert "pass --task" in capsys.readouterr().err
