"""The yardstick table: sentiment adapters and stacks on the project's multilingual yardstick.

Every adapter (and stack) is scored on the 728 texts of ``sentiment-yardstick`` (28 languages, a
dev set: adapterhub/data/yardstick/CARD.md) exactly as ``adapterhub eval ADAPTER --dataset
sentiment-yardstick`` scores it: per language, on the hard subset and overall, plus accuracy by
phenomenon and by genre, and each one's paired-bootstrap difference to a reference (default:
the version ``sentiment/de`` means). Writes ``benchmarks/results/yardstick.{json,md}`` with the
CPU it ran on; the README's quality section is this table. Inference only, on the CPU:

    OMP_NUM_THREADS=1 python benchmarks/yardstick.py    # every sentiment entry, project store
    python benchmarks/yardstick.py --adapters sentiment/de:1.1.0,sentiment/de:1.2.0
    python benchmarks/yardstick.py --stack 'lang/{lang},sentiment/en' --name madx-stacks

``--record-in-project-store`` is the one-time re-judgement of the versions published before the
promotion gate existed: it writes each scored project-store version's yardstick results and the
gate's decision (oldest first, each judged against the promoted one before it) into its
manifest. The manifest lists the entry's other files by sha256 but not itself, and payload files
and cards are untouched, so ``registry verify`` still passes and every copy keeps its bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from adapterhub.backbone import load_backbone
from adapterhub.data import yardstick
from adapterhub.evaluation.stacks import Stack
from adapterhub.evaluation.yardstick import (
    YardstickScore,
    markdown_table,
    paired_bootstrap,
    score_adapter,
)
from adapterhub.registry import api
from adapterhub.registry.ids import AdapterId, Version
from adapterhub.registry.manifest import MANIFEST, Manifest, Metrics
from adapterhub.registry.promotion import judge
from adapterhub.registry.remotes import project_registry_dir

sys.path.insert(0, str(Path(__file__).parent))
from realtexts import machine  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
GOAL = 0.85
"""Issue 14's goal: every language of the yardstick at least this accurate."""


def project_sentiment_ids() -> list[str]:
    """Every sentiment entry of the project store, by language then version."""
    manifests = api.search(store=project_registry_dir(), task="sentiment")
    ordered = sorted(manifests, key=lambda m: (m.lang, Version.parse(m.version)))
    return [m.id for m in ordered]


def record_in_project_store(scores: dict, names: list[str]) -> list[str]:
    """Write yardstick results and the gate's decision into project-store manifests, each id's
    versions oldest first, each judged against the newest promoted one before it."""
    store = project_registry_dir()
    if store is None:
        raise SystemExit("no project store in this checkout: nothing to record")
    written = []
    by_base: dict[str, list[AdapterId]] = {}
    for name in names:
        aid = AdapterId.parse(name)
        if aid.namespace != "adapterhub":
            raise SystemExit(f"{name} is not a project-store entry; score only those to record")
        by_base.setdefault(str(aid.base), []).append(aid)
    for ids in by_base.values():
        promoted = None
        for aid in sorted(ids, key=lambda a: Version.parse(str(a.version))):
            manifest = api.show(str(aid), store=store)
            board = Metrics.model_validate(scores[str(aid)]["card"])
            decision = judge(board, promoted)
            manifest = manifest.model_copy(update={"yardstick": board, "promotion": decision})
            path = store / aid.relpath / MANIFEST
            # the committed text with the two fields added, not to_json(): that would also
            # write out every default the manifest left out, a diff that says nothing
            text = json.loads(path.read_text())
            text["yardstick"] = board.model_dump(mode="json")
            text["promotion"] = decision.model_dump(mode="json")
            staged = path.with_suffix(".json.tmp")
            staged.write_text(json.dumps(text, indent=2, sort_keys=True) + "\n")
            Manifest.from_json(staged.read_text(), where=str(staged))  # still a valid manifest
            os.replace(staged, path)  # a reader sees the old manifest or the new one
            state = "promoted" if decision.promoted else "NOT promoted"
            written.append(f"{aid}: {state} ({decision.reason})")
            if decision.promoted:
                promoted = manifest
    return written


