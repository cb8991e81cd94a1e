"""MAD-X measured: a task adapter trained on a language adapter, stacked at inference on each
language's own language adapter, against the same recipe trained without one, on the sentiment
yardstick.

Two runs of one short recipe (English sentiment only, LoRA r=8 on query/value, the overrides
below): ``plain`` on the bare backbone, ``madx`` on the language adapter (default ``lang/en``,
recorded as its parent in metrics.json). Each is scored on the 728 texts of
``sentiment-yardstick`` (a dev set): plain alone; madx under the training language adapter in
every language (no swap); and madx under ``lang/{lang}``, each language's own adapter where a
store holds one (MAD-X proper). Per language, stack minus plain with a paired bootstrap of the
difference, and the swap against no swap: the same task adapter under the language's own
adapter instead of ``lang/en``, the effect of the language adapter itself. That control matters
because "where the backbone is weakest" is picked from the plain adapter's scores on the same
texts: any other model gains there on average (regression to the mean). Writes
``benchmarks/results/madx.{json,md}`` with the CPU and the seconds each part took.

    OMP_NUM_THREADS=1 python benchmarks/madx.py             # two CPU runs of 150 steps, then scoring
    python benchmarks/madx.py --steps 60                    # a shorter run (stated in the results)
    python benchmarks/madx.py --skip-training               # score the kept runs again

The language adapter must be resolvable by id (``adapterhub registry publish`` it into a store
first) so that ``lang/{lang}`` finds it for its own language too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from adapterhub.backbone import load_backbone
from adapterhub.evaluation.stacks import Stack, language_adapter_folder
from adapterhub.evaluation.yardstick import (
    YardstickScore,
    markdown_table,
    paired_bootstrap,
    score_adapter,
)
from adapterhub.recipes import resolve_recipe
from adapterhub.training import train

sys.path.insert(0, str(Path(__file__).parent))
from realtexts import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OVERRIDES = {
    "train_langs": ["en"],
    "eval_langs": ["en"],
    "target_modules": ["query", "value"],
    "lora_r": 8,
    "lora_alpha": 16,
    "max_steps": 150,
    "eval_every": 50,
    "batch_size": 16,
    "max_length": 64,
    "max_validation_examples": 200,
}
GAIN = 0.02
"""Issue 14's goal for stacks: at least this much above the plain task adapter where the
backbone is weakest."""
WEAKEST = 7
"""How many languages count as where the backbone is weakest: the quarter of the yardstick's 28
on which the plain task adapter scores lowest."""


def _train(name: str, extra: dict, overrides: dict, keep: Path, backbone) -> dict:
    recipe = resolve_recipe("sentiment", lang="en", **overrides, **extra)
    started = time.perf_counter()
    result = train(recipe, output_dir=keep / name, backbone=backbone, progress=False)
    return {
        "test": result.metrics,
        "steps": result.steps,
        "best_validation": result.best_validation,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _compare(stack: YardstickScore, plain: YardstickScore, lang: str) -> dict:
    delta, low, high = paired_bootstrap(stack.only(lang), plain.only(lang))
    return {"accuracy": stack.accuracy(lang), "delta": delta, "low": low, "high": high}


def _difference(row: dict) -> str:
    """A difference in points with its 95% interval, e.g. ``+3.8 (+0.0 to +11.5)``."""
    return f"{100 * row['delta']:+.1f} ({100 * row['low']:+.1f} to {100 * row['high']:+.1f})"


def _cells(row: dict | None) -> str:
    """Two table cells: the stack's accuracy and its difference to plain (empty without one)."""
    if row is None:
        return " | |"
    return f" {row['accuracy']:.3f} | {_difference(row)} |"


def _weakest(per_lang: dict) -> list[str]:
    """The :data:`WEAKEST` languages on which the plain task adapter scores lowest."""
    return sorted(per_lang, key=lambda lang: per_lang[lang]["plain"])[:WEAKEST]


