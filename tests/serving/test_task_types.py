"""Task types at the serving boundary: words line up with labels for any input, long inputs are
cut or refused as documented, and the manifest's preprocessing record is what the runtime reads."""

from __future__ import annotations

import pytest
import torch
from serving_helpers import SENTIMENT, make_adapter, reference_model

from adapterhub.errors import InputError, InputTooLongError, UsageError
from adapterhub.preprocessing import Preprocessing
from adapterhub.tasks import TASK_TYPES
from adapterhub.tasks.base import encode_words

POS = "pos/de@team:1.0.0"


@pytest.fixture(scope="module")
def runtime(tiny_backbone, zoo):
    from adapterhub.runtime import Runtime

    return Runtime(tiny_backbone, registry=zoo.registry)


def _word_oracle(tokenizer, words):
    """Per word: the ids the tokenizer gives that word alone (the word-list oracle)."""
    return [tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]


@pytest.mark.parametrize(
    "text",
    [
        "The \u0001 dog \u0002 runs quickly",
        "der \u200b film \x7f ist nicht gut",
        "\u0003 leading and trailing \u0004",
        "电影 非常 好 \ufeff",
        "tabs\tand\nnewlines  between   words",
    ],
)
def test_every_word_gets_its_own_label_in_order(runtime, tiny_backbone, zoo, text):
    words = text.split()
    answer = runtime.predict(POS, [text])[0]
    assert [t["word"] for t in answer["tokens"]] == words
    # each word's logits are those at its first token in the same sequence the oracle builds
    oracle = _word_oracle(tiny_backbone.tokenizer, words)
    unk = tiny_backbone.tokenizer.unk_token_id
    ids = [0] + [i for pieces in oracle for i in (pieces or [unk])] + [2]
    firsts, position = [], 1
    for pieces in oracle:
        firsts.append(position)
        position += len(pieces or [unk])
    model = reference_model(tiny_backbone, [zoo.folders[POS]], [zoo.methods[POS]])
    from safetensors.torch import load_file

    head = load_file(str(zoo.folders[POS] / "head.safetensors"))
    with torch.inference_mode():
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0]
    want = hidden[firsts] @ head["weight"].T + head["bias"]
    got = torch.tensor([[t["scores"][label] for label in t["scores"]] for t in answer["tokens"]])
    assert torch.allclose(got, torch.softmax(want, -1), atol=1e-5)


def test_word_encoding_matches_the_tokenizer_where_words_have_pieces(tiny_backbone):
    words = ["the", "film", "was", "not", "good", ",", "but", "der", "film", "ist", "gut"]
    encoded = encode_words(tiny_backbone.tokenizer, words, 512)
    reference = tiny_backbone.tokenizer(words, is_split_into_words=True)
    assert encoded.input_ids == reference["input_ids"]
    first = [reference.word_ids().index(w) for w in range(len(words))]
    assert encoded.first_tokens == first


def test_whitespace_only_token_input_is_refused(runtime):
    with pytest.raises(InputError, match="no words"):
        runtime.predict(POS, ["   \t\n "])


def test_token_input_longer_than_the_adapter_reads_is_refused(runtime):
    with pytest.raises(InputTooLongError, match="split the text"):
        runtime.predict(POS, [" ".join(["film"] * 600)])


def test_sequence_truncation_is_reported_and_matches_the_tokenizer(tiny_backbone):
    task = TASK_TYPES["sequence"]
    text = "the film was very good " * 40
    record = Preprocessing(prefix="query: ", max_length=16)
    encoded = task.encode(tiny_backbone.tokenizer, text, record)
    reference = tiny_backbone.tokenizer("query: " + text, truncation=True, max_length=16)
    assert encoded.input_ids == reference["input_ids"] and encoded.truncated
    short = task.encode(tiny_backbone.tokenizer, "good", record)
    assert not short.truncated


