"""``adapterhub registry list|show|publish|pull|push|verify|yank|gc|reindex|export|import|remote``.

Every command takes ``--store PATH_OR_URL`` (default: the local registry under
``$ADAPTERHUB_HOME``). Ids resolve through :mod:`adapterhub.registry.resolver`, and every command
prints the full id it used and the store it came from.
"""

from __future__ import annotations

import argparse
import json
import sys

from adapterhub.cli.flags import add_json_flag

# The resolver's rules (adapterhub.registry.resolver), here as text: importing the registry to
# build the parser would add ~0.3 s to every command's start.
PRECEDENCE = """\
Ids are TASK/LANG@NAMESPACE:VERSION. Every command and the server resolve an id the same way:

  stores      the local store ($ADAPTERHUB_HOME/registry, or --store), then the remotes in the
              order `adapterhub registry remote list` shows them, then the built-in store
              `project` (the adapters this project publishes)
  namespace   as written; without one, yours (`adapterhub config set namespace NAME`, or
              $ADAPTERHUB_NAMESPACE; default `local`), then `adapterhub` (the built-in one)
  version     as written; without one, the newest version no store marks as yanked and
              the promotion gate let through (`registry show` says why one was held back)

What you publish, train or import without a namespace goes under yours; `adapterhub` is the
built-in store's alone. The same exact id with different bytes in two stores is an error that
names both. Outputs name the full id and the store it came from."""

ID_HELP = "adapter id, e.g. sentiment/de or sentiment/de@team:1.1.0"

# `registry list` filters: each keeps the entries whose manifest has exactly this value.
LIST_FILTERS = {
    "task": "only this task, e.g. sentiment",
    "lang": "only this language (ISO code), e.g. de",
    "backbone": "only entries trained on this backbone (its name or fingerprint)",
    "method": "only this adapter method, e.g. lora",
    "namespace": "only this namespace, e.g. adapterhub",
    "kind": "only this kind of adapter: task or language",
}


def _store_arg(parser: argparse.ArgumentParser, what: str = "the local store") -> None:
    parser.add_argument(
        "--store",
        default=None,
        help=f"{what}: a registry folder or URL (default: $ADAPTERHUB_HOME/registry)",
    )


def _signature_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--require-signature",
        action="store_true",
        help="refuse an entry not signed by a trusted key (a signature is verified wherever "
        "there is one, with or without this)",
    )
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="PEM",
        help="a public key whose signatures you trust (repeatable; added to `adapterhub config "
        "set trusted_keys`)",
    )


