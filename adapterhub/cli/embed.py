"""``adapterhub embed TEXT... | -``: L2-normalised embeddings as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys

from adapterhub.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("embed", help="embed texts with the backbone (JSON lines)")
    parser.add_argument("texts", nargs="+", help="texts to embed, or - to read lines from stdin")
    parser.add_argument("--backbone", default="multilingual-e5-small")
    parser.add_argument(
        "--prefix", default="query: ", help="e5 input prefix (default 'query: '; use '' for none)"
    )
    parser.add_argument("--quantize", choices=["8bit"], default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    texts = args.texts
    if texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise UsageError("nothing to embed: give texts as arguments or lines on stdin")
    from adapterhub.backbone import load_backbone

    backbone = load_backbone(args.backbone, quantize=args.quantize)
    vectors = backbone.embed(texts, prefix=args.prefix, batch_size=args.batch_size)
    for text, vector in zip(texts, vectors.tolist()):
        print(json.dumps({"text": text, "embedding": [round(v, 7) for v in vector]}))
    return 0