def test_runtime_reads_the_manifests_preprocessing_record(tiny_backbone, tmp_path):
    from adapterhub.registry import publish
    from adapterhub.runtime import Runtime

    folder = make_adapter(tiny_backbone, tmp_path / "src", "lora", 5, SENTIMENT, "sequence", r=4)
    store = tmp_path / "registry"
    recipe = {"prefix": "query: ", "max_length": 12}
    manifest = publish(
        folder, "sentiment/en@t:1.0.0", backbone=tiny_backbone, store=store, recipe=recipe
    )
    assert manifest.preprocessing == Preprocessing(prefix="query: ", max_length=12).to_dict()
    runtime = Runtime(tiny_backbone, registry=store)
    long_text = "the film was very good and the story is fun " * 10
    answer = runtime.predict("sentiment/en@t:1.0.0", [long_text, "good"])
    assert answer[0]["truncated"] is True and "truncated" not in answer[1]
    # the served scores are the reference computed on exactly 12 tokens
    model = reference_model(tiny_backbone, [folder], ["lora"])
    from safetensors.torch import load_file

    head = load_file(str(folder / "head.safetensors"))
    enc = tiny_backbone.tokenizer(
        "query: " + long_text, truncation=True, max_length=12, return_tensors="pt"
    )
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state
    pooled = tiny_backbone.mean_pool(hidden, enc["attention_mask"])[0]
    want = torch.softmax(pooled @ head["weight"].T + head["bias"], -1)
    got = torch.tensor([answer[0]["scores"][label] for label in SENTIMENT])
    assert torch.allclose(got, want, atol=1e-5)


# --------------------------------------------------------------------------- isolation and stacks


def test_an_adapter_that_breaks_the_forward_fails_alone(tiny_backbone, zoo):
    from adapterhub.errors import ServingError
    from adapterhub.runtime import Runtime

    runtime = Runtime(tiny_backbone, registry=zoo.registry)
    good, bad = "sentiment/de@team:1.0.0", "sentiment/nl@team:1.0.0"
    texts = ["der film ist nicht gut", "das buch ist sehr gut", "i love this book"]
    expected = runtime.predict(good, texts)

    # an adapter that slipped past verification and fails inside the hooks
    def broken(_tensor):
        raise RuntimeError("simulated fault in the bottleneck's non-linearity")

    for entry in runtime.load(bad).entries:
        entry.function = broken
    with runtime.acquire(good) as good_lease, runtime.acquire(bad) as bad_lease:
        rows = [runtime.encode(t, good_lease) for t in texts]
        rows.insert(1, runtime.encode("het boek is heel slecht", bad_lease))
        outputs = runtime.forward(rows)
    assert isinstance(outputs[1].error, ServingError) and bad in str(outputs[1].error)
    answered = [o for i, o in enumerate(outputs) if i != 1]
    from adapterhub.runtime import format_prediction

    for want, got, row in zip(expected, answered, [r for i, r in enumerate(rows) if i != 1]):
        assert got.error is None
        answer = format_prediction(good_lease, row, got)
        assert answer["label"] == want["label"]
        assert all(abs(answer["scores"][k] - v) < 1e-5 for k, v in want["scores"].items())
    with pytest.raises(ServingError, match="quarantined"):
        runtime.acquire(bad)
    assert bad not in runtime.residents


@pytest.mark.parametrize(
    "stack, rule",
    [
        (["sentiment/fr@team:1.0.0", "sentiment/de@team:1.0.0"], "language adapter, task"),
        (["sentiment/de@team:1.0.0", "lang/de@team:1.0.0"], "language adapter, task"),
        (["lang/de@team:1.0.0", "lang/de@team:1.0.0"], "twice"),
    ],
)
def test_stacks_are_language_then_task(runtime, stack, rule):
    with pytest.raises(UsageError, match=rule):
        runtime.acquire(stack)
    assert all(r.pins == 0 for r in runtime.residents.values())


def test_a_corrupt_entry_costs_one_read(tiny_backbone, tmp_path, monkeypatch):
    from adapterhub.errors import IntegrityError
    from adapterhub.registry import publish
    from adapterhub.runtime import Runtime
    from adapterhub.runtime import runtime as runtime_module

    folder = make_adapter(tiny_backbone, tmp_path / "src", "lora", 6, SENTIMENT, "sequence", r=4)
    store = tmp_path / "registry"
    publish(folder, "sentiment/en@t:1.0.0", backbone=tiny_backbone, store=store)
    weights = next(store.rglob("adapter_model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-8:] = b"\xff" * 8
    weights.write_bytes(bytes(data))
    reads = []
    real_open = runtime_module.open_adapter
    monkeypatch.setattr(
        runtime_module, "open_adapter", lambda *a, **k: reads.append(1) or real_open(*a, **k)
    )
    runtime = Runtime(tiny_backbone, registry=store)
    for _ in range(3):
        with pytest.raises(IntegrityError):
            runtime.acquire("sentiment/en@t:1.0.0")
    assert len(reads) == 1
