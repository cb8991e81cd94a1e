"""LoRA against full fine-tuning: time per optimizer step and peak memory, on the real backbone.

Each variant runs in its own fresh process (so peak memory is its own): it sets the run up
exactly as ``adapterhub train`` does (``Trainer.setup``: data, backbone, model, optimizer), runs
warm-up steps, then times ``--steps`` of the loop's own ``Trainer.train_step`` on the same real
sentiment batches (batch 16, up to 128 tokens). Peak memory is the process's maximum resident
set (``ru_maxrss``), and also the growth over the loaded, untrained model (what training itself
costs). Targets: LoRA step <= 0.7x and peak memory
<= 0.6x of full fine-tuning. Prints a table and writes ``benchmarks/results/training.json``.

    OMP_NUM_THREADS=1 python benchmarks/training.py            # ~5 min on a quiet 2-core machine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = {
    "lora": {"method": "lora"},
    "full": {"method": "none", "freeze": "none", "learning_rate": 5e-5},
    "full-frozen-embeddings": {"method": "none", "freeze": "embeddings", "learning_rate": 5e-5},
}


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def worker(
    variant: str, steps: int, warmup: int, batch_size: int, max_length: int, backbone_name: str
) -> dict:
    import torch

    from adapterhub.recipes import resolve_recipe
    from adapterhub.training import Trainer

    recipe = resolve_recipe(
        "sentiment",
        lang="de",
        batch_size=batch_size,
        max_length=max_length,
        backbone=backbone_name,
        **VARIANTS[variant],
    )
    # the run exactly as `adapterhub train` sets it up: data, backbone (loaded here, so not
    # copied), model, optimizer and schedule
    trainer = Trainer(recipe, progress=False)
    trainer.setup()
    task, data = trainer.unwrapped, trainer.data
    # touch every weight once so the memory-mapped backbone counts fully for every variant
    with torch.no_grad():
        task.eval()
        task(trainer.collate(data.train[:2]))
    task.train()
    loaded_mb = rss_mb()
    rows = data.train[: batch_size * (steps + warmup)]
    batches = [trainer.collate(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    times = []
    for index, batch in enumerate(batches):
        started = time.perf_counter()
        trainer.train_step(batch)  # the loop's own step: forward, backward, clip, step, schedule
        if index >= warmup:
            times.append(time.perf_counter() - started)
    trainable = sum(p.numel() for p in task.parameters() if p.requires_grad)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "variant": variant,
        "step_s_median": statistics.median(times),
        "step_s_all": times,
        "peak_rss_mb": peak_mb,
        "loaded_rss_mb": loaded_mb,
        "training_extra_mb": peak_mb - loaded_mb,
        "trainable_parameters": trainable,
        "tokens_per_batch": [int(b["attention_mask"].sum()) for b in batches[warmup:]],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--backbone", default="multilingual-e5-small")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=str(RESULTS / "training.json"))
    args = parser.parse_args()
    if args.worker:
        result = worker(
            args.worker, args.steps, args.warmup, args.batch_size, args.max_length, args.backbone
        )
        print("RESULT " + json.dumps(result), flush=True)
        return

    results = {}
    for variant in args.variants.split(","):
        command = [
            sys.executable, __file__, "--worker", variant, "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
            "--max-length", str(args.max_length), "--backbone", args.backbone,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
        results[variant] = json.loads(line[len("RESULT ") :])
    full = results.get("full")
    print("| variant | step s (median) | peak RSS MB | training extra MB | trainable |")
    print("|---|---:|---:|---:|---:|")
    for name, r in results.items():
        print(
            f"| {name} | {r['step_s_median']:.2f} | {r['peak_rss_mb']:.0f} | "
            f"{r['training_extra_mb']:.0f} | {r['trainable_parameters']:,} |"
        )
    summary = {
        "settings": vars(args),
        "results": results,
        "threads": os.environ.get("OMP_NUM_THREADS"),
    }
    if full and "lora" in results:
        lora = results["lora"]
        summary["ratios"] = {
            "lora_step_over_full": lora["step_s_median"] / full["step_s_median"],
            "lora_peak_over_full": lora["peak_rss_mb"] / full["peak_rss_mb"],
            "lora_extra_over_full_extra": lora["training_extra_mb"] / full["training_extra_mb"],
        }
        summary["targets"] = {"lora_step_over_full": 0.7, "lora_peak_over_full": 0.6}
        print()
        for key, value in summary["ratios"].items():
            target = summary["targets"].get(key)
            met = (
                ""
                if target is None
                else f" (target <= {target}: {'met' if value <= target else 'missed'})"
            )
            print(f"{key}: {value:.2f}{met}")
    del summary["settings"]["worker"]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
