"""``adapterhub embed TEXT... | -``: L2-normalised embeddings as JSON lines."""

from __future__ import annotations

import argparse
import json
import sys

from adapterhub.cli.flags import add_backbone_flag, add_prefix_flag, add_quantize_flag
from adapterhub.errors import UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser("embed", help="embed texts with the backbone (JSON lines)")
    parser.add_argument("texts", nargs="+", help="texts to embed, or - to read lines from stdin")
    add_backbone_flag(parser)
    add_prefix_flag(parser)
    add_quantize_flag(parser)
    parser.add_argument(
        "--batch-size", type=int, default=32, help="texts per forward pass (default: %(default)s)"
    )
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
