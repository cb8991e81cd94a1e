"""``adapterhub similarity [TEXT...]``: a cross-lingual cosine table from the backbone."""

from __future__ import annotations

import argparse

from adapterhub.cli.flags import add_backbone_flag, add_prefix_flag

# The same three statements in five languages: translations should score highest.
SAMPLE = {
    "en": [
        "The cat sleeps on the sofa.",
        "I missed the last train home.",
        "This soup is too salty.",
    ],
    "de": [
        "Die Katze schläft auf dem Sofa.",
        "Ich habe den letzten Zug nach Hause verpasst.",
        "Diese Suppe ist zu salzig.",
    ],
    "fr": [
        "Le chat dort sur le canapé.",
        "J'ai raté le dernier train pour rentrer.",
        "Cette soupe est trop salée.",
    ],
    "zh": ["猫在沙发上睡觉。", "我错过了回家的最后一班火车。", "这汤太咸了。"],
    "ru": [
        "Кошка спит на диване.",
        "Я опоздал на последний поезд домой.",
        "Этот суп слишком солёный.",
    ],
}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "similarity", help="cosine similarity table of texts (default: a five-language sample)"
    )
    parser.add_argument("texts", nargs="*", help="texts to compare (default: built-in sample)")
    add_backbone_flag(parser)
    add_prefix_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from adapterhub.backbone import load_backbone

    backbone = load_backbone(args.backbone)
    if args.texts:
        vectors = backbone.embed(list(args.texts), prefix=args.prefix)
        scores = (vectors @ vectors.T).tolist()
        for i, text in enumerate(args.texts):
            print(f"{i + 1:>3}  {text}")
        print("     " + "".join(f"{j + 1:>7}" for j in range(len(scores))))
        for i, row in enumerate(scores):
            print(f"{i + 1:>3}  " + "".join(f"{value:7.3f}" for value in row))
        return 0
    print_sample_table(backbone, args.prefix)
    return 0


def print_sample_table(backbone, prefix: str) -> None:
    """Language x language: mean cosine of translations, and of unrelated sentences."""
    from rich.console import Console
    from rich.table import Table

    langs = list(SAMPLE)
    n = len(SAMPLE[langs[0]])
    vectors = backbone.embed([t for lang in langs for t in SAMPLE[lang]], prefix=prefix)
    scores = vectors @ vectors.T
    table = Table(
        title=f"{backbone.name}: cosine of translations (unrelated in brackets)",
        caption=f"{n} sentences per language; the diagonal compares a language with itself",
    )
    table.add_column("")
    for lang in langs:
        table.add_column(lang, justify="right")
    same_all, other_all = [], []
    for a, lang_a in enumerate(langs):
        cells = []
        for b, _ in enumerate(langs):
            block = scores[a * n : (a + 1) * n, b * n : (b + 1) * n]
            same = block.diagonal().mean().item()
            other = ((block.sum() - block.diagonal().sum()) / (n * n - n)).item()
            if a != b:
                same_all.append(same)
                other_all.append(other)
            cells.append(f"{same:.2f} ({other:.2f})")
        table.add_row(lang_a, *cells)
    console = Console(width=max(100, 14 * (len(langs) + 1)))
    console.print(table)
    console.print(
        f"across languages: translations {sum(same_all) / len(same_all):.3f}, "
        f"unrelated {sum(other_all) / len(other_all):.3f}"
    )
