"""Sentiment quality on the real backbone: LoRA vs a linear probe vs full fine-tuning.

Same data (recipes/sentiment.yaml: en, fr, nl, zh, at most 1000 training texts each), same
budget (steps x batch), same seed; German is evaluated zero-shot (it has no training data).
Writes ``benchmarks/results/sentiment_quality.{json,md}`` after every method, so a partial run
still leaves its numbers, plus each run's train_log.jsonl and loss curve.

    OMP_NUM_THREADS=1 python benchmarks/sentiment_quality.py            # ~70 min on 2 busy cores
    # or in two processes, then merge:
    python benchmarks/sentiment_quality.py --methods lora,probe &
    python benchmarks/sentiment_quality.py --methods full --output /tmp/full
    python benchmarks/sentiment_quality.py --merge /tmp/full/sentiment_quality.json

"full" fine-tunes every encoder layer and the head; the word-embedding table (96M of the 117.5M
parameters, most rows never seen by 4000 texts) stays frozen, as is usual for multilingual
encoders (it also keeps the languages nothing trains on aligned). A quick look:

    python benchmarks/sentiment_quality.py --steps 20 --methods lora
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
LANGS = ["en", "fr", "nl", "zh", "de"]
TARGETS = {
    "lora_minus_probe_min": 0.03,
    "full_minus_lora_max": 0.015,
    "de_zero_shot_min": 0.85,
    "trainable_share_max": 0.01,
}


def variants(base):
    """The three contenders; only the trainable part and its learning rate differ."""
    return {
        "lora": base,
        "probe": replace(base, method="none", freeze="backbone", learning_rate=5e-3),
        "full": replace(
            base, method="none", freeze="embeddings", learning_rate=5e-5, head_learning_rate=2e-3
        ),
    }


def markdown(report: dict) -> str:
    methods = [m for m in ("lora", "probe", "full") if m in report["runs"]]
    lines = [
        "# Sentiment quality: LoRA vs linear probe vs full fine-tuning",
        "",
        f"Backbone `{report['backbone']}`; trained on {', '.join(report['train_langs'])} "
        f"({report['train_examples']} texts), {report['steps']} steps of {report['batch_size']}, "
        f"max_length {report['max_length']}, seed {report['seed']}; de is zero-shot. "
        "Test accuracy (macro-F1 in brackets). lora: r=8 on query/key/value/dense; probe: "
        "only the linear head trains; full: every encoder layer and the head train (the "
        "word-embedding table stays frozen).",
        "",
        "| method | " + " | ".join(LANGS) + " | trainable | share | train s |",
        "|---|" + "---:|" * (len(LANGS) + 3),
    ]
    for method in methods:
        run = report["runs"][method]
        cells = []
        for lang in LANGS:
            values = run["test"].get(lang)
            cells.append(f"{values['accuracy']:.3f} ({values['macro_f1']:.3f})" if values else "-")
        lines.append(
            f"| {method} | " + " | ".join(cells) + f" | {run['parameters']['trainable']:,} | "
            f"{100 * run['parameters']['share']:.2f}% | {run['seconds']:.0f} |"
        )
    if report.get("checks"):
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        for check in report["checks"]:
            lines.append(f"| {check['target']} | {check['measured']} | {check['met']} |")
    lines += ["", f"Reproduce: `{report['command']}`", ""]
    return "\n".join(lines)


def checks(report: dict) -> list[dict]:
    runs = report["runs"]
    out = []
    if "lora" in runs and "probe" in runs:
        for lang in LANGS:
            diff = runs["lora"]["test"][lang]["accuracy"] - runs["probe"]["test"][lang]["accuracy"]
            out.append(
                {
                    "target": f"{lang}: LoRA >= probe + 3 points",
                    "measured": f"{100 * diff:+.1f} points",
                    "met": diff >= TARGETS["lora_minus_probe_min"],
                }
            )
    if "lora" in runs and "full" in runs:
        for lang in LANGS:
            diff = runs["full"]["test"][lang]["accuracy"] - runs["lora"]["test"][lang]["accuracy"]
            out.append(
                {
                    "target": f"{lang}: LoRA within 1.5 points of full FT",
                    "measured": f"full - LoRA = {100 * diff:+.1f} points",
                    "met": diff <= TARGETS["full_minus_lora_max"],
                }
            )
    if "lora" in runs:
        de = runs["lora"]["test"]["de"]["accuracy"]
        out.append({"target": "de zero-shot >= 0.85", "measured": f"{de:.3f}", "met": de >= 0.85})
        share = runs["lora"]["parameters"]["share"]
        out.append(
            {
                "target": "trainable <= 1% of the backbone",
                "measured": f"{100 * share:.2f}% (adapter alone "
                f"{100 * runs['lora']['parameters']['adapter_share']:.2f}%)",
                "met": share <= TARGETS["trainable_share_max"],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="lora,probe,full")
    parser.add_argument("--steps", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--keep", default="/tmp/adapterhub-quality", help="adapter folders")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--merge", default=None, help="add the runs of another result JSON")
    args = parser.parse_args()
    if args.merge:
        path = Path(args.output) / "sentiment_quality.json"
        report = json.loads(path.read_text())
        report["runs"].update(json.loads(Path(args.merge).read_text())["runs"])
        report["command"] = "OMP_NUM_THREADS=1 python benchmarks/sentiment_quality.py"
        report["checks"] = checks(report)
        path.write_text(json.dumps(report, indent=2) + "\n")
        (Path(args.output) / "sentiment_quality.md").write_text(markdown(report))
        print(markdown(report))
        return

    from adapterhub.backbone import load_backbone
    from adapterhub.recipes import resolve_recipe
    from adapterhub.train import train

    base = resolve_recipe("sentiment", lang="de", max_steps=args.steps)
    backbone = load_backbone(base.backbone)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    command = "OMP_NUM_THREADS=1 python benchmarks/sentiment_quality.py" + (
        f" --steps {args.steps}" if args.steps else ""
    )
    report = {
        "backbone": backbone.name,
        "fingerprint": backbone.fingerprint,
        "steps": base.max_steps,
        "batch_size": base.batch_size,
        "max_length": base.max_length,
        "seed": base.seed,
        "train_langs": base.source_langs,
        "train_examples": None,
        "command": command,
        "runs": {},
        "recipe": base.to_dict(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for method in args.methods.split(","):
        recipe = variants(base)[method]
        folder = Path(args.keep) / method
        if folder.exists():
            shutil.rmtree(folder)
        result = train(recipe, output_dir=folder, backbone=backbone, progress=True)
        metrics = json.loads((folder / "metrics.json").read_text())
        report["train_examples"] = metrics["train_examples"]
        report["runs"][method] = {
            "recipe": {
                "method": recipe.method,
                "freeze": recipe.freeze,
                "learning_rate": recipe.learning_rate,
                "head_learning_rate": recipe.head_learning_rate,
            },
            "test": result.metrics,
            "best_validation": result.best_validation,
            "steps": result.steps,
            "best_step": metrics["best_step"],
            "parameters": result.parameters,
            "seconds": result.seconds,
        }
        for name in ("train_log.jsonl", "loss_curve.png"):
            if (folder / name).is_file():
                shutil.copyfile(folder / name, output / f"sentiment_quality_{method}_{name}")
        report["checks"] = checks(report)
        (output / "sentiment_quality.json").write_text(json.dumps(report, indent=2) + "\n")
        (output / "sentiment_quality.md").write_text(markdown(report))
        print(markdown(report), flush=True)


if __name__ == "__main__":
    main()
