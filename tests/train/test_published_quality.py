"""The published German sentiment adapter, as a user would load it: plain PEFT on the real
backbone plus the head from head.safetensors, judged on German sentences written for this
test (none of them is in any dataset the project trains or tests on)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open

from adapterhub.backbone import mean_pool
from adapterhub.registry.remotes import project_registry_dir

POSITIVE = [
    "Das Hotel war wunderbar, das Personal sehr freundlich und das Frühstück hervorragend.",
    "Ich bin begeistert von diesem Buch und habe es in einem Zug gelesen.",
    "Der Film ist spannend, witzig und großartig gespielt.",
    "Die Lieferung kam schnell und das Gerät funktioniert einwandfrei.",
    "Ein tolles Restaurant, wir kommen gerne wieder.",
    "Sehr empfehlenswert, die Qualität ist ausgezeichnet.",
]
NEGATIVE = [
    "Das Essen war kalt und der Kellner unhöflich, nie wieder.",
    "Ein langweiliges Buch, ich habe mich durch jede Seite gequält.",
    "Der Akku ist nach zwei Tagen kaputt gegangen, totaler Schrott.",
    "Die schlechteste Serie, die ich je gesehen habe.",
    "Das Zimmer war schmutzig und viel zu laut.",
    "Enttäuschend, ich würde dieses Produkt niemandem empfehlen.",
]


def newest_entry(task: str, lang: str):
    root = project_registry_dir()
    if root is None:
        pytest.skip("no project registry in this checkout")
    versions = sorted(
        (
            p
            for p in (root / "adapterhub" / task / lang).glob("*")
            if (p / "manifest.json").is_file()
        ),
        key=lambda p: tuple(int(x) for x in p.name.split("-")[0].split(".")),
    )
    if not versions:
        pytest.skip(f"{task}/{lang} is not published")
    return versions[-1]


@pytest.mark.real
def test_published_german_sentiment_adapter_with_plain_peft(real_backbone):
    from peft import PeftModel

    entry = newest_entry("sentiment", "de")
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["backbone"]["fingerprint"] == real_backbone.fingerprint
    model = PeftModel.from_pretrained(copy.deepcopy(real_backbone.model), str(entry)).eval()
    with safe_open(str(entry / "head.safetensors"), framework="pt") as handle:
        labels = json.loads(handle.metadata()["labels"])
        assert handle.metadata()["task_type"] == "sequence"
        weight, bias = handle.get_tensor("weight"), handle.get_tensor("bias")
    texts = POSITIVE + NEGATIVE
    batch = real_backbone.tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
        logits = mean_pool(hidden, batch["attention_mask"]) @ weight.T + bias
    predicted = [labels[i] for i in logits.argmax(-1).tolist()]
    expected = ["positive"] * len(POSITIVE) + ["negative"] * len(NEGATIVE)
    correct = sum(p == e for p, e in zip(predicted, expected, strict=True))
    assert correct >= 10, list(zip(texts, predicted, strict=True))
