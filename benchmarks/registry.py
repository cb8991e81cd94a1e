"""Registry timings on adapters shaped like the default backbone's (not a test).

Run: ``OMP_NUM_THREADS=1 python benchmarks/registry.py``. Builds a random BERT with the
e5-small shapes (hidden 384, 12 layers), an r=8 LoRA on query/value (~596 KB) with a 3-label head,
and prints milliseconds per publish, resolve, verify-with-backbone, search, and OCI push/pull
against a loopback docker-registry (when installed).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

# The loopback docker-registry launcher is shared with the OCI tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "registry"))


def _per_call_ms(func, repeats: int) -> float:
    started = time.perf_counter()
    for i in range(repeats):
        func(i)
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    os.environ["ADAPTERHUB_HOME"] = str(tmp / "home")
    os.environ["ADAPTERHUB_PROJECT_REGISTRY"] = ""

    import peft
    import torch
    from registry_helpers import RegistryServer
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    from adapterhub import registry

    config = BertConfig(
        vocab_size=1000,
        hidden_size=384,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=1536,
    )
    model = BertModel(config, add_pooling_layer=False).eval()
    backbone = SimpleNamespace(
        name="e5-shaped", fingerprint="sha256:" + "0" * 64, model=model, hidden_size=384
    )
    lora = peft.get_peft_model(
        copy.deepcopy(model),
        peft.LoraConfig(r=8, target_modules=["query", "value"], init_lora_weights=False),
    )
    adapter = tmp / "adapter"
    lora.save_pretrained(adapter)
    save_file(
        {"weight": torch.randn(3, 384), "bias": torch.randn(3)},
        str(adapter / "head.safetensors"),
        metadata={"labels": json.dumps(["a", "b", "c"]), "task_type": "sequence"},
    )
    store = tmp / "store"
    size = (adapter / "adapter_model.safetensors").stat().st_size
    rows = [("adapter_model.safetensors (bytes)", float(size))]
    rows.append(
        (
            "publish (verify+shapes, sha256, card, fsync, rename, index) ms",
            _per_call_ms(
                lambda i: registry.publish(
                    adapter, f"sentiment/de:1.0.{i}", backbone=backbone, store=store
                ),
                20,
            ),
        )
    )
    rows.append(
        (
            "resolve bare id + sha256/safetensors/NaN checks ms",
            _per_call_ms(lambda i: registry.resolve("sentiment/de", store=store, sources=[]), 50),
        )
    )
    rows.append(
        (
            "open_adapter exact id + backbone shapes/fingerprint ms",
            _per_call_ms(
                lambda i: registry.open_adapter(
                    "sentiment/de:1.0.3", backbone, store=store, sources=[]
                ),
                50,
            ),
        )
    )
    rows.append(
        (
            "search (sqlite index, 20 entries) ms",
            _per_call_ms(lambda i: registry.search(store=store, task="sentiment", lang="de"), 50),
        )
    )
    if shutil.which("docker-registry"):
        server = RegistryServer(tmp / "oci")
        try:
            url = server.url()
            rows.append(
                (
                    "OCI push, loopback docker-registry ms",
                    _per_call_ms(
                        lambda i: registry.push(f"sentiment/de:1.0.{i}", url, store=store), 10
                    ),
                )
            )
            rows.append(
                (
                    "OCI pull + verify + local commit ms",
                    _per_call_ms(
                        lambda i: registry.pull(f"sentiment/de:1.0.{i}", url, store=tmp / "other"),
                        10,
                    ),
                )
            )
        finally:
            server.stop()
    for label, value in rows:
        print(f"{label:<64} {value:10.1f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