def _policy(args: argparse.Namespace):
    """Your settings plus this command's --require-signature / --trusted-key."""
    from adapterhub.registry.signing import SignaturePolicy

    return SignaturePolicy.configured().also(args.require_signature, args.trusted_key)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "registry",
        help="publish, find, share and verify adapters",
        description=PRECEDENCE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    listing = commands.add_parser(
        "list",
        help="list or search entries of every store (local, remotes, built-in)",
        description="List the entries of the local store, the remotes and the built-in store "
        "`project`, once per id with the stores holding it; --from or --store lists one store.",
    )
    for flag, text in LIST_FILTERS.items():
        listing.add_argument(f"--{flag}", default=None, help=text)
    listing.add_argument(
        "--metric", default=None, help="NAME or NAME>=VALUE: entries reporting it, best first"
    )
    listing.add_argument("--no-yanked", action="store_true", help="hide yanked versions")
    add_json_flag(listing)
    listing.add_argument(
        "--from", dest="source", default=None, help="only this store: a remote's name or a URL"
    )
    _store_arg(listing, "only this store")
    listing.set_defaults(func=run_list)

    show = commands.add_parser(
        "show",
        help="print the manifest of the entry an id resolves to, and where it lives",
        description="Print the manifest of the entry ID resolves to (see `adapterhub registry "
        "--help`), with the store it was read from (`store`) and every store holding it.",
    )
    show.add_argument("id", help=ID_HELP)
    show.add_argument(
        "--from", dest="source", default=None, help="only this store: a remote's name or a URL"
    )
    _store_arg(show, "only this store")
    show.set_defaults(func=run_show)

    publish = commands.add_parser(
        "publish",
        help="publish an adapter folder as a new version",
        description="Publish an adapter folder as a new version. A folder `adapterhub train` "
        "wrote keeps its results and recipe: the test metrics of metrics.json (the target "
        "language's, with the split and whether it was zero-shot) and recipe.yaml, unless "
        "--metrics or --recipe say otherwise. The licence follows the training data's and "
        "the backbone's (`other`, explained in the card, for data that is not freely licensed).",
    )
    publish.add_argument(
        "dir", help="the adapter folder, e.g. the --output `adapterhub train` wrote"
    )
    publish.add_argument(
        "--id", required=True, help="TASK/LANG[@NAMESPACE]:VERSION (default namespace: yours)"
    )
    publish.add_argument(
        "--backbone", default="multilingual-e5-small", help="backbone it was trained on"
    )
    publish.add_argument(
        "--metrics",
        default=None,
        help="JSON file or inline JSON object (default: the folder's metrics.json, as train "
        "wrote it)",
    )
    publish.add_argument(
        "--yardstick",
        default=None,
        help="JSON file or inline JSON: results on the task's yardstick (a dev set), which the "
        "promotion gate judges against the version the short id means now (default: scored "
        "here, for a task that has one)",
    )
    publish.add_argument(
        "--recipe", default=None, help="recipe YAML/JSON file (default: the folder's recipe.yaml)"
    )
    publish.add_argument(
        "--parent",
        action="append",
        default=[],
        help="parent adapter id (default: the parents metrics.json names)",
    )
    publish.add_argument(
        "--license",
        default=None,
        help="the entry's licence (default: what the data's and the backbone's licences allow)",
    )
    publish.add_argument(
        "--description",
        default="",
        help="one line for the manifest and model card (default: the one train recorded, "
        "e.g. 'sentiment adapter for de (lora) trained on en')",
    )
    signing = publish.add_mutually_exclusive_group()
    signing.add_argument(
        "--sign",
        metavar="KEY",
        default=None,
        help="sign the entry (every file, manifest included) with this EC private key (PEM), "
        "OpenSSF model-signing; default: `adapterhub config set signing_key` if set",
    )
    signing.add_argument(
        "--no-sign", action="store_true", help="do not sign, even with a configured key"
    )
    _store_arg(publish)
    publish.set_defaults(func=run_publish)

    pull = commands.add_parser(
        "pull",
        help="copy an entry into the local store",
        description="Copy the entry ID resolves to into the local store (from --from only, if "
        "given). An entry already here with the same bytes is left as it is; with other bytes "
        "the pull is refused.",
    )
    pull.add_argument("id", help=ID_HELP)
    pull.add_argument("--from", dest="source", default=None, help="remote name or URL")
    _signature_args(pull)
    _store_arg(pull)
    pull.set_defaults(func=run_pull)

    push = commands.add_parser(
        "push",
        help="copy an entry to a remote",
        description="Copy the entry ID resolves to (from whichever store holds it, the built-in "
        "one included) to a remote.",
    )
    push.add_argument("id", help=ID_HELP)
    push.add_argument("--to", required=True, help="remote name or URL")
    _store_arg(push)
    push.set_defaults(func=run_push)

    verify = commands.add_parser(
        "verify",
        help="check hashes, weights, shapes, backbone and signature",
        description="For each entry: its files against their sha256, its weights and head, "
        "its backbone fingerprint (with --backbone) and its signature (valid with the key id, "
        "invalid, or unsigned). Exit status 5 when any entry has a problem.",
    )
    verify.add_argument(
        "id",
        nargs="?",
        help=f"{ID_HELP}: the entry it resolves to, in whichever store holds it (or --all)",
    )
    verify.add_argument(
        "--all", action="store_true", help="verify every entry of the store instead of one id"
    )
    verify.add_argument("--backbone", default=None, help="also check against this backbone")
    add_json_flag(verify)
    _signature_args(verify)
    verify.add_argument(
        "--store",
        default=None,
        help="a registry folder: the one --all verifies (default: $ADAPTERHUB_HOME/registry), "
        "or the only one the id is looked up in (default: every store, as show does)",
    )
    verify.set_defaults(func=run_verify)

    yank = commands.add_parser("yank", help="mark a version as withdrawn (never deletes)")
    yank.add_argument("id", help="adapter id with its version, e.g. sentiment/de@team:1.1.0")
    yank.add_argument(
        "--reason",
        default="",
        help="why it is withdrawn: kept with the entry, shown where it is refused",
    )
    _store_arg(yank)
    yank.set_defaults(func=run_yank)

    gc = commands.add_parser("gc", help="remove what interrupted publishes left behind")
    gc.add_argument("--grace", type=float, default=None, help="seconds (default 3600)")
    _store_arg(gc)
    gc.set_defaults(func=run_gc)

    reindex = commands.add_parser("reindex", help="rebuild the search index from the manifests")
    _store_arg(reindex)
    reindex.set_defaults(func=run_reindex)

    export = commands.add_parser(
        "export", help="write the entry an id resolves to (any store) to one .tar bundle"
    )
    export.add_argument("id", help=ID_HELP)
    export.add_argument(
        "-o", "--output", required=True, help="bundle file to write (.tar; .tar.gz compresses)"
    )
    _store_arg(export)
    export.set_defaults(func=run_export)

    imp = commands.add_parser("import", help="import a .tar bundle or a PEFT folder")
    imp.add_argument("source", help="FILE.tar or a PEFT save_pretrained folder")
    imp.add_argument(
        "--id", default=None, help="TASK/LANG[@NAMESPACE]:VERSION (default namespace: yours)"
    )
    imp.add_argument(
        "--backbone", default=None, help="the backbone it was trained on (PEFT folders need it)"
    )
    imp.add_argument("--labels", default=None, help="comma-separated label names")
    imp.add_argument(
        "--task-type",
        choices=["sequence", "token"],
        default=None,
        help="PEFT folders: the head labels each text (sequence) or each token (default: the "
        "head's metadata, else PEFT's task_type)",
    )
    _signature_args(imp)
    _store_arg(imp)
    imp.set_defaults(func=run_import)

    remote = commands.add_parser("remote", help="named remotes")
    remote_commands = remote.add_subparsers(dest="remote_command", metavar="ACTION", required=True)
    add = remote_commands.add_parser("add", help="add or replace a remote")
    add.add_argument(
        "name", help="the remote's name: lowercase letters, digits, - and _ (not project)"
    )
    add.add_argument("url", help="oci://host[:port]/repo, s3://..., file://..., or a folder")
    add.add_argument(
        "--read-only", action="store_true", help="only read from it: pushing to it is refused"
    )
    _signature_args(add)
    add.set_defaults(func=run_remote_add)
    rlist = remote_commands.add_parser("list", help="list remotes")
    add_json_flag(rlist)
    rlist.set_defaults(func=run_remote_list)
    remove = remote_commands.add_parser("remove", help="forget a remote")
    remove.add_argument("name", help="a name from `adapterhub registry remote list`")
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


