"""Serving precision: speed, memory and accuracy of fp32, bf16 and torch's dynamic int8 on this CPU,
through the serving runtime (what ``adapterhub serve --dtype / --quantize`` answers with).

    OMP_NUM_THREADS=1 python benchmarks/precision.py [--max-examples 150] [--precisions fp32,int8,bf16]

Accuracy: every published sequence-classification adapter of the project store (sentiment/de,
en, fr, nl, zh; langid/multi) on its own language's test split (at most ``--max-examples``
texts, the same subset ``adapterhub eval --max-examples`` scores) and the sentiment adapters on
the ``sentiment-yardstick`` dev set when it is installed; plus how many labels each precision
changes against fp32. Speed: the bare backbone and the runtime with one adapter over the same
real reviews, length-sorted (:mod:`realtexts`), interleaved rounds, ratios against fp32 within
each round. Memory: bytes of the encoder's weights (int8: the packed weights).
pos/en (a token task) is not scored here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from realtexts import machine, review_texts  # noqa: E402

ADAPTERS = {  # adapter -> (dataset, language of its test split)
    "sentiment/de": ("sentiment", "de"),
    "sentiment/en": ("sentiment", "en"),
    "sentiment/fr": ("sentiment", "fr"),
    "sentiment/nl": ("sentiment", "nl"),
    "sentiment/zh": ("sentiment", "zh"),
    "langid/multi": ("langid", None),
}
CHUNK_TOKENS = 4096


def weight_bytes(model) -> int:
    """Parameters and buffers, plus the packed weights of int8 Linear layers."""
    from adapterhub.backbone.int8 import Int8Linear

    total = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return total + sum(m.weight_bytes for m in model.modules() if isinstance(m, Int8Linear))


def load(tag: str):
    """The backbone of one ``--precisions`` entry, on the engine ``serve`` runs: fp32, bf16,
    int8 (what ``--quantize int8`` serves), int8-all (every Linear int8) or ``int8:REGEX``
    (int8 but the Linear layers whose names match, e.g. ``int8:output\\.dense$``)."""
    from adapterhub.backbone import load_backbone

    if tag == "int8":
        return load_backbone(
            "multilingual-e5-small", device="cpu", quantize="int8", engine="native"
        )
    if not tag.startswith("int8"):
        return load_backbone("multilingual-e5-small", device="cpu", dtype=tag, engine="native")
    from adapterhub.backbone.int8 import quantize_int8

    backbone = load_backbone("multilingual-e5-small", device="cpu", engine="native")
    quantize_int8(backbone.model, keep=tag.partition(":")[2] or None)
    backbone.quantization = "int8"
    return backbone


def test_rows(dataset: str, lang: str | None, cap: int) -> tuple[list[str], list[str]]:
    from adapterhub.data import load_dataset
    from adapterhub.evaluation.inference import sample_rows

    # langid: the adapter's own languages (its labels); loading every language would score
    # texts of languages it has no label for as errors
    langs = [lang] if lang else _adapter_labels("langid/multi") if dataset == "langid" else None
    test = load_dataset(dataset, langs)["test"]
    names = test.features["label"].names
    rows = sample_rows([dict(r) for r in test], cap)
    return [r["text"] for r in rows], [names[r["label"]] for r in rows]


def _adapter_labels(adapter: str) -> list[str]:
    from adapterhub.registry.resolver import Resolver

    return list(Resolver.default().resolve(adapter).manifest.labels or [])


def yardstick_rows(cap: int) -> tuple[list[str], list[str]] | None:
    from adapterhub.data import load_dataset
    from adapterhub.errors import AdapterHubError

    try:
        dev = load_dataset("sentiment-yardstick")
    except AdapterHubError:
        return None
    split = dev[next(iter(dev))] if "dev" not in dev else dev["dev"]
    from adapterhub.evaluation.inference import sample_rows

    names = split.features["label"].names
    rows = sample_rows([dict(r) for r in split], cap)
    return [r["text"] for r in rows], [names[r["label"]] for r in rows]


def predict(runtime, adapter: str, texts: list[str]) -> list[dict]:
    """Labels and scores, in length-sorted chunks of about CHUNK_TOKENS real tokens."""
    from adapterhub.runtime import format_prediction

    with runtime.acquire(adapter) as lease:
        rows = [runtime.encode(t, lease) for t in texts]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
        answers: list[dict] = [{}] * len(rows)
        chunk: list[int] = []
        tokens = 0
        for i in [*order, None]:
            if i is not None and tokens + len(rows[i].input_ids) <= CHUNK_TOKENS:
                chunk.append(i)
                tokens += len(rows[i].input_ids)
                continue
            if chunk:
                outputs = runtime.forward([rows[j] for j in chunk])
                for j, output in zip(chunk, outputs):
                    answers[j] = format_prediction(lease, rows[j], output)
            chunk, tokens = ([i], len(rows[i].input_ids)) if i is not None else ([], 0)
        return answers


def accuracy(answers: list[dict], gold: list[str]) -> float:
    return sum(a["label"] == g for a, g in zip(answers, gold)) / max(1, len(gold))


def speed(runtimes: dict, texts: list[str], rounds: int) -> dict:
    """Seconds per pass (bare backbone; runtime with sentiment/en) per precision, interleaved."""
    from adapterhub.runtime.runtime import Lease

    plans = {}
    for tag, runtime in runtimes.items():
        bare = Lease((), runtime)
        rows = sorted(
            (runtime.encode(t, bare, "embed") for t in texts), key=lambda r: len(r.input_ids)
        )
        lease = runtime.acquire("sentiment/en")
        adapted = sorted((runtime.encode(t, lease) for t in texts), key=lambda r: len(r.input_ids))
        plans[tag] = (runtime, [rows[i : i + 32] for i in range(0, len(rows), 32)],
                      [adapted[i : i + 32] for i in range(0, len(adapted), 32)])  # fmt: skip
    times: dict = {f"{tag} {kind}": [] for tag in runtimes for kind in ("bare", "runtime")}
    for runtime, bare_batches, adapted_batches in plans.values():  # warm-up
        runtime.forward(bare_batches[0])
        runtime.forward(adapted_batches[0])
    for index in range(rounds):
        for tag, (runtime, bare_batches, adapted_batches) in plans.items():
            for kind, batches in (("bare", bare_batches), ("runtime", adapted_batches)):
                started = time.perf_counter()
                for batch in batches:
                    runtime.forward(batch)
                times[f"{tag} {kind}"].append(time.perf_counter() - started)
        print(f"  speed round {index + 1}/{rounds} done", flush=True)
    result = {}
    for name, values in times.items():
        kind = name.split()[1]
        base = times[f"fp32 {kind}"]
        result[name] = {
            "sentences_per_s": len(texts) / statistics.median(values),
            "x_fp32": statistics.median(b / v for b, v in zip(base, values)),
            "seconds": values,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=150, help="test texts per adapter")
    parser.add_argument(
        "--precisions",
        default="fp32,int8,bf16",
        help="fp32 first; int8-all, int8:REGEX (kept fp32)",
    )
    parser.add_argument("--speed-texts", type=int, default=16, help="reviews per language")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-yardstick", action="store_true")
    parser.add_argument("--yardstick-max", type=int, default=280, help="yardstick texts scored")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "precision.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from adapterhub.runtime import Runtime

    started = time.perf_counter()
    precisions = args.precisions.split(",")
    results: dict = {
        "config": vars(args),
        "machine_at_start": machine(),
        "torch": torch.__version__,
    }
    print(f"machine: {results['machine_at_start']}", flush=True)
    runtimes = {}
    for tag in precisions:
        backbone = load(tag)
        runtimes[tag] = Runtime(backbone)
        results.setdefault("weight_bytes", {})[tag] = weight_bytes(backbone.model)
    texts = [r["text"] for r in review_texts(args.speed_texts, 0)]
    print(f"speed: {len(texts)} reviews x {args.rounds} rounds ...", flush=True)
    results["speed"] = speed(runtimes, texts, args.rounds)
    yardstick = None if args.no_yardstick else yardstick_rows(args.yardstick_max)
    results["yardstick_present"] = yardstick is not None
    results["accuracy"] = {}
    for adapter, (dataset, lang) in ADAPTERS.items():
        sets = {"test": test_rows(dataset, lang, args.max_examples)}
        if yardstick is not None and adapter.startswith("sentiment/"):
            sets["yardstick"] = yardstick
        for name, (inputs, gold) in sets.items():
            row: dict = {"texts": len(inputs)}
            answers = {}
            for tag, runtime in runtimes.items():
                answers[tag] = predict(runtime, adapter, inputs)
                row[tag] = accuracy(answers[tag], gold)
            for tag in precisions[1:]:
                row[f"{tag}_delta_points"] = 100 * (row[tag] - row["fp32"])
                row[f"{tag}_same_label"] = sum(
                    a["label"] == b["label"] for a, b in zip(answers[tag], answers["fp32"])
                ) / len(inputs)
            results["accuracy"][f"{adapter} {name}"] = row
            print(f"  {adapter} {name}: {json.dumps(row)}", flush=True)
    results["machine_at_end"] = machine()
    results["wall_s"] = time.perf_counter() - started
    report(results, precisions)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out} ({results['wall_s'] / 60:.1f} min)")
    return 0


def report(results: dict, precisions: list[str]) -> None:
    print("\n| precision | bare x fp32 | runtime x fp32 | encoder weights MiB |")
    print("|---|---:|---:|---:|")
    for tag in precisions:
        bare, rt = results["speed"][f"{tag} bare"], results["speed"][f"{tag} runtime"]
        print(f"| {tag} | {bare['x_fp32']:.2f} | {rt['x_fp32']:.2f} | "
              f"{results['weight_bytes'][tag] / 2**20:.0f} |")  # fmt: skip
    head = " | ".join(f"{t} accuracy" for t in precisions)
    print(f"\n| adapter, set | texts | {head} | " + " | ".join(
        f"{t} change (points), same label" for t in precisions[1:]) + " |")  # fmt: skip
    print("|---|---:|" + "---:|" * (len(precisions) + len(precisions) - 1))
    worst = dict.fromkeys(precisions[1:], 0.0)
    for name, row in results["accuracy"].items():
        cells = " | ".join(f"{row[t]:.3f}" for t in precisions)
        changes = " | ".join(
            f"{row[f'{t}_delta_points']:+.1f}, {row[f'{t}_same_label']:.1%}" for t in precisions[1:]
        )
        print(f"| {name} | {row['texts']} | {cells} | {changes} |")
        for t in precisions[1:]:
            worst[t] = min(worst[t], row[f"{t}_delta_points"])
    results["worst_delta_points"] = worst
    print(
        "\nworst accuracy change (points): " + ", ".join(f"{t} {v:+.1f}" for t, v in worst.items())
    )


if __name__ == "__main__":
    sys.exit(main())
