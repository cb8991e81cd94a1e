"""The independent check of issue 15: bitext mining on hand-written translations in languages
``retrieval/multi`` never saw in training, against the bare backbone.

    python benchmarks/retrieval_handwritten.py [--adapter retrieval/multi] [--name NAME]

Data: ``benchmarks/data/handwritten_parallel.json``, short everyday sentences written for this
project in English and translated by hand into languages outside the adapter's training data
(the ``parallel`` set: Bible es-en and the UDHR's 437 languages; :func:`unseen_languages`
refuses a language that is in it). Each model embeds every sentence once, as
``benchmarks/retrieval.py`` does (the adapter's recorded ``query: `` prefix and max length; the
bare backbone's from ``recipes/retrieval.yaml``), then every sentence searches the other side of
its pair by cosine: P@1 xx->en and en->xx per language (``mine_pairs``). Writes
``benchmarks/results/retrieval_handwritten.{json,md}``.

Goal: in no language and no direction does the adapter's P@1 fall more than 1 point below the
bare backbone's (with 32 sentences one sentence is 3.1 points, so this asks for no loss at
all); the mean over languages is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from adapterhub.backbone import load_backbone
from adapterhub.data import available_languages
from adapterhub.tasks.retrieval import DIRECTIONS, embed_texts, mine_pairs

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from retrieval import model_for  # noqa: E402  (benchmarks/retrieval.py: the same model loading)

DATA = HERE / "data" / "handwritten_parallel.json"
RESULTS = HERE / "results"
TRAINED_ON = ("parallel",)
"""The datasets ``retrieval/multi`` was trained on (its recipe's ``dataset``)."""
LOSS_MAX = 0.01
LABELS = {"text_to_pair": "xx->en", "pair_to_text": "en->xx"}


def load_pairs(path: Path = DATA) -> tuple[dict, dict[str, list[dict]]]:
    """(the file's metadata, ``{lang: [{"text": xx, "pair": en}]}``)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    pairs = {
        lang: [{"text": row[lang], "pair": row["en"]} for row in data["sentences"]]
        for lang in data["languages"]
    }
    return data, pairs


def unseen_languages(langs, datasets=TRAINED_ON) -> list[str]:
    """``langs``, checked to be in none of ``datasets``; raises ValueError naming any that is."""
    seen = set()
    for name in datasets:
        seen |= set(available_languages(name))
    clash = sorted(set(langs) & seen)
    if clash:
        raise ValueError(f"{', '.join(clash)} are in the training data ({', '.join(datasets)})")
    return sorted(langs)


def evaluate(model, preprocessing, tokenizer, pairs: dict[str, list[dict]]) -> dict:
    """``{lang: mine_pairs metrics}`` for one model."""
    prepared = {
        lang: [{k: preprocessing.apply(v) for k, v in row.items()} for row in rows]
        for lang, rows in pairs.items()
    }
    distinct = sorted({r[c] for rows in prepared.values() for r in rows for c in ("text", "pair")})
    vectors = dict(
        zip(distinct, embed_texts(model, distinct, tokenizer, preprocessing.max_length, 64))
    )
    return {lang: mine_pairs(rows, vectors) for lang, rows in sorted(prepared.items())}


def compare(bare: dict, adapter: dict) -> dict:
    """Per language and direction the change of P@1; the languages/directions that lose more
    than ``LOSS_MAX``; the means."""
    changes = {
        lang: {d: adapter[lang][f"p_at_1_{d}"] - bare[lang][f"p_at_1_{d}"] for d in DIRECTIONS}
        for lang in bare
    }
    worse = [
        f"{lang} {LABELS[d]}" for lang, c in changes.items() for d in DIRECTIONS if -c[d] > LOSS_MAX
    ]
    mean = {
        name: {d: sum(v[lang][f"p_at_1_{d}"] for lang in v) / len(v) for d in DIRECTIONS}
        for name, v in (("bare", bare), ("adapter", adapter))
    }
    return {
        "changes": changes,
        "mean": mean,
        "losses_over_1_point": worse,
        "met": not worse,
    }


def markdown(results: dict) -> str:
    model = results["adapter"]
    bare, other = results["models"]["bare"], results["models"][model]
    summary = results["summary"]
    lines = [
        f"# Hand-written translations, languages {model} never saw in training",
        "",
        f"Backbone `{results['backbone']}`; {results['sentences']} sentences per language "
        "(`benchmarks/data/handwritten_parallel.json`, written for this project), P@1 of the "
        "nearest neighbour by cosine among all sentences of the other side "
        "(`benchmarks/retrieval_handwritten.py`).",
        "",
        "| language | script | bare xx->en | adapter xx->en | bare en->xx | adapter en->xx |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for lang, info in results["languages"].items():
        cells = [f"{m[lang][f'p_at_1_{d}']:.3f}" for d in DIRECTIONS for m in (bare, other)]
        lines.append(f"| {info['name']} ({lang}) | {info['script']} | " + " | ".join(cells) + " |")
    mean = summary["mean"]
    cells = [f"{mean[m][d]:.3f}" for d in DIRECTIONS for m in ("bare", "adapter")]
    lines.append("| mean | | " + " | ".join(cells) + " |")
    worse = summary["losses_over_1_point"]
    lines += [
        "",
        "Goal (no language or direction more than 1 point below the bare backbone): "
        + ("met." if summary["met"] else f"MISSED in {', '.join(worse)}."),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default="retrieval/multi", help="folder or registry id")
    parser.add_argument("--name", default=None, help="its name in the tables")
    parser.add_argument("--backbone", default="multilingual-e5-small")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    data, pairs = load_pairs()
    unseen_languages(pairs)
    backbone = load_backbone(args.backbone)
    name = args.name or args.adapter
    models = {}
    for label, adapter in (("bare", None), (name, args.adapter)):
        model, preprocessing = model_for(adapter, backbone)
        models[label] = evaluate(model, preprocessing, backbone.tokenizer, pairs)
    results = {
        "backbone": backbone.name,
        "adapter": name,
        "data": str(DATA.relative_to(HERE.parent)),
        "sentences": len(data["sentences"]),
        "languages": data["languages"],
        "trained_on": list(TRAINED_ON),
        "models": models,
        "summary": compare(models["bare"], models[name]),
    }
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "retrieval_handwritten.json").write_text(json.dumps(results, indent=2) + "\n")
    (output / "retrieval_handwritten.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
