"""LP-FT against the plain recipe at a CPU-sized budget, paired, on the yardstick and the tests.

Two runs of recipes/sentiment.yaml (target de, trained on en, fr, nl, zh; de zero-shot) that
differ only in ``head_init``: ``random`` (the recipe's default) and ``probe`` (LP-FT: the head
starts as the linear probe of the frozen backbone's pooled states of the training rows, the
function benchmarks/probe.py scores). Same seed, data, order, steps and learning rates. Both
are scored on the yardstick (per language, hard subset, overall; LP-FT - plain with the
paired-bootstrap 95% interval) and on the test splits, and the probe alone beside them. The
budget defaults to what two CPU cores manage in about half an hour (250 steps of 16 at 128
tokens, 1000 texts a language: one epoch). Trained folders go under ``--keep`` (never into a
registry); results to ``benchmarks/results/lpft.{json,md}`` after every run:

    OMP_NUM_THREADS=1 python benchmarks/lpft.py
    # or the two runs in parallel, then the table from their folders:
    python benchmarks/lpft.py --only plain & python benchmarks/lpft.py --only lpft; wait
    python benchmarks/lpft.py --reuse
    python benchmarks/lpft.py --seeds 42,43 --steps 400       # more, where time allows
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from adapterhub.backbone import load_backbone
from adapterhub.data import yardstick
from adapterhub.evaluation.yardstick import HARD, OVERALL, score_adapter
from adapterhub.preprocessing import Preprocessing
from adapterhub.recipes import load_recipe, recipe_from_dict
from adapterhub.training import train

sys.path.insert(0, str(Path(__file__).parent))
from probe import (  # noqa: E402
    FeatureCache,
    cell,
    compare,
    fit_on,
    points,
    probe_on_tests,
    probe_on_yardstick,
)
from realtexts import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BUDGET = {
    "lang": "de",
    "max_steps": 250,
    "batch_size": 16,
    "max_length": 128,
    "max_train_examples": 1000,
    "max_validation_examples": 100,
    "eval_every": 50,
}
"""What changes from recipes/sentiment.yaml for a run on two CPU cores."""
VARIANTS = {"plain": "random", "lpft": "probe"}
TEST_LANGS = ["en", "fr", "nl", "zh", "de"]


def markdown(report: dict) -> str:
    budget = report["budget"]
    lines = [
        "# LP-FT vs the plain sentiment recipe (CPU budget)",
        "",
        f"recipes/sentiment.yaml with {', '.join(f'{k}={v}' for k, v in budget.items())}; "
        "the two runs differ only in head_init (random vs probe). Yardstick accuracy "
        f"({report['yardstick_texts']} texts, {yardstick.SPLIT} split), LP-FT - plain in points "
        "with the paired-bootstrap 95% interval; the probe alone (fitted on the same rows) "
        "beside them.",
    ]
    for seed, run in report["seeds"].items():
        if "paired" not in run:
            continue
        lines += [
            "",
            f"## seed {seed}",
            "",
            "| lang | plain | LP-FT | probe | LP-FT - plain [95%] | plain - probe | "
            "LP-FT - probe |",
            "|---|---:|---:|---:|---|---:|---:|",
        ]
        for lang, c in run["paired"].items():
            label = {HARD: "**hard subset**", OVERALL: "**overall**"}.get(lang, lang)
            probe = run["probe_yardstick"][lang]
            lines.append(
                f"| {label} | {c['old']:.3f} | {c['new']:.3f} | {probe:.3f} | {cell(c)} | "
                f"{points(c['old'] - probe)} | {points(c['new'] - probe)} |"
            )
        train_langs = run["train_langs"]
        for name in ("plain", "lpft"):
            key = "old" if name == "plain" else "new"
            short = [
                lang
                for lang in train_langs
                if run["paired"][lang][key] - run["probe_yardstick"][lang] < 0.03
            ]
            lines.append("")
            lines.append(
                f"{name}: >= probe + 3 points on the yardstick in "
                f"{len(train_langs) - len(short)} of its {len(train_langs)} training languages"
                + (f" (short: {', '.join(short)})" if short else "")
                + "."
            )
        lines += [
            "",
            "| test split | plain | LP-FT | probe | LP-FT - plain |",
            "|---|---:|---:|---:|---:|",
        ]
        for lang in TEST_LANGS:
            plain, lpft = run["runs"]["plain"]["test"][lang], run["runs"]["lpft"]["test"][lang]
            probe = run["probe_test"][lang]
            lines.append(
                f"| {lang} | {plain:.3f} | {lpft:.3f} | {probe:.3f} | {points(lpft - plain)} |"
            )
        lines += ["", "| run | best step | best validation | train s |", "|---|---:|---:|---:|"]
        for name, result in run["runs"].items():
            lines.append(
                f"| {name} | {result['best_step']} | {result['best_validation']:.3f} | "
                f"{result['seconds']:.0f} |"
            )
        if run.get("probe"):
            lines += [
                "",
                f"Probe (LP-FT's head init): C={run['probe']['C']}, validation accuracy "
                f"{run['probe']['validation_accuracy']:.3f}.",
            ]
    where = report["run"]["machine"]
    lines += [
        "",
        f"Run: {where['cpu']}, {where['cores']} cores, "
        f"OMP_NUM_THREADS={report['run']['omp_num_threads']}, load average "
        f"{where['load_average']} at the end.",
        "",
        f"Reproduce: `{report['command']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--steps", type=int, default=BUDGET["max_steps"])
    parser.add_argument("--keep", default="/tmp/adapterhub-lpft", help="trained folders")
    parser.add_argument(
        "--reuse", action="store_true", help="score a run already trained under --keep again"
    )
    parser.add_argument(
        "--only",
        choices=sorted(VARIANTS),
        default=None,
        help="train (and score) one variant; the two can run in parallel, then --reuse tables both",
    )
    parser.add_argument("--cache", default="/tmp/adapterhub-probe-cache")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--name", default="lpft", help="file name stem of the results")
    args = parser.parse_args()
    backbone = load_backbone()
    cache = FeatureCache(backbone, Path(args.cache))
    budget = {**BUDGET, "max_steps": args.steps}
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    report = {
        "budget": budget,
        "yardstick_texts": len(yardstick.load()[yardstick.SPLIT]),
        "command": " ".join(["OMP_NUM_THREADS=1 python benchmarks/lpft.py", *sys.argv[1:]]),
        "seeds": {},
    }
    for seed in [int(s) for s in args.seeds.split(",")]:
        base = {**load_recipe("sentiment").to_dict(), **budget, "seed": seed}
        run: dict = {"runs": {}}
        report["seeds"][str(seed)] = run
        scores = {}
        for name, head_init in VARIANTS.items():
            if args.only not in (None, name):
                continue
            recipe = recipe_from_dict({**base, "head_init": head_init}, f"--{name}")
            folder = Path(args.keep) / f"seed{seed}-{name}"
            if not (args.reuse and (folder / "metrics.json").is_file()):
                if folder.exists():
                    shutil.rmtree(folder)
                train(recipe, output_dir=folder, backbone=backbone, progress=True)
            metrics = json.loads((folder / "metrics.json").read_text())
            run["train_langs"] = metrics["train_langs"]
            run["runs"][name] = {
                "folder": str(folder),
                "head_init": head_init,
                "test": {lang: metrics["test"][lang]["accuracy"] for lang in metrics["test"]},
                "best_step": metrics["best_step"],
                "best_validation": metrics["best_validation"],
                "seconds": metrics["seconds"],
            }
            if "probe" in metrics:
                run["probe_head"] = metrics["probe"]
            if args.only:  # --reuse scores it beside the other
                continue
            scores[name] = score_adapter(folder, backbone=backbone)
            print(json.dumps({"seed": seed, name: scores[name].table()[OVERALL]}), flush=True)
        if args.only:
            continue
        base_recipe = recipe_from_dict(base, "budget")
        probe, data = fit_on(base_recipe, cache)
        preprocessing = Preprocessing.from_dict(base_recipe.to_dict())
        probed = probe_on_yardstick(probe, preprocessing, cache, "probe")
        run["probe"] = {"C": probe.c, "validation_accuracy": probe.validation_accuracy}
        run["probe_yardstick"] = probed.table()
        run["probe_test"] = probe_on_tests(probe, data, cache, base_recipe.max_length)
        run["paired"] = compare(scores["lpft"], scores["plain"])
        report["run"] = {
            "machine": machine(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        }
        (output / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (output / f"{args.name}.md").write_text(markdown(report))
        print(markdown(report), flush=True)


if __name__ == "__main__":
    main()
