"""``adapterhub registry list|show|publish|pull|push|verify|yank|gc|reindex|export|import|remote``.

Every command takes ``--store PATH_OR_URL`` (default: the local registry under
``$ADAPTERHUB_HOME``).
"""

from __future__ import annotations

import argparse
import json
import sys


def _store_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        default=None,
        help="registry folder or URL (default: $ADAPTERHUB_HOME/registry)",
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser("registry", help="publish, find, share and verify adapters")
    commands = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    listing = commands.add_parser("list", help="list or search entries")
    for flag in ("task", "lang", "backbone", "method", "namespace", "kind"):
        listing.add_argument(f"--{flag}", default=None)
    listing.add_argument(
        "--metric", default=None, help="NAME or NAME>=VALUE: entries reporting it, best first"
    )
    listing.add_argument("--no-yanked", action="store_true", help="hide yanked versions")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--from", dest="source", default=None, help="list a remote (name or URL)")
    _store_arg(listing)
    listing.set_defaults(func=run_list)

    show = commands.add_parser("show", help="print an entry's manifest")
    show.add_argument("id")
    show.add_argument("--from", dest="source", default=None, help="a remote (name or URL)")
    _store_arg(show)
    show.set_defaults(func=run_show)

    publish = commands.add_parser("publish", help="publish an adapter folder as a new version")
    publish.add_argument("dir")
    publish.add_argument("--id", required=True, help="TASK/LANG[@NAMESPACE]:VERSION")
    publish.add_argument(
        "--backbone", default="multilingual-e5-small", help="backbone it was trained on"
    )
    publish.add_argument("--metrics", default=None, help="JSON file or inline JSON object")
    publish.add_argument("--recipe", default=None, help="recipe YAML/JSON file")
    publish.add_argument("--parent", action="append", default=[], help="parent adapter id")
    publish.add_argument("--license", default="apache-2.0")
    publish.add_argument("--description", default="")
    _store_arg(publish)
    publish.set_defaults(func=run_publish)

    pull = commands.add_parser("pull", help="copy an entry from a remote into the local store")
    pull.add_argument("id")
    pull.add_argument("--from", dest="source", default=None, help="remote name or URL")
    _store_arg(pull)
    pull.set_defaults(func=run_pull)

    push = commands.add_parser("push", help="copy a local entry to a remote")
    push.add_argument("id")
    push.add_argument("--to", required=True, help="remote name or URL")
    _store_arg(push)
    push.set_defaults(func=run_push)

    verify = commands.add_parser("verify", help="check hashes, weights and shapes")
    verify.add_argument("id", nargs="?")
    verify.add_argument("--all", action="store_true")
    verify.add_argument("--backbone", default=None, help="also check against this backbone")
    _store_arg(verify)
    verify.set_defaults(func=run_verify)

    yank = commands.add_parser("yank", help="mark a version as withdrawn (never deletes)")
    yank.add_argument("id")
    yank.add_argument("--reason", default="")
    _store_arg(yank)
    yank.set_defaults(func=run_yank)

    gc = commands.add_parser("gc", help="remove what interrupted publishes left behind")
    gc.add_argument("--grace", type=float, default=None, help="seconds (default 3600)")
    _store_arg(gc)
    gc.set_defaults(func=run_gc)

    reindex = commands.add_parser("reindex", help="rebuild the search index from the manifests")
    _store_arg(reindex)
    reindex.set_defaults(func=run_reindex)

    export = commands.add_parser("export", help="write an entry to one .tar bundle")
    export.add_argument("id")
    export.add_argument("-o", "--output", required=True)
    _store_arg(export)
    export.set_defaults(func=run_export)

    imp = commands.add_parser("import", help="import a .tar bundle or a PEFT folder")
    imp.add_argument("source", help="FILE.tar or a PEFT save_pretrained folder")
    imp.add_argument("--id", default=None)
    imp.add_argument("--backbone", default=None, help="needed for PEFT folders")
    imp.add_argument("--labels", default=None, help="comma-separated label names")
    imp.add_argument("--task-type", choices=["sequence", "token"], default=None)
    _store_arg(imp)
    imp.set_defaults(func=run_import)

    remote = commands.add_parser("remote", help="named remotes")
    remote_commands = remote.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    add = remote_commands.add_parser("add", help="add or replace a remote")
    add.add_argument("name")
    add.add_argument("url", help="oci://host[:port]/repo, s3://..., file://..., or a folder")
    add.add_argument("--read-only", action="store_true")
    add.set_defaults(func=run_remote_add)
    rlist = remote_commands.add_parser("list", help="list remotes")
    rlist.add_argument("--json", action="store_true")
    rlist.set_defaults(func=run_remote_list)
    remove = remote_commands.add_parser("remove", help="forget a remote")
    remove.add_argument("name")
    remove.set_defaults(func=run_remote_remove)


