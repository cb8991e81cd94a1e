"""What ``adapterhub eval`` prints for the sentiment yardstick (``--dataset sentiment-yardstick``).

Kept apart from :mod:`adapterhub.cli.train` so the eval command stays one dispatch: plain and
stacked adapters scored per language of the yardstick, its hard subset and overall, written as
JSON and Markdown. Imported from the command function only (it imports torch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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