def _verdict(per_lang: dict, column: str) -> dict:
    """How the stack in ``column`` compares with plain: where it gains the goal's margin, where
    the 95% interval excludes no change, and the mean difference on the weakest languages."""
    rows = {lang: r[column] for lang, r in per_lang.items() if r[column] is not None}
    weakest = _weakest(per_lang)
    scored_weak = [lang for lang in weakest if lang in rows]
    return {
        "languages": len(rows),
        "plain_mean": sum(per_lang[lang]["plain"] for lang in rows) / len(rows),
        "stack_mean": sum(r["accuracy"] for r in rows.values()) / len(rows),
        "gain_at_least_goal": sorted(lang for lang, r in rows.items() if r["delta"] >= GAIN),
        "significantly_better": sorted(lang for lang, r in rows.items() if r["low"] > 0),
        "significantly_worse": sorted(lang for lang, r in rows.items() if r["high"] < 0),
        "weakest": weakest,
        "mean_delta_weakest": (
            sum(rows[lang]["delta"] for lang in scored_weak) / len(scored_weak)
            if scored_weak
            else None
        ),
    }


def _own_adapter_effect(per_lang: dict) -> dict:
    """The swap against no swap: what the language's own adapter adds over the training one."""
    rows = {lang: r["swap_vs_no_swap"] for lang, r in per_lang.items() if r["swap_vs_no_swap"]}
    weak = [lang for lang in _weakest(per_lang) if lang in rows]
    return {
        "languages": len(rows),
        "mean_delta": sum(r["delta"] for r in rows.values()) / len(rows) if rows else 0.0,
        "weakest": weak,
        "mean_delta_weakest": sum(rows[lang]["delta"] for lang in weak) / len(weak)
        if weak
        else None,
        "significantly_better": sorted(lang for lang, r in rows.items() if r["low"] > 0),
        "significantly_worse": sorted(lang for lang, r in rows.items() if r["high"] < 0),
    }


