"""``adapterhub recipe list|show``: the packaged recipes, as training will read them."""

from __future__ import annotations

import argparse
import json

from adapterhub.cli.flags import add_json_flag


def register(subparsers) -> None:
    parser = subparsers.add_parser("recipe", help="list and print the packaged recipes")
    commands = parser.add_subparsers(dest="recipe_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="the packaged recipes, one per task")
    add_json_flag(listing)
    listing.set_defaults(func=run_list)

    show = commands.add_parser(
        "show", help="print a recipe as YAML with every default filled in (usable as --recipe)"
    )
    show.add_argument("name", help="a packaged recipe (task name) or a recipe file")
    show.set_defaults(func=run_show)


def run_list(args: argparse.Namespace) -> int:
    # Imported here like every command's library code: `adapterhub --help` parses in 0.07 s.
    from adapterhub.recipes import load_recipe, recipe_names, recipes_dir

    rows = []
    for name in recipe_names():
        recipe = load_recipe(name)
        rows.append(
            {
                "name": name,
                "task": recipe.task,
                "lang": recipe.lang,
                "method": recipe.method,
                "path": str(recipes_dir() / f"{name}.yaml"),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:<16} lang {row['lang']:<6} method {row['method']:<11} {row['path']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from adapterhub.recipes import load_recipe  # see run_list

    print(load_recipe(args.name).to_yaml(), end="")
    return 0
