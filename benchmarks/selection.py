"""Checkpoint selection: source-language validation alone, the yardstick alone, or their mean.

Keung et al. (2020) found that zero-shot cross-lingual results swing by up to 17 points with the
checkpoint, and that source-language validation does not predict them. This benchmark measures
what that means for the sentiment recipe. Each seed is one run of recipes/sentiment.yaml
(target de, trained on en, fr, nl and zh, German zero-shot) at the budget of
``sentiment/de@adapterhub:1.1.0`` (400 steps of 16 at 128 tokens, 1000 texts a language),
evaluated every 50 steps with no early stopping and ``select_on: [validation, yardstick]``. At
every evaluation the run also scores its current weights on the test splits (German: 155 texts
that no rule ever sees; zh capped at 400). Those test scores are recorded for this table only and
choose nothing. From the one curve the table reads off the step each rule would keep, and the test
accuracy there:

- ``validation``: the training languages' validation accuracy (the recipe's default rule);
- ``yardstick``: accuracy on the 728-text multilingual dev set (28 languages, most without
  training data);
- ``mean``: their mean (what the run kept: its output folder holds that step's weights).

    python benchmarks/selection.py --seeds 42 & python benchmarks/selection.py --seeds 1; wait
    python benchmarks/selection.py --seeds 42,1 --skip-training    # the table from the curves

Each run takes about 35 minutes on one CPU core (OMP_NUM_THREADS=1). Folders go under
``--keep`` (never into a registry); results to ``benchmarks/results/selection.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from adapterhub.evaluation.inference import evaluate_rows, sample_rows
from adapterhub.recipes import load_recipe, recipe_from_dict
from adapterhub.training import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from realtexts import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BUDGET = {
    "lang": "de",
    "max_steps": 400,
    "batch_size": 16,
    "max_length": 128,
    "max_train_examples": 1000,
    "max_validation_examples": 100,
    "max_eval_examples": None,
    "eval_every": 50,
    "patience": 0,
    "select_on": ["validation", "yardstick"],
}
"""What changes from recipes/sentiment.yaml: sentiment/de 1.1.0's budget, every 50 steps."""
TEST_LANGS = ["de", "en", "fr", "nl", "zh"]
TEST_CAP = 400
"""Test texts per language scored at each evaluation (zh has 1717; the others fewer)."""
RULES = {
    "validation": lambda e: e["validation_accuracy"],
    "yardstick": lambda e: e["yardstick_accuracy"],
    "mean": lambda e: (e["validation_accuracy"] + e["yardstick_accuracy"]) / 2,
}


class CurveTrainer(Trainer):
    """The recipe's own loop; each evaluation also scores the test splits, for the table only."""

    def _validate(self) -> None:
        super()._validate()
        entry = self.state.history[-1]
        for lang in TEST_LANGS:
            rows = sample_rows(self.data.test[lang], TEST_CAP)
            values = evaluate_rows(
                self.unwrapped,
                rows,
                self.backbone.tokenizer,
                self.recipe.max_length,
                self.recipe.eval_batch_size,
            )
            entry[f"test_{lang}"] = values["accuracy"]


def run_seed(seed: int, keep: Path) -> list[dict]:
    data = {**load_recipe("sentiment").to_dict(), **BUDGET, "seed": seed}
    output = keep / f"seed{seed}"
    trainer = CurveTrainer(recipe_from_dict(data), output_dir=output, progress=True)
    try:
        trainer.setup()
        trainer.train()
        trainer.finish()
    finally:
        trainer.cleanup()
    curve = [e for e in trainer.state.history if e["event"] == "eval"]
    (output / "curve.json").write_text(json.dumps(curve, indent=1) + "\n")
    return curve


