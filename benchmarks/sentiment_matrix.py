"""The cross-lingual sentiment matrix: one small LoRA adapter per training language (rows),
tested on every language (columns), German included (it has no training data).

Each adapter is what ``adapterhub train --task sentiment --lang L --method lora`` makes with the
overrides below (r=8 on query/value: ~0.6 MB), kept in ``--keep`` for publishing. Writes
``benchmarks/results/sentiment_matrix.{json,md,png}``.

    OMP_NUM_THREADS=1 python benchmarks/sentiment_matrix.py     # ~30 min on 2 busy cores
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
TEST_LANGS = ["en", "fr", "nl", "zh", "de"]
OVERRIDES = {
    "target_modules": ["query", "value"],
    "lora_r": 8,
    "lora_alpha": 16,
    "max_steps": 120,
    "eval_every": 60,
    "max_length": 64,
    "eval_langs": TEST_LANGS,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-langs", default="en,fr,nl,zh")
    parser.add_argument("--keep", default="/tmp/adapterhub-sentiment")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()

    from adapterhub.backbone import load_backbone
    from adapterhub.evaluation import write_matrix
    from adapterhub.recipes import resolve_recipe
    from adapterhub.training import train

    backbone = load_backbone()
    matrix: dict[str, dict[str, float]] = {}
    details = {}
    for lang in args.train_langs.split(","):
        overrides = dict(OVERRIDES, max_steps=args.steps or OVERRIDES["max_steps"])
        recipe = resolve_recipe("sentiment", lang=lang, **overrides)
        result = train(recipe, output_dir=Path(args.keep) / lang, backbone=backbone)
        matrix[lang] = {code: result.metrics[code]["accuracy"] for code in TEST_LANGS}
        details[lang] = {
            "test": result.metrics,
            "steps": result.steps,
            "seconds": result.seconds,
            "parameters": result.parameters,
        }
        paths = write_matrix(matrix, args.output, title="sentiment LoRA", name="sentiment_matrix")
        data = json.loads(paths["json"].read_text())
        data.update(details=details, recipe=recipe.to_dict(), backbone=backbone.fingerprint)
        paths["json"].write_text(json.dumps(data, indent=2) + "\n")
        print(paths["markdown"].read_text(), flush=True)


if __name__ == "__main__":
    main()
