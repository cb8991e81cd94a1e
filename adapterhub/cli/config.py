"""``adapterhub config list|get|set|unset``: your settings, in ``$ADAPTERHUB_HOME/config.json``.

``adapterhub config set namespace nlp-team`` makes ``nlp-team`` the namespace of what you train,
publish or import without naming one (default ``local``; ``$ADAPTERHUB_NAMESPACE`` wins over the
file).
"""

from __future__ import annotations

import argparse
import json

from adapterhub.cli.flags import add_json_flag


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "config",
        help="your settings (namespace, signing keys)",
        description="Settings kept in $ADAPTERHUB_HOME/config.json. namespace: the namespace of "
        "what you train, publish or import without naming one (default `local`; "
        "$ADAPTERHUB_NAMESPACE wins over the file; `adapterhub` is the built-in store's). "
        "signing_key: the EC private key (PEM) publish and train sign with; trusted_keys: "
        "public keys (comma-separated PEM files) whose signatures you trust; require_signature: "
        "yes refuses entries not signed by one of them (pull, import, serving). "
        "`adapterhub config list` shows them all.",
    )
    commands = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="every setting, its value and where it comes from")
    add_json_flag(listing)
    listing.set_defaults(func=run_list)

    get = commands.add_parser("get", help="print one setting's value")
    get.add_argument("name", help="e.g. namespace")
    get.set_defaults(func=run_get)

    put = commands.add_parser("set", help="store a setting in config.json")
    put.add_argument("name", help="e.g. namespace")
    put.add_argument("value", help="the new value, e.g. nlp-team for namespace")
    put.set_defaults(func=run_set)

    unset = commands.add_parser("unset", help="remove a setting from config.json (default again)")
    unset.add_argument("name", help="e.g. namespace")
    unset.set_defaults(func=run_unset)


def _settings():
    # Imported here like every command's library code, to keep `adapterhub --help` fast; the
    # registry's ids module defines the namespace setting, its signing module the key settings.
    import adapterhub.registry.ids  # noqa: F401
    import adapterhub.registry.signing  # noqa: F401
    from adapterhub import userconfig

    return userconfig


def run_list(args: argparse.Namespace) -> int:
    userconfig = _settings()
    rows = []
    for name, setting in sorted(userconfig.known().items()):
        value, where = userconfig.get(name)
        rows.append({"name": name, "value": value, "from": where, "help": setting.help})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']:<12} {row['value']:<20} ({row['from']})  {row['help']}")
    return 0


def run_get(args: argparse.Namespace) -> int:
    value, _ = _settings().get(args.name)
    print(value)
    return 0


def run_set(args: argparse.Namespace) -> int:
    userconfig = _settings()
    value = userconfig.set_value(args.name, args.value)
    print(f"{args.name} = {value} (in {userconfig.config_file()})")
    _, where = userconfig.get(args.name)
    if where != str(userconfig.config_file()):
        print(f"note: {where} overrides it in this shell", flush=True)
    return 0


def run_unset(args: argparse.Namespace) -> int:
    userconfig = _settings()
    userconfig.unset(args.name)
    value, where = userconfig.get(args.name)
    print(f"{args.name} = {value} ({where})")
    return 0