def _resolver(args: argparse.Namespace):
    """The stores a listing or a lookup consults: one with --from or --store, else all of them."""
    from adapterhub.registry.resolver import Resolver

    if args.source:
        return Resolver.only(args.source)
    if args.store:
        return Resolver.only(args.store)
    return Resolver.default()


def _store_name(store) -> str:
    """``local (/path)``, ``project (/path)`` or the URL of the store a command wrote to."""
    from adapterhub.registry import open_store
    from adapterhub.registry.resolver import named

    return str(named(open_store(store)))


def run_list(args: argparse.Namespace) -> int:
    from adapterhub.registry.remotes import project_registry_dir

    project_registry_dir()  # if the built-in store is absent, this logs so in one line

    metric, min_value = args.metric, None
    if metric and ">=" in metric:
        metric, _, threshold = metric.partition(">=")
        min_value = float(threshold)
    listed = _resolver(args).entries(
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
    rows = [entry.row() for entry in listed]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no entries", file=sys.stderr)
        return 0
    print(f"{'ID':<44} {'STORE':<16} {'METHOD':<10} {'BACKBONE':<24} METRICS")
    for row in rows:
        scores = " ".join(f"{k}={v:.4g}" for k, v in sorted(row["metrics"].items()))
        flags = "  [yanked]" if row["yanked"] else ""
        if row["conflict"]:
            flags += "  [CONFLICT: the stores hold different bytes under this id]"
        stores = ",".join(row["stores"])
        print(
            f"{row['id']:<44} {stores:<16} {row['method']:<10} {row['backbone']:<24} "
            f"{scores}{flags}"
        )
    return 0


def _held_back(resolver, reference: str, found) -> list[str]:
    """Newer versions than ``found`` that a short ``reference`` passed over because the
    promotion gate held them back, each with the gate's reason."""
    from adapterhub.registry.ids import AdapterId

    if AdapterId.parse(reference).version is not None:
        return []
    chosen = found.id
    newer = resolver.entries(
        task=chosen.task, lang=chosen.lang, namespace=chosen.namespace, include_yanked=False
    )
    return [
        f"{e.manifest.id} is newer but not promoted: {e.manifest.promotion.reason}"
        for e in newer
        if e.manifest.adapter_id.version > chosen.version and not e.manifest.promoted
    ]


def run_show(args: argparse.Namespace) -> int:
    resolver = _resolver(args)
    found = resolver.resolve(args.id)
    print(found.describe(), file=sys.stderr)
    if not found.manifest.promoted:  # published, but short ids do not mean it: say why
        print(f"not promoted: {found.manifest.promotion.reason}", file=sys.stderr)
    for line in _held_back(resolver, args.id, found):  # why the short id means an older one
        print(line, file=sys.stderr)
    print(json.dumps({**found.manifest.model_dump(mode="json"), **found.summary()}, indent=2))
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from adapterhub import registry
    from adapterhub.backbone import load_backbone
    from adapterhub.registry.train_output import read_train_output

    trained = read_train_output(args.dir)
    recipe = _load_json_arg(args.recipe) if args.recipe else trained.recipe
    metrics = _load_json_arg(args.metrics) if args.metrics else trained.metrics
    backbone = load_backbone(args.backbone)
    yardstick = _load_json_arg(args.yardstick)
    if yardstick is None:  # the task's dev set, as train's own publish scores it for the gate
        from adapterhub.evaluation.yardstick import card_results
        from adapterhub.registry.ids import AdapterId

        yardstick = card_results(args.dir, AdapterId.parse(args.id).task, backbone=backbone)
    manifest = registry.publish(
        args.dir,
        args.id,
        backbone=backbone,
        metrics=metrics,
        recipe=recipe,
        parents=args.parent or trained.parents,
        license=args.license,
        description=args.description or trained.description,
        store=args.store,
        yardstick=yardstick,
        sign=False if args.no_sign else args.sign,
    )
    print(f"published {manifest.id} to {_store_name(args.store)}")
    if not manifest.promoted:
        print(f"not promoted: {manifest.promotion.reason}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from adapterhub import registry

    copied = registry.pull_entry(args.id, args.source, store=args.store, signatures=_policy(args))
    print(copied.describe())
    return 0


def run_push(args: argparse.Namespace) -> int:
    from adapterhub import registry
    from adapterhub.registry.resolver import named

    found = registry.resolution(args.id, store=args.store)
    target = named(args.to)
    registry.push(found, target.store)
    print(f"pushed {found.describe()} to {target}")
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
    from adapterhub.registry.audit import audit

    store = registry.local_store(args.store)
    adapter_id = None if args.all else args.id
    if adapter_id and args.store is None:  # the entry the id means, in whichever store holds it
        found = registry.resolution(adapter_id)
        store, adapter_id = found.source.store, str(found.id)
    reports = audit(adapter_id, store=store, backbone=backbone, signatures=_policy(args))
    if args.json:
        print(json.dumps([report.to_dict() for report in reports], indent=2))
    for report in reports if not args.json else []:
        print(f"{'ok ' if report.ok else 'BAD'} {report.id}: {report.describe()}")
        if report.problem:
            print(f"    {report.problem}")
    return 0 if all(report.ok for report in reports) else 5


def run_yank(args: argparse.Namespace) -> int:
    from adapterhub import registry

    manifest = registry.yank(args.id, args.reason, store=args.store)
    print(f"yanked {manifest.id} in {_store_name(args.store)}")
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

    found = registry.resolution(args.id, store=args.store)
    path = registry.export_bundle(found, args.output)
    print(f"wrote {path}: {found.describe()}")
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
        signatures=_policy(args),
    )
    print(f"imported {manifest.id} into {_store_name(args.store)}")
    return 0


def run_remote_add(args: argparse.Namespace) -> int:
    from adapterhub.registry import remotes

    remotes.add_remote(
        args.name,
        args.url,
        read_only=args.read_only,
        require_signature=args.require_signature,
        trusted_keys=args.trusted_key,
    )
    policy = "  (requires a signature by a trusted key)" if args.require_signature else ""
    print(f"added remote {args.name} -> {args.url}{policy}")
    return 0


def run_remote_list(args: argparse.Namespace) -> int:
    from adapterhub.registry import remotes

    listed = remotes.list_remotes()
    if args.json:
        print(json.dumps(listed, indent=2))
        return 0
    for name, info in listed.items():
        notes = "  (read-only)" if info.get("read_only") else ""
        if info.get("require_signature"):
            keys = len(info.get("trusted_keys") or [])
            notes += f"  (requires a signature by one of {keys} trusted keys)"
        print(f"{name:<16} {info['url']}{notes}")
    return 0


def run_remote_remove(args: argparse.Namespace) -> int:
    from adapterhub.registry import remotes

    remotes.remove_remote(args.name)
    print(f"removed remote {args.name}")
    return 0