def picks(curve: list[dict]) -> dict[str, dict]:
    """Per rule: the step it keeps (the first of equals, as the loop does) and the scores there."""
    out = {}
    for rule, key in RULES.items():
        best = max(curve, key=key)
        tests = [best[f"test_{lang}"] for lang in TEST_LANGS]
        out[rule] = {
            "step": best["step"],
            "validation": best["validation_accuracy"],
            "yardstick": best["yardstick_accuracy"],
            "yardstick_hard": best["yardstick_hard_accuracy"],
            "yardstick_worst": f"{best['yardstick_worst_lang']} {best['yardstick_worst_accuracy']:.3f}",
            **{f"test_{lang}": best[f"test_{lang}"] for lang in TEST_LANGS},
            "test_mean": sum(tests) / len(tests),
        }
    return out


def markdown(report: dict) -> str:
    langs = " | ".join(f"{lang} test" for lang in TEST_LANGS)
    lines = [
        "# Checkpoint selection: validation, yardstick, or their mean",
        "",
        f"recipes/sentiment.yaml with {', '.join(f'{k}={v}' for k, v in BUDGET.items())}. "
        "At each evaluation the run's weights are also scored on the test splits (de is "
        f"zero-shot; zh capped at {TEST_CAP} texts); those scores choose nothing. "
        "`kept by` marks the step each rule keeps.",
    ]
    for seed, run in report["seeds"].items():
        lines += [
            "",
            f"## seed {seed}",
            "",
            f"| step | validation | yardstick | hard | worst | {langs} | kept by |",
            "|---:|---:|---:|---:|---|" + "---:|" * len(TEST_LANGS) + "---|",
        ]
        for e in run["curve"]:
            kept = [r for r, p in run["picks"].items() if p["step"] == e["step"]]
            tests = " | ".join(f"{e[f'test_{lang}']:.3f}" for lang in TEST_LANGS)
            lines.append(
                f"| {e['step']} | {e['validation_accuracy']:.3f} | {e['yardstick_accuracy']:.3f} "
                f"| {e['yardstick_hard_accuracy']:.3f} | {e['yardstick_worst_lang']} "
                f"{e['yardstick_worst_accuracy']:.3f} | {tests} | {', '.join(kept)} |"
            )
    lines += [
        "",
        "## what each rule keeps, averaged over the seeds",
        "",
        f"| rule | validation | yardstick | hard | {langs} | test mean |",
        "|---|---:|---:|---:|" + "---:|" * len(TEST_LANGS) + "---:|",
    ]
    for rule, values in report["by_rule"].items():
        tests = " | ".join(f"{values[f'test_{lang}']:.3f}" for lang in TEST_LANGS)
        lines.append(
            f"| {rule} | {values['validation']:.3f} | {values['yardstick']:.3f} "
            f"| {values['yardstick_hard']:.3f} | {tests} | {values['test_mean']:.3f} |"
        )
    lines += ["", f"Run: {report['machine']}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="42,1", help="comma-separated seeds (default 42,1)")
    parser.add_argument(
        "--keep",
        type=Path,
        default=Path(os.environ.get("TMPDIR", "/tmp")) / "adapterhub-selection",
        help="folder for the runs (default $TMPDIR/adapterhub-selection)",
    )
    parser.add_argument(
        "--skip-training",
        action="store_true",
        help="read each seed's curve from --keep instead of training it",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    report: dict = {"budget": BUDGET, "seeds": {}}
    for seed in seeds:
        saved = args.keep / f"seed{seed}" / "curve.json"
        if args.skip_training:
            curve = json.loads(saved.read_text())
        else:
            curve = run_seed(seed, args.keep)
        report["seeds"][str(seed)] = {"curve": curve, "picks": picks(curve)}
    runs = list(report["seeds"].values())
    report["by_rule"] = {
        rule: {
            key: sum(r["picks"][rule][key] for r in runs) / len(runs)
            for key in runs[0]["picks"][rule]
            if key not in ("step", "yardstick_worst")
        }
        for rule in RULES
    }
    report["machine"] = machine()
    if len(seeds) > 1 or args.skip_training:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "selection.json").write_text(json.dumps(report, indent=1) + "\n")
        (RESULTS / "selection.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
