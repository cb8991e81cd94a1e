"""``adapterhub data list|fetch|show|card``: the built-in datasets and the user's own data."""

from __future__ import annotations

import argparse

SPLIT_CHOICES = ("train", "validation", "test", "dev")
"""The splits a dataset may have; dev is the one split of a dev set (sentiment-yardstick)."""


def _splits(counts: dict[str, dict[str, int]]) -> list[str]:
    return [s for s in SPLIT_CHOICES if any(s in c for c in counts.values())]


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="list, fetch and inspect datasets")
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])

    listing = commands.add_parser("list", help="the built-in datasets and what is fetched")
    listing.set_defaults(func=cmd_list)

    fetch = commands.add_parser("fetch", help="download and build a built-in dataset")
    fetch.add_argument("name", help="dataset name, or 'all'")
    fetch.add_argument("--lang", nargs="+", default=None, help="languages to report")
    fetch.add_argument("--force", action="store_true", help="rebuild even if cached")
    fetch.set_defaults(func=cmd_fetch)

    show = commands.add_parser("show", help="print examples of a dataset or of your own file")
    show.add_argument("name", help="built-in dataset name, or a data file/folder/hub name")
    show.add_argument("--lang", default=None, help="only this language")
    show.add_argument("--split", default="test", choices=SPLIT_CHOICES, help="default test, or dev")
    show.add_argument("-n", type=int, default=5, help="number of examples (default 5)")
    show.add_argument("--task", default=None, help="task of your own data (e.g. sentiment, pos)")
    show.add_argument(
        "--text-column", default="text", help="your own data's text column (default: text)"
    )
    show.add_argument(
        "--label-column", default="label", help="your own data's label column (default: label)"
    )
    show.set_defaults(func=cmd_show)

    card = commands.add_parser("card", help="print a built-in dataset's card (Markdown)")
    card.add_argument("name", help="built-in dataset name (see `adapterhub data list`)")
    card.set_defaults(func=cmd_card)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _languages(langs: list[str] | tuple[str, ...], limit: int = 8) -> str:
    langs = list(langs)
    shown = ",".join(langs[:limit])
    return shown + (f",... ({len(langs)})" if len(langs) > limit else "")


def cmd_list(args: argparse.Namespace) -> int:
    from adapterhub.data import DATASETS, available_languages, read_manifest

    rows = []
    for name, info in DATASETS.items():
        manifest = read_manifest(name)
        if manifest is None:
            languages, examples = _languages(info.languages), "not fetched"
        else:
            counts = available_languages(name)
            languages = _languages(sorted(counts))
            examples = "/".join(str(sum(c[s] for c in counts.values())) for s in _splits(counts))
            if _splits(counts) == ["dev"]:
                examples = f"dev {examples}"
        rows.append([name, info.task, languages, examples, info.license, info.source])
    header = ["dataset", "task", "languages", "train/validation/test", "licence", "source"]
    print(_table(header, rows))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from adapterhub.data import DATASETS, available_languages, fetch
    from adapterhub.errors import DataError

    names = list(DATASETS) if args.name == "all" else [args.name]
    for name in names:
        manifest = fetch(name, force=args.force)
        counts = available_languages(name)
        if args.lang:
            unknown = [lang for lang in args.lang if lang not in counts]
            if unknown:
                raise DataError(
                    f"dataset {name!r} has no language {', '.join(unknown)}; it has: "
                    f"{_languages(sorted(counts), limit=50)}"
                )
            counts = {lang: counts[lang] for lang in args.lang}
        print(f"{name}: {len(counts)} language{'' if len(counts) == 1 else 's'}")
        rows = [[lang, *(c[s] for s in _splits(counts))] for lang, c in counts.items()]
        print(_table(["lang", *_splits(counts)], rows))
        for note in manifest["notes"]:
            print(f"note: {note}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from adapterhub.data import DATASETS, load_dataset, load_user_data
    from adapterhub.errors import UsageError

    if args.name in DATASETS:
        data = load_dataset(args.name, [args.lang] if args.lang else None)
    else:
        if not args.task:
            raise UsageError(
                f"{args.name} is not a built-in dataset; pass --task for your own data"
            )
        data = load_user_data(
            args.name,
            task=args.task,
            text_column=args.text_column,
            label_column=args.label_column,
            lang=args.lang,
        )
    if args.split not in data and len(data) > 1:
        raise UsageError(f"{args.name} has no split {args.split}; it has: {', '.join(data)}")
    shown = args.split if args.split in data else next(iter(data))  # a dev set's one split
    split = data[shown]
    features = split.features
    print(f"{args.name} {shown}: {len(split)} examples")
    for row in split.select(range(min(args.n, len(split)))):
        if "tokens" in row:
            names = features["tags"].feature.names
            tagged = " ".join(
                f"{t}/{names[g]}" for t, g in zip(row["tokens"], row["tags"], strict=True)
            )
            print(f"[{row['lang']}] {tagged}")
        elif "pair" in row:
            print(
                f"[{row['lang']}-{row['pair_lang']}] {row['ref']}\t{_shorten(row['text'])}\t"
                f"{_shorten(row['pair'])}"
            )
        elif "translation" in row:
            print(
                f"[{row['lang']}] {row['ref']}\t{_shorten(row['text'])}\t{_shorten(row['translation'])}"
            )
        elif "label" in row:
            label = features["label"].names[row["label"]]
            print(f"[{row['lang']}] {label}\t{_shorten(row['text'])}")
        else:
            print(f"[{row['lang']}] {_shorten(row['text'])}")
    return 0


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_card(args: argparse.Namespace) -> int:
    from adapterhub.data import dataset_card

    print(dataset_card(args.name), end="")
    return 0
