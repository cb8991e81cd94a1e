"""Sentiment quality on the real backbone: LoRA vs a linear probe vs full fine-tuning.

Same data (recipes/sentiment.yaml: en, fr, nl, zh, at most 3000 training texts each), same
budget (steps x batch), same seed; German is evaluated zero-shot (it has no training data).
Writes ``benchmarks/results/sentiment_quality.{json,md}`` after every method, so a partial run
still leaves its numbers, plus each run's train_log.jsonl and loss curve. Each run records the
device it ran on; CUDA is used when present.

    python benchmarks/sentiment_quality.py          # the recipe's budget: 1200 steps of 32
    # or one method per process (on a GPU they share it), then merge:
    python benchmarks/sentiment_quality.py --methods lora,probe &
    python benchmarks/sentiment_quality.py --methods full --output /tmp/full
    python benchmarks/sentiment_quality.py --merge /tmp/full/sentiment_quality.json

"probe" is the issue's linear probe: logistic regression (scikit-learn) on the frozen backbone's
mean-pooled states, its regularisation chosen on the validation split (the one fit in
adapterhub/training/probe.py; benchmarks/probe.py scores it on the yardstick). "full" fine-tunes
the whole backbone and the head (``--full freeze=embeddings`` keeps the word-embedding table
frozen). Any recipe key can be overridden for every method (``--set key=value``) or for one
(``--lora key=value``, ``--full key=value``); values are YAML. A quick look:

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


FULL_DEFAULTS = {"method": "none", "freeze": "none", "learning_rate": 5e-5}


def parse_overrides(pairs: list[str]) -> dict:
    """``key=value`` pairs, the values read as YAML (``lora_r=16``, ``target_modules=[query]``)."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"override {pair!r} is not key=value")
        out[key.strip()] = yaml.safe_load(value)
    return out


def variants(base, lora: dict, full: dict) -> dict:
    """The trained contenders; only the trainable part and its optimiser settings differ."""
    return {
        "lora": replace(base, **lora),
        "full": replace(base, **{**FULL_DEFAULTS, **full}),
    }


def linear_probe(base, backbone) -> dict:
    """The issue's probe (:func:`adapterhub.training.probe.fit_rows`, the fit LP-FT's
    ``head_init: probe`` starts from): logistic regression on the frozen backbone's mean-pooled
    states, C picked on the validation split; then the test languages are scored."""
    import numpy as np

    from adapterhub.tasks.metrics import classification_metrics
    from adapterhub.training import prepare_data
    from adapterhub.training.probe import fit_rows, pooled_features

    started = time.perf_counter()
    data = prepare_data(base)
    model, tokenizer = backbone.model, backbone.tokenizer
    probe = fit_rows(
        model,
        tokenizer,
        data.train,
        data.validation,
        num_labels=len(data.labels),
        max_length=base.max_length,
    )
    test = {}
    for lang, rows in data.test.items():
        x = pooled_features(model, [r["text"] for r in rows], tokenizer, base.max_length)
        truth = np.array([row["label"] for row in rows])
        test[lang] = classification_metrics(probe.predict(x).tolist(), truth.tolist())
    trainable = int(probe.weight.size + probe.bias.size)
    total = sum(p.numel() for p in backbone.model.parameters())
    return {
        "recipe": {
            "method": "logistic regression",
            "C": probe.c,
            "features": "mean-pooled, scaled",
        },
        "test": test,
        "best_validation": probe.validation_accuracy,
        "steps": None,
        "best_step": None,
        "parameters": {"trainable": trainable, "share": trainable / total, "adapter_share": 0.0},
        "seconds": time.perf_counter() - started,
    }