def markdown(scores: list[YardstickScore], report: dict) -> str:
    lines = [
        markdown_table(scores, title="MAD-X on the sentiment yardstick (dev), accuracy"),
        "",
        "| lang | plain | no swap [LA, task] | vs plain (95% interval) "
        "| MAD-X [lang/xx, task] | vs plain (95% interval) | swap vs no swap (95% interval) |",
        "|---|---:|---:|---|---:|---|---|",
    ]
    for lang, row in report["per_language"].items():
        own = row["swap_vs_no_swap"]
        lines.append(
            f"| {lang} | {row['plain']:.3f} |"
            + _cells(row["no_swap"])
            + _cells(row["swap"])
            + (" |" if own is None else f" {_difference(own)} |")
        )
    lines.append("")
    for column, verdict in report["verdict"].items():
        weak = verdict["mean_delta_weakest"]
        lines.append(
            f"- {column}: {verdict['languages']} languages, mean accuracy "
            f"{verdict['stack_mean']:.3f} vs plain {verdict['plain_mean']:.3f} on them; "
            f">= +{100 * GAIN:.0f} points in "
            f"{len(verdict['gain_at_least_goal'])} ({', '.join(verdict['gain_at_least_goal'])}); "
            f"95% interval above 0 in {verdict['significantly_better'] or 'none'}, below 0 in "
            f"{verdict['significantly_worse'] or 'none'}; mean difference on the {WEAKEST} "
            f"languages where plain is weakest ({', '.join(verdict['weakest'])}): "
            + ("n/a (none scored)" if weak is None else f"{100 * weak:+.1f} points")
        )
    own = report["own_language_adapter"]
    lines.append(
        f"- swap vs no swap (the language's own adapter against {report['language_adapter']}, "
        f"same task adapter): {own['languages']} languages, mean {100 * own['mean_delta']:+.1f} "
        f"points; on the weakest ones scored ({', '.join(own['weakest']) or 'none'}): "
        + (
            "n/a"
            if own["mean_delta_weakest"] is None
            else f"{100 * own['mean_delta_weakest']:+.1f} points"
        )
        + f"; 95% interval above 0 in {own['significantly_better'] or 'none'}, below 0 in "
        f"{own['significantly_worse'] or 'none'}"
    )
    runs, where = report["runs"], report["machine"]
    lines += [
        "",
        f"Language adapter: {report['language_adapter']} (MLM test: "
        f"{json.dumps(report['language_adapter_metrics'])}); language adapters found for "
        f"{', '.join(report['languages_with_a_language_adapter'])}.",
        "Runs: "
        + "; ".join(
            f"{name} {r.get('steps', '?')} steps, {r.get('seconds', '?')} s, parents "
            f"{r['parents']}, en test {json.dumps(r.get('test', {}).get('en', {}))}"
            for name, r in runs.items()
        ),
        f"Machine: {where['cpu']} ({', '.join(where['flags'])}), {where['cores']} cores, "
        f"OMP_NUM_THREADS={report['omp_num_threads']}, load average {where['load_average']} at "
        f"the end; scoring took {report['scoring_seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def _language_adapter_metrics(reference: str, backbone) -> dict:
    folder = language_adapter_folder(reference, backbone)
    if folder is None:
        raise SystemExit(f"no store holds {reference}: publish it first (see --help)")
    for name, key in (("metrics.json", "test"), ("manifest.json", "metrics")):
        if (folder / name).is_file():
            return json.loads((folder / name).read_text()).get(key, {})
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", default="/tmp/adapterhub-madx", help="folder of the two runs")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--language-adapter", default="lang/en", help="id the madx run trains on")
    parser.add_argument("--steps", type=int, default=OVERRIDES["max_steps"])
    parser.add_argument("--skip-training", action="store_true", help="score the kept runs again")
    parser.add_argument(
        "--only",
        choices=("plain", "madx"),
        default=None,
        help="train this run alone and stop (the two can run side by side; then --skip-training)",
    )
    args = parser.parse_args()

    backbone = load_backbone()
    keep = Path(args.keep)
    language_metrics = (
        {} if args.only == "plain" else _language_adapter_metrics(args.language_adapter, backbone)
    )
    overrides = dict(OVERRIDES, max_steps=args.steps, eval_every=min(50, args.steps))
    runs = {"plain": {}, "madx": {"stack_lang": args.language_adapter}}
    if args.only:
        done = _train(args.only, runs[args.only], overrides, keep, backbone)
        (keep / args.only / "run.json").write_text(json.dumps(done, indent=2) + "\n")
        print(json.dumps({args.only: done}))
        return
    trained: dict[str, dict] = {}
    for name, extra in runs.items():
        if not args.skip_training:
            done = _train(name, extra, overrides, keep, backbone)
            (keep / name / "run.json").write_text(json.dumps(done, indent=2) + "\n")
        trained[name] = json.loads((keep / name / "run.json").read_text())
        summary = json.loads((keep / name / "metrics.json").read_text())
        trained[name]["parents"] = summary["parents"]

    started = time.perf_counter()
    plain = score_adapter(keep / "plain", backbone=backbone)
    fixed = score_adapter(Stack(args.language_adapter, str(keep / "madx")), backbone=backbone)
    swapped = score_adapter(Stack("lang/{lang}", str(keep / "madx")), backbone=backbone)
    plain.name = "plain task adapter"
    fixed.name = f"[{args.language_adapter}, task] (no swap)"
    swapped.name = "MAD-X [lang/xx, task]"
    per_lang = {
        lang: {
            "plain": plain.accuracy(lang),
            "no_swap": _compare(fixed, plain, lang),
            "swap": _compare(swapped, plain, lang) if lang in swapped.languages else None,
            "swap_vs_no_swap": (
                _compare(swapped, fixed, lang) if lang in swapped.languages else None
            ),
        }
        for lang in plain.languages
    }
    report = {
        "overrides": overrides,
        "language_adapter": args.language_adapter,
        "language_adapter_metrics": language_metrics,
        "runs": trained,
        "languages_with_a_language_adapter": swapped.languages,
        "per_language": per_lang,
        "verdict": {column: _verdict(per_lang, column) for column in ("no_swap", "swap")},
        "own_language_adapter": _own_adapter_effect(per_lang),
        "overall": {s.name: s.accuracy() for s in (plain, fixed)},
        "hard": {s.name: s.accuracy(hard=True) for s in (plain, fixed)},
        "scoring_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "language_adapter_folders": {
            lang: str(language_adapter_folder(f"lang/{lang}", backbone))
            for lang in swapped.languages
        },
    }
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "madx.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown([plain, fixed, swapped], report)
    (output / "madx.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
