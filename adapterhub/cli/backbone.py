"""``adapterhub backbone fetch|list|info``.

``adapterhub.backbone`` and rich are imported inside the commands: `adapterhub --help` parses in
0.07 s, and importing them at parse time would add their 0.2 s (torch and transformers stay out of
the package's import, see ``adapterhub/backbone/load.py``).
"""

from __future__ import annotations

import argparse
import json

from adapterhub.cli.flags import add_json_flag, add_quantize_flag


def register(subparsers) -> None:
    parser = subparsers.add_parser("backbone", help="provision and inspect backbones")
    commands = parser.add_subparsers(dest="backbone_command", metavar="ACTION", required=True)

    fetch = commands.add_parser("fetch", help="build the embedded multilingual-e5-small backbone")
    fetch.add_argument(
        "name",
        nargs="?",
        default="multilingual-e5-small",
        help="multilingual-e5-small (alias e5-small)",
    )
    fetch.add_argument(
        "--variant",
        choices=["full", "enpt"],
        default=None,
        help="full: ~100 languages; enpt: English+Portuguese, 3x smaller",
    )
    fetch.add_argument("--force", action="store_true", help="rebuild even if present")
    fetch.set_defaults(func=run_fetch)

    listing = commands.add_parser("list", help="list provisioned backbones")
    add_json_flag(listing)
    listing.set_defaults(func=run_list)

    info = commands.add_parser("info", help="describe one backbone (loads it)")
    info.add_argument("name", help="embedded name, local folder or hub id")
    add_quantize_flag(info)
    add_json_flag(info)
    info.set_defaults(func=run_info)


def run_fetch(args: argparse.Namespace) -> int:
    from rich.console import Console

    from adapterhub.backbone import embedded

    console = Console(stderr=True)
    with console.status("provisioning") as status:
        path = embedded.provision(
            args.name, args.variant, force=args.force, progress=lambda m: status.update(m)
        )
    manifest = embedded.read_manifest(path) or {}
    print(f"{manifest.get('name', path.name)}  {path}  {manifest.get('fingerprint', '')}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from adapterhub.backbone import list_backbones

    rows = list_backbones()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no backbones provisioned; run `adapterhub backbone fetch`")
        return 0
    for row in rows:
        print(
            f"{row['name']:<32} hidden {row['hidden_size']:<5} layers {row['layers']:<3} "
            f"vocab {row['vocab_size']:<7} {row['bytes'] / 1e6:7.1f} MB  {row['path']}"
        )
    return 0


def run_info(args: argparse.Namespace) -> int:
    from adapterhub.backbone import load_backbone

    info = load_backbone(args.name, quantize=args.quantize).info()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    width = max(len(key) for key in info)
    for key, value in info.items():
        shown = f"{value:,}" if isinstance(value, int) else value
        print(f"{key:<{width}}  {shown}")
    return 0
