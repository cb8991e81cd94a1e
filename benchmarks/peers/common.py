"""What every peer script shares. Peers run in their own virtual environments (their pins
differ from the project's), so this module needs only the standard library and torch, and reads
its inputs from the job file :mod:`run` writes: the backbone folder, the token ids of the real
review texts (the same ids for every peer), the texts themselves and the adapter counts.

Each peer times its own bare backbone over the same batches in the same process, interleaved
with its adapter runs, so its ratios need no other process's numbers.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

BATCH = 32


def read_job() -> dict:
    return json.loads(Path(sys.argv[1]).read_text())


def write_result(job: dict, result: dict) -> None:
    Path(job["out"]).write_text(json.dumps(result, indent=2) + "\n")


def batches(ids: list[list[int]], order: str) -> list[list[list[int]]]:
    """Batches of 32: in arrival order, or sorted by length (each peer's best case)."""
    rows = ids if order == "arrival" else sorted(ids, key=len)
    return [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]


def padded(rows: list[list[int]], pad: int):
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


def rounds(configs: dict, count: int, seed: int = 0) -> dict[str, list[float]]:
    """Every configuration once per round (shuffled), after one untimed pass: paired times."""
    rng = random.Random(seed)
    names = list(configs)
    for name in names:
        configs[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(count):
        rng.shuffle(names)
        for name in names:
            started = time.perf_counter()
            configs[name]()
            times[name].append(time.perf_counter() - started)
        print(f"  round {index + 1}/{count}", flush=True)
    return times


def ratios(times: dict[str, list[float]], sentences: int, bare: str = "bare") -> dict:
    """Sentences/s and the paired median ratio against the bare backbone of each config."""
    return {
        name: {
            "sentences_per_s": sentences / statistics.median(values),
            "x_bare": statistics.median(b / v for b, v in zip(times[bare], values)),
            "seconds": values,
        }
        for name, values in times.items()
    }