def _load_json_arg(value: str | None):
    from pathlib import Path

    from adapterhub.errors import UsageError

    if value is None:
        return None
    text = Path(value).read_text() if Path(value).is_file() else value
    try:
        if value.endswith((".yaml", ".yml")):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{value!r} is neither a JSON file nor inline JSON ({exc})") from exc


def _source_or_store(args: argparse.Namespace):
    if args.source:
        from adapterhub.registry.remotes import remote_store

        return remote_store(args.source)
    return args.store


def run_list(args: argparse.Namespace) -> int:
    from adapterhub import registry
    from adapterhub.registry.remotes import project_registry_dir

    project_registry_dir()  # if the built-in store is absent, this logs so in one line

    metric, min_value = args.metric, None
    if metric and ">=" in metric:
        metric, _, threshold = metric.partition(">=")
        min_value = float(threshold)
    manifests = registry.search(
        store=_source_or_store(args),
        task=args.task,
        lang=args.lang,
        backbone=args.backbone,
        method=args.method,
        namespace=args.namespace,
        kind=args.kind,
        metric=metric,
        min_value=min_value,
        include_yanked=not args.no_yanked,
    )
    rows = [m.summary() for m in manifests]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no entries", file=sys.stderr)
        return 0
    for row in rows:
        scores = " ".join(f"{k}={v:.4g}" for k, v in sorted(row["metrics"].items()))
        flag = "  [yanked]" if row["yanked"] else ""
        print(f"{row['id']:<44} {row['method']:<10} {row['backbone']:<24} {scores}{flag}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from adapterhub import registry

    manifest = registry.show(args.id, store=_source_or_store(args))
    print(manifest.model_dump_json(indent=2))
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from adapterhub import registry
    from adapterhub.backbone import load_backbone

    recipe = _load_json_arg(args.recipe)
    manifest = registry.publish(
        args.dir,
        args.id,
        backbone=load_backbone(args.backbone),
        metrics=_load_json_arg(args.metrics),
        recipe=recipe,
        parents=args.parent,
        license=args.license,
        description=args.description,
        store=args.store,
    )
    print(f"published {manifest.id}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from adapterhub import registry

    manifest = registry.pull(args.id, args.source, store=args.store)
    print(f"pulled {manifest.id}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from adapterhub import registry

    manifest = registry.push(args.id, args.to, store=args.store)
    print(f"pushed {manifest.id} to {args.to}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from adapterhub import registry
    from adapterhub.errors import UsageError

    if not args.id and not args.all:
        raise UsageError("give an adapter id or --all")
    backbone = None
    if args.backbone:
        from adapterhub.backbone import load_backbone

        backbone = load_backbone(args.backbone)
    results = registry.verify(None if args.all else args.id, store=args.store, backbone=backbone)
    bad = 0
    for aid, problem in results:
        print(
            f"{'ok ' if problem is None else 'BAD'} {aid}{'' if problem is None else ': ' + problem}"
        )
        bad += problem is not None
    return 5 if bad else 0


def run_yank(args: argparse.Namespace) -> int:
    from adapterhub import registry

    manifest = registry.yank(args.id, args.reason, store=args.store)
    print(f"yanked {manifest.id}")
    return 0


def run_gc(args: argparse.Namespace) -> int:
    from adapterhub import registry

    removed = registry.gc(store=args.store, grace_s=args.grace)
    for path in removed:
        print(f"removed {path}")
    print(f"{len(removed)} leftovers removed", file=sys.stderr)
    return 0


def run_reindex(args: argparse.Namespace) -> int:
    from adapterhub import registry

    print(f"indexed {registry.reindex(store=args.store)} entries")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from adapterhub import registry

    path = registry.export_bundle(args.id, args.output, store=args.store)
    print(f"wrote {path}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from adapterhub import registry

    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    manifest = registry.import_adapter(
        args.source,
        args.id,
        backbone=args.backbone,
        labels=labels,
        task_type=args.task_type,
        store=args.store,
    )
    print(f"imported {manifest.id}")
    return 0


def run_remote_add(args: argparse.Namespace) -> int:
    from adapterhub.registry import remotes

    remotes.add_remote(args.name, args.url, read_only=args.read_only)
    print(f"added remote {args.name} -> {args.url}")
    return 0


def run_remote_list(args: argparse.Namespace) -> int:
    from adapterhub.registry import remotes

    listed = remotes.list_remotes()
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    for name, info in listed.items():
        print(f"{name:<16} {info['url']}{'  (read-only)' if info.get('read_only') else ''}")
    return 0


def run_remote_remove(args: argparse.Namespace) -> int:
    from adapterhub.registry import remotes

    remotes.remove_remote(args.name)
    print(f"removed remote {args.name}")
    return 0
