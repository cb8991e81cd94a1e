"""Cross-lingual retrieval: bitext mining of the bare backbone and of retrieval adapters.

On the held-out test splits of ``bible-pairs`` (Spanish-English verses) and ``udhr-pairs``
(every UDHR language with English, article-aligned), each model embeds every distinct text
once (the recipe's ``query: `` prefix and max_length, as the adapter's manifest records them;
the bare backbone reads them as ``recipes/retrieval.yaml`` says), then every text searches the
other side of its language pair by cosine: P@1 in both directions and MRR, Tatoeba/BUCC style
(``adapterhub.tasks.retrieval``; ``adapterhub eval --task retrieval`` gives the same numbers
per language). Writes ``benchmarks/results/retrieval.{json,md,png}``; a model already in the
JSON is kept unless ``--again`` (the bare backbone is measured once).

    python benchmarks/retrieval.py                                  # the bare backbone
    python benchmarks/retrieval.py --adapter adapters/retrieval-multi --name retrieval/multi
    python benchmarks/retrieval.py --adapter retrieval/multi        # a registry id

The goals (issue 15), judged on the mean of both directions where one number is asked for:
Bible P@1 at least bare + 3 points in each direction; over the UDHR languages where the bare
backbone's P@1 is below 0.8 a mean gain of at least 10 points, and where it is above 0.8 a
mean loss of at most 1 point.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from adapterhub.backbone import load_backbone
from adapterhub.data import available_languages, load_dataset
from adapterhub.evaluation.inference import (
    adapter_folder,
    bare_task_model,
    load_task_model,
)
from adapterhub.evaluation.plots import heatmap
from adapterhub.preprocessing import Preprocessing
from adapterhub.recipes import load_recipe
from adapterhub.tasks.retrieval import embed_texts, mine_pairs

RESULTS = Path(__file__).resolve().parent / "results"
BARE = "bare"
SETS = ("bible-pairs", "udhr-pairs")
SHOWN = ("ar", "de", "es", "fr", "hi", "ja", "ru", "sw", "tr", "yo", "zh", "zu")
"""UDHR languages shown in the heatmap beside the two bucket means (all are in the JSON)."""
GOALS = {"bible_gain_min": 0.03, "udhr_low_gain_min": 0.10, "udhr_high_loss_max": 0.01}
BUCKET = 0.8


def evaluate(model, preprocessing: Preprocessing, tokenizer, batch_size: int) -> dict:
    """``{dataset: {lang: metrics}}`` over the test split of every pair set."""
    out = {}
    for name in SETS:
        rows = load_dataset(name)["test"].to_list()
        for row in rows:
            for column in ("text", "pair"):
                row[column] = preprocessing.apply(row[column])
        distinct = sorted({r[c] for r in rows for c in ("text", "pair")})
        started = time.perf_counter()
        vectors = dict(
            zip(
                distinct,
                embed_texts(model, distinct, tokenizer, preprocessing.max_length, batch_size),
            )
        )
        groups: dict[str, list[dict]] = {}
        for row in rows:
            groups.setdefault(row["lang"], []).append(row)
        out[name] = {lang: mine_pairs(group, vectors) for lang, group in sorted(groups.items())}
        print(f"  {name}: {len(distinct)} texts in {time.perf_counter() - started:.0f} s")
    return out


def model_for(adapter: str | None, backbone):
    if adapter is None:
        recipe = load_recipe("retrieval")
        return bare_task_model(backbone, "retrieval"), Preprocessing.from_dict(recipe.to_dict())
    folder, info = adapter_folder(adapter, backbone)
    return load_task_model(folder, backbone, task_type="retrieval"), info["preprocessing"]


def summary(bare: dict, other: dict) -> dict:
    """The goals of the module docstring, measured."""
    b, o = bare["bible-pairs"]["es"], other["bible-pairs"]["es"]
    out = {
        f"bible_gain_{d}": o[f"p_at_1_{d}"] - b[f"p_at_1_{d}"]
        for d in ("text_to_pair", "pair_to_text")
    }
    low = [lang for lang, m in bare["udhr-pairs"].items() if m["p_at_1"] < BUCKET]
    high = [lang for lang, m in bare["udhr-pairs"].items() if m["p_at_1"] >= BUCKET]
    for name, langs in (("low", low), ("high", high)):
        gains = [other["udhr-pairs"][x]["p_at_1"] - bare["udhr-pairs"][x]["p_at_1"] for x in langs]
        out[f"udhr_{name}_languages"] = len(langs)
        out[f"udhr_{name}_bare"] = _mean(bare["udhr-pairs"][x]["p_at_1"] for x in langs)
        out[f"udhr_{name}_adapter"] = _mean(other["udhr-pairs"][x]["p_at_1"] for x in langs)
        out[f"udhr_{name}_gain"] = _mean(gains)
        out[f"udhr_{name}_languages_worse"] = sum(g < 0 for g in gains)
    out["goals_met"] = {
        "bible": min(out["bible_gain_text_to_pair"], out["bible_gain_pair_to_text"])
        >= GOALS["bible_gain_min"],
        "udhr_low": out["udhr_low_gain"] >= GOALS["udhr_low_gain_min"],
        "udhr_high": -out["udhr_high_gain"] <= GOALS["udhr_high_loss_max"],
    }
    return out


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def markdown(results: dict) -> str:
    models = list(results["models"])
    lines = [
        "# Cross-lingual retrieval: bitext mining on held-out pairs",
        "",
        f"Backbone `{results['backbone']}`; P@1 and MRR by cosine of mean-pooled, normalised "
        "embeddings (`benchmarks/retrieval.py`). xx->en: the non-English text finds its English "
        "translation among all English texts of the test split; en->xx the other way.",
        "",
        "Inputs: "
        + "; ".join(
            f"{model} `{p['prefix']}` prefix, cut at {p['max_length']} tokens"
            for model, p in results.get("preprocessing", {}).items()
        ),
        "",
        "## Bible, Spanish-English, test split",
        "",
        "| model | es->en P@1 | en->es P@1 | MRR | verses |",
        "|---|---:|---:|---:|---:|",
    ]
    for model in models:
        m = results["models"][model]["bible-pairs"]["es"]
        count = results["counts"]["bible-pairs"]["es"]
        lines.append(
            f"| {model} | {m['p_at_1_text_to_pair']:.4f} | {m['p_at_1_pair_to_text']:.4f} | "
            f"{m['mrr']:.4f} | {count} |"
        )
    lines += ["", f"## UDHR, test articles, by the bare backbone's P@1 (< or >= {BUCKET})", ""]
    for model, values in results.get("summaries", {}).items():
        lines += [
            f"{model} against the bare backbone: Bible P@1 es->en "
            f"{values['bible_gain_text_to_pair']:+.4f}, "
            f"en->es {values['bible_gain_pair_to_text']:+.4f}",
            "",
            "| bucket | languages | bare P@1 | adapter P@1 | mean change | languages worse |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, label in (("low", f"bare < {BUCKET}"), ("high", f"bare >= {BUCKET}")):
            lines.append(
                f"| {label} | {values[f'udhr_{name}_languages']} | "
                f"{values[f'udhr_{name}_bare']:.4f} | {values[f'udhr_{name}_adapter']:.4f} | "
                f"{values[f'udhr_{name}_gain']:+.4f} | {values[f'udhr_{name}_languages_worse']} |"
            )
        met = ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in values["goals_met"].items())
        lines += ["", f"Goals: {met}.", ""]
    lines += [
        "## UDHR per language (P@1 xx->en / en->xx, mean of both)",
        "",
        "| lang | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for lang in results["models"][models[0]]["udhr-pairs"]:
        cells = []
        for model in models:
            m = results["models"][model]["udhr-pairs"][lang]
            cells.append(
                f"{m['p_at_1_text_to_pair']:.2f} / {m['p_at_1_pair_to_text']:.2f} / "
                f"{m['p_at_1']:.3f}"
            )
        lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def card(results: dict, model: str) -> tuple[str, dict]:
    """(model-card description with the per-pair table, manifest metrics) of one adapter."""
    values, goals = results["models"][model], results["summaries"][model]
    bible, bare_bible = values["bible-pairs"]["es"], results["models"][BARE]["bible-pairs"]["es"]
    udhr = values["udhr-pairs"]
    metrics = {
        "dataset": "bible-pairs (es-en) + udhr-pairs (437 languages with en)",
        "split": "test",
        "bible_p_at_1_es_en": bible["p_at_1_text_to_pair"],
        "bible_p_at_1_en_es": bible["p_at_1_pair_to_text"],
        "bible_mrr": bible["mrr"],
        "udhr_p_at_1": _mean(m["p_at_1"] for m in udhr.values()),
        "udhr_mrr": _mean(m["mrr"] for m in udhr.values()),
        "udhr_gain_where_bare_below_0_8": goals["udhr_low_gain"],
        "udhr_change_where_bare_above_0_8": goals["udhr_high_gain"],
    }
    lines = [
        "A LoRA retrieval adapter: sentences and their translations embed next to each other. "
        "Trained with a symmetric InfoNCE loss over in-batch negatives on the `parallel` pairs "
        "(Bible es-en verses, UDHR articles of 437 languages with English); no head. Send texts "
        "with e5's `query: ` prefix to `/v1/embed`, `/embed`, `/similarity` or `/rerank`.",
        "",
        "Bitext mining on the held-out test splits (`benchmarks/retrieval.py`): P@1 of the "
        "nearest neighbour by cosine, xx->en and en->xx, against the bare backbone.",
        "",
        "| test set | bare xx->en | adapter xx->en | bare en->xx | adapter en->xx |",
        "|---|---:|---:|---:|---:|",
        f"| bible es-en ({results['counts']['bible-pairs']['es']} verses) | "
        f"{bare_bible['p_at_1_text_to_pair']:.4f} | {bible['p_at_1_text_to_pair']:.4f} | "
        f"{bare_bible['p_at_1_pair_to_text']:.4f} | {bible['p_at_1_pair_to_text']:.4f} |",
    ]
    bare_udhr = results["models"][BARE]["udhr-pairs"]
    for lang in udhr:
        cells = [
            f"{m[f'p_at_1_{d}']:.2f}"
            for d in ("text_to_pair", "pair_to_text")
            for m in (bare_udhr[lang], udhr[lang])
        ]
        count = results["counts"]["udhr-pairs"][lang]
        lines.append(f"| udhr {lang}-en ({count}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", metrics


def figure(results: dict, path: Path) -> None:
    """Models x (Bible, UDHR bucket means, a few languages): P@1, mean of both directions.
    ``udhr lo``/``hi``: the languages where the bare backbone's P@1 is below/above 0.8."""
    bare = results["models"][BARE]["udhr-pairs"]
    low = [x for x, m in bare.items() if m["p_at_1"] < BUCKET]
    high = [x for x, m in bare.items() if m["p_at_1"] >= BUCKET]
    matrix = {}
    for model, values in results["models"].items():
        udhr = values["udhr-pairs"]
        row = {"bible": values["bible-pairs"]["es"]["p_at_1"]}
        row["udhr lo"] = _mean(udhr[x]["p_at_1"] for x in low)
        row["udhr hi"] = _mean(udhr[x]["p_at_1"] for x in high)
        row.update({x: udhr[x]["p_at_1"] for x in SHOWN if x in udhr})
        matrix[model] = row
    heatmap(
        matrix,
        path,
        metric="P@1",
        title="bitext mining, test split",
        rows=list(matrix),
        columns=list(next(iter(matrix.values()))),
        row_label="model",
        column_label="test set",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", action="append", default=[], help="folder or registry id")
    parser.add_argument("--name", action="append", default=[], help="its name in the tables")
    parser.add_argument("--backbone", default="multilingual-e5-small")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--again", action="store_true", help="re-measure models already there")
    parser.add_argument(
        "--card", default=None, help="also write this adapter's card text and manifest metrics"
    )
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    json_path = output / "retrieval.json"
    results = json.loads(json_path.read_text()) if json_path.is_file() else {"models": {}}
    backbone = load_backbone(args.backbone)
    results["backbone"] = backbone.name
    results["counts"] = {
        name: {lang: count["test"] for lang, count in available_languages(name).items()}
        for name in SETS
    }
    names = args.name + args.adapter[len(args.name) :]
    for model_name, adapter in [(BARE, None), *zip(names, args.adapter)]:
        if model_name in results["models"] and not args.again:
            print(f"{model_name}: kept from {json_path}")
            continue
        print(f"{model_name}: measuring")
        model, preprocessing = model_for(adapter, backbone)
        results["models"][model_name] = evaluate(
            model, preprocessing, backbone.tokenizer, args.batch_size
        )
        results.setdefault("preprocessing", {})[model_name] = preprocessing.to_dict()
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    bare = results["models"][BARE]
    results["summaries"] = {
        name: summary(bare, values) for name, values in results["models"].items() if name != BARE
    }
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    (output / "retrieval.md").write_text(markdown(results))
    figure(results, output / "retrieval.png")
    if args.card:
        description, metrics = card(results, args.card)
        (output / "retrieval_card.md").write_text(description)
        (output / "retrieval_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print((output / "retrieval.md").read_text().split("## UDHR per language")[0])


if __name__ == "__main__":
    main()
