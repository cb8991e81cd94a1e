"""What the traffic, cold-start and peer benchmarks share: the machine they ran on and the real
review texts they send.

Texts are the sentiment test split of the built-in dataset (de, en, fr, nl, zh: the languages of
the published sentiment adapters), ``per_lang`` of each drawn with a stated seed, then shuffled
into one arrival order. Real reviews are ragged: a few long ones among many short ones.
"""

from __future__ import annotations

import os
import platform
import random
from pathlib import Path

LANGS = ("de", "en", "fr", "nl", "zh")
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
"""The flags that decide which precisions run fast here (bf16 natively: avx512_bf16/amx_bf16;
int8 dot products: VNNI/AMX int8; fbgemm's int8 kernels need AVX2)."""


def machine() -> dict:
    """CPU model, the precision-relevant flags it has, cores and the load average now."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model in ("", "x86_64"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {
        "cpu": model,
        "flags": [f for f in CPU_FLAGS if f in flags],
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def review_texts(per_lang: int = 32, seed: int = 0, langs=LANGS) -> list[dict]:
    """``per_lang`` test reviews of each language, shuffled: ``[{"text", "lang", "label"}]``."""
    from adapterhub.data import load_dataset

    rng = random.Random(seed)
    chosen = []
    for lang in langs:
        test = load_dataset("sentiment", [lang])["test"]
        names = test.features["label"].names
        picked = rng.sample(range(len(test)), min(per_lang, len(test)))
        chosen += [
            {"text": test[i]["text"], "lang": lang, "label": names[test[i]["label"]]}
            for i in picked
        ]
    rng.shuffle(chosen)
    return chosen


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
