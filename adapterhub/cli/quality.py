"""What ``adapterhub eval`` prints for the sentiment yardstick and for language adapters.

Kept apart from :mod:`adapterhub.cli.train` so the eval command stays one dispatch: plain and
stacked adapters scored per language of the yardstick (``--dataset sentiment-yardstick``), its
hard subset and overall; language adapters (``eval lang/de``) on masked language modelling
against the head-only and unigram baselines. Written as JSON and Markdown. Imported from the
command function only (it imports torch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from adapterhub.evaluation.language import (
    ADAPTER,
    HEAD_ONLY,
    TRAINED_HEAD,
    UNIGRAM,
    evaluate_language_adapter,
)
from adapterhub.evaluation.stacks import Stack
from adapterhub.evaluation.yardstick import markdown_table, score_adapter


def run_yardstick(
    args: argparse.Namespace, backbone, adapters: list[str], stacks: list[Stack], langs: list[str]
) -> int:
    scores = [
        score_adapter(adapter, backbone=backbone, langs=langs or None)
        for adapter in [*adapters, *stacks]
    ]
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    report = {
        "dataset": "sentiment-yardstick",
        "split": "dev",
        "adapters": {
            s.name: {"table": s.table(), "metrics": s.metrics(), "skipped": s.skipped}
            for s in scores
        },
    }
    for score in scores:
        print(json.dumps({"adapter": score.name, "yardstick": score.table()}))
        if score.skipped:
            print(f"{score.name}: no language adapter for {', '.join(score.skipped)}")
    (output / "yardstick.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown_table(scores, title="sentiment yardstick (dev), accuracy")
    (output / "yardstick.md").write_text(table)
    written = [output / "yardstick.json", output / "yardstick.md"]
    if args.predictions:
        path = Path(args.predictions)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for score in scores:
                for row in score.rows:
                    handle.write(json.dumps({"adapter": score.name, **row}) + "\n")
        written.append(path)
    print(table)
    print("wrote " + ", ".join(map(str, written)))
    return 0


LANGUAGE_ROWS = {
    ADAPTER: "adapter + fresh MLM head",
    TRAINED_HEAD: "adapter + its training head",
    HEAD_ONLY: "head only (frozen backbone + fresh MLM head)",
    UNIGRAM: "unigram (training texts' token frequencies)",
}


def language_table(report: dict) -> str:
    """One language adapter's MLM accuracy and perplexity beside its baselines."""
    lines = [
        f"### {report['adapter_id']} on the {report['lang']} text test split "
        f"({int(report['masked_tokens'])} masked tokens of {report['test_texts']} texts; "
        f"heads fitted for {report['probe_steps']} steps)",
        "",
        "| model | mlm accuracy | perplexity |",
        "|---|---:|---:|",
    ]
    for key, label in LANGUAGE_ROWS.items():
        if key in report:
            values = report[key]
            lines.append(f"| {label} | {values['mlm_accuracy']:.4f} | {values['perplexity']:.1f} |")
    ratio = report["accuracy_ratio_to_head_only"]
    verdict = (
        "beats both baselines" if report["beats_baselines"] else "does NOT beat both baselines"
    )
    lines += ["", f"{verdict}; accuracy {ratio:.2f}x the head-only baseline's"]
    return "\n".join(lines) + "\n"


def run_language(args: argparse.Namespace, backbone, adapters: list[str], langs: list[str]) -> int:
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    reports = []
    for adapter in adapters:
        report = evaluate_language_adapter(
            adapter,
            backbone=backbone,
            lang=langs[0] if len(langs) == 1 else None,
            steps=args.probe_steps,
            data=args.data,
        )
        reports.append(report)
        print(json.dumps(report))
        print(language_table(report))
    (output / "language.json").write_text(json.dumps(reports, indent=2) + "\n")
    (output / "language.md").write_text("\n".join(language_table(r) for r in reports))
    print(f"wrote {output / 'language.json'}, {output / 'language.md'}")
    return 0