def markdown(scores: list[YardstickScore], reference, paired: dict, title: str, run: dict) -> str:
    lines = [markdown_table(scores, title=title), ""]
    below = {
        s.name: [f"{lang} {acc:.3f}" for lang in s.languages if (acc := s.accuracy(lang)) < GOAL]
        for s in scores
    }
    lines.append(f"Languages below the goal of {GOAL:.2f}:")
    lines.append("")
    for name, langs in below.items():
        lines.append(f"- {name}: {len(langs)} ({', '.join(langs) or 'none'})")
    lines.append("")
    phenomena = sorted({p for s in scores for p in s.by("phenomenon")})
    genres = sorted({g for s in scores for g in s.by("genre")})
    lines.append("| by kind | " + " | ".join(s.name for s in scores) + " |")
    lines.append("|---|" + "---:|" * len(scores))
    for column, values in (("phenomenon", phenomena), ("genre", genres)):
        for value in values:
            cells = [f"{s.by(column).get(value, float('nan')):.3f}" for s in scores]
            lines.append(f"| {column}: {value} | " + " | ".join(cells) + " |")
    if reference is not None:
        lines += [
            "",
            f"Paired bootstrap (2000 resamples of the texts both scored) against {reference.name}:",
            "",
        ]
        for name, (delta, low, high) in paired.items():
            lines.append(
                f"- {name}: {100 * delta:+.1f} points "
                f"(95% interval {100 * low:+.1f} to {100 * high:+.1f})"
            )
    where = run["machine"]
    lines += [
        "",
        f"Run: {where['cpu']} ({', '.join(where['flags'])}), {where['cores']} cores, "
        f"OMP_NUM_THREADS={run['omp_num_threads']}, load average {where['load_average']} at "
        f"the end, {run['seconds']:.0f} s for {len(scores)} models (fp32, inference only).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--adapters",
        default=None,
        help="comma-separated ids or folders (default: the project store's sentiment entries)",
    )
    parser.add_argument(
        "--stack",
        action="append",
        default=[],
        help="LANG_ADAPTER,TASK_ADAPTER; lang/{lang} for each language's own",
    )
    parser.add_argument(
        "--reference", default="sentiment/de", help="paired-bootstrap reference ('' for none)"
    )
    parser.add_argument("--langs", default=None, help="comma-separated languages (default: all 28)")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--name", default="yardstick", help="file name stem of the results")
    parser.add_argument(
        "--record-in-project-store",
        action="store_true",
        help="write the results and the gate's decision into the project store's manifests "
        "(the one-time re-judgement)",
    )
    parser.add_argument(
        "--record-from",
        default=None,
        metavar="JSON",
        help="with --record-in-project-store: take the results of an earlier run's JSON "
        "instead of scoring again",
    )
    args = parser.parse_args()
    if args.record_from:
        if not args.record_in_project_store:
            parser.error("--record-from goes with --record-in-project-store")
        report = json.loads(Path(args.record_from).read_text())
        names = [n for n in report["adapters"] if not n.startswith("[")]
        for line in record_in_project_store(report["adapters"], names):
            print(line)
        return

    started = time.perf_counter()
    backbone = load_backbone()
    langs = args.langs.split(",") if args.langs else None
    adapters = args.adapters.split(",") if args.adapters else project_sentiment_ids()
    adapters = [a if Path(a).is_dir() else str(api.find(a)) for a in adapters]
    targets = [*adapters, *(Stack.parse(s) for s in args.stack)]
    scores = []
    for target in targets:
        score = score_adapter(target, backbone=backbone, langs=langs)
        summary = {"adapter": score.name, "overall": score.accuracy()}
        print(json.dumps({**summary, "hard": score.accuracy(hard=True)}), flush=True)
        scores.append(score)
    reference = None
    if args.reference:
        wanted = str(api.find(args.reference))
        reference = next((s for s in scores if s.name == wanted), None) or score_adapter(
            wanted, backbone=backbone, langs=langs
        )
    paired = {
        s.name: paired_bootstrap(s, reference)
        for s in scores
        if reference is not None and s is not reference
    }
    run = {
        "machine": machine(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    title = f"sentiment yardstick ({yardstick.SPLIT}, {len(scores[0].rows)} texts), accuracy"
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    report = {
        "dataset": yardstick.NAME,
        "split": yardstick.SPLIT,
        "goal_per_language": GOAL,
        "backbone": {"name": backbone.name, "fingerprint": backbone.fingerprint},
        "run": run,
        "reference": reference.name if reference else None,
        "adapters": {
            s.name: {
                "table": s.table(),
                "below_goal": {
                    lang: s.accuracy(lang) for lang in s.languages if s.accuracy(lang) < GOAL
                },
                "by_phenomenon": s.by("phenomenon"),
                "by_genre": s.by("genre"),
                "skipped": s.skipped,
                "card": {"dataset": yardstick.NAME, "split": yardstick.SPLIT, **s.metrics()},
                **(
                    {"paired": dict(zip(("delta", "low", "high"), paired[s.name], strict=True))}
                    if s.name in paired
                    else {}
                ),
            }
            for s in scores
        },
    }
    (output / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(scores, reference, paired, title, run)
    (output / f"{args.name}.md").write_text(table)
    print(table)
    if args.record_in_project_store:
        names = [s.name for s in scores if not str(s.name).startswith("[")]
        for line in record_in_project_store(report["adapters"], names):
            print(line)


if __name__ == "__main__":
    main()