def markdown(report: dict) -> str:
    methods = [m for m in ("lora", "probe", "full") if m in report["runs"]]
    lines = [
        "# Sentiment quality: LoRA vs linear probe vs full fine-tuning",
        "",
        f"Backbone `{report['backbone']}`; trained on {', '.join(report['train_langs'])} "
        f"({report['train_examples']} texts), {report['steps']} steps of {report['batch_size']}, "
        f"max_length {report['max_length']}, seed {report['seed']}; de is zero-shot. "
        "Test accuracy (macro-F1 in brackets). "
        + "; ".join(describe(method, report) for method in methods)
        + ".",
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


def describe(method: str, report: dict) -> str:
    run = report["runs"][method]
    recipe = run["recipe"]
    where = f" [{run['device']}]" if run.get("device") else ""
    if method == "probe":
        return (
            f"probe: logistic regression on frozen mean-pooled embeddings, C={recipe['C']}{where}"
        )
    if method == "lora":
        targets = "/".join(recipe.get("target_modules") or [])
        return (
            f"lora: r={recipe.get('lora_r')}, alpha={recipe.get('lora_alpha')} on {targets}{where}"
        )
    frozen = "word embeddings frozen" if recipe.get("freeze") == "embeddings" else "all weights"
    return f"full: fine-tuning ({frozen}), lr {recipe.get('learning_rate')}{where}"


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
    parser.add_argument("--set", dest="common", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--lora", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--full", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--keep", default="/tmp/adapterhub-quality", help="adapter folders")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--name", default="sentiment_quality", help="result file stem")
    parser.add_argument("--merge", default=None, help="add the runs of another result JSON")
    args = parser.parse_args()
    output = Path(args.output)
    if args.merge:
        path = output / f"{args.name}.json"
        report = json.loads(path.read_text())
        other = json.loads(Path(args.merge).read_text())
        for run in other["runs"].values():
            run.setdefault("device", other.get("device"))
        report["runs"].update(other["runs"])
        report["checks"] = checks(report)
        path.write_text(json.dumps(report, indent=2) + "\n")
        (output / f"{args.name}.md").write_text(markdown(report))
        print(markdown(report))
        return

    from adapterhub.backbone import load_backbone
    from adapterhub.recipes import load_recipe, recipe_from_dict
    from adapterhub.training import train

    common = parse_overrides(args.common)
    if args.steps:
        common["max_steps"] = args.steps
    # Applied as given, None included: ``--set max_eval_examples=null`` means every test text.
    base = recipe_from_dict({**load_recipe("sentiment").to_dict(), "lang": "de", **common}, "--set")
    lora, full = parse_overrides(args.lora), parse_overrides(args.full)
    device = "cuda" if torch_cuda() else "cpu"
    backbone = load_backbone(base.backbone, device=device)
    output.mkdir(parents=True, exist_ok=True)
    command = " ".join(["python benchmarks/sentiment_quality.py", *quoted_args()])
    report = {
        "backbone": backbone.name,
        "fingerprint": backbone.fingerprint,
        "device": device_name(),
        "steps": base.max_steps,
        "batch_size": base.batch_size,
        "max_length": base.max_length,
        "seed": base.seed,
        "train_langs": base.source_langs,
        "train_examples": None,
        "command": command,
        "runs": {},
        "recipe": base.to_dict(),
        "overrides": {"lora": lora, "full": {**FULL_DEFAULTS, **full}},
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    trained = variants(base, lora, full)
    for method in args.methods.split(","):
        if method == "probe":
            report["runs"]["probe"] = {**linear_probe(base, backbone), "device": report["device"]}
        else:
            recipe = trained[method]
            folder = Path(args.keep) / f"{args.name}-{method}"
            if folder.exists():
                shutil.rmtree(folder)
            result = train(recipe, output_dir=folder, backbone=backbone, progress=True)
            metrics = json.loads((folder / "metrics.json").read_text())
            report["train_examples"] = metrics["train_examples"]
            report["runs"][method] = {
                "recipe": {
                    key: getattr(recipe, key)
                    for key in (
                        "method",
                        "freeze",
                        "learning_rate",
                        "head_learning_rate",
                        "lora_r",
                        "lora_alpha",
                        "target_modules",
                    )
                },
                "test": result.metrics,
                "best_validation": result.best_validation,
                "steps": result.steps,
                "best_step": metrics["best_step"],
                "parameters": result.parameters,
                "seconds": result.seconds,
                "device": report["device"],
            }
            for name in ("train_log.jsonl", "loss_curve.png"):
                if (folder / name).is_file():
                    shutil.copyfile(folder / name, output / f"{args.name}_{method}_{name}")
        report["checks"] = checks(report)
        (output / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (output / f"{args.name}.md").write_text(markdown(report))
        print(markdown(report), flush=True)


def torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def device_name() -> str:
    import platform

    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def quoted_args() -> list[str]:
    import shlex
    import sys

    return [shlex.quote(arg) for arg in sys.argv[1:]]


if __name__ == "__main__":
    main()
