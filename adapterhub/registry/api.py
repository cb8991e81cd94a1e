"""The registry's library API; the CLI (``adapterhub registry ...``) is a thin layer over it.

Every function takes ``store=None`` for the local registry (``settings.registry_dir()``), or a
path, URL or :class:`Store`. Every id is resolved by :mod:`adapterhub.registry.resolver` (local
store, then the remotes in order, then the project store; your namespace, then ``adapterhub``),
so ``show``, ``pull``, ``push``, ``export`` and the runtime mean the same entry by it.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapterhub.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    UsageError,
)
from adapterhub.preprocessing import Preprocessing
from adapterhub.registry.audit import audit
from adapterhub.registry.bundle import extract_bundle, write_bundle
from adapterhub.registry.ids import BUILTIN_NAMESPACE, LANGUAGE_TASK, AdapterId, user_namespace
from adapterhub.registry.licensing import derive
from adapterhub.registry.manifest import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CARD,
    MANIFEST,
    PAYLOAD_FILES,
    SIGNATURE_FILES,
    YANKED,
    BackboneRef,
    FileInfo,
    Manifest,
    Metrics,
    render_card,
    utc_now,
)
from adapterhub.registry.promotion import judge
from adapterhub.registry.remotes import PROJECT_REMOTE, list_remotes, project_registry_dir
from adapterhub.registry.resolver import (
    LOCAL,
    NamedStore,
    Resolution,
    Resolver,
    is_project_store,
    named,
    namespaces_for,
)
from adapterhub.registry.signing import (
    SignaturePolicy,
    check_entry,
    configured_signing_key,
    sign_entry,
)
from adapterhub.registry.stores import LocalStore, Store, open_store
from adapterhub.registry.verify import (
    VerifiedAdapter,
    refuse_pickles,
    sha256_file,
    verify_adapter_dir,
)

log = logging.getLogger(__name__)


def local_store(store: str | Path | Store | None = None) -> LocalStore:
    opened = open_store(store)
    if not isinstance(opened, LocalStore):
        raise UsageError(f"{opened} is not a local directory store; this needs one")
    return opened


def _backbone_ref(backbone: Any) -> BackboneRef:
    if backbone is None:
        raise UsageError(
            "publishing needs the backbone the adapter was trained on (its name and fingerprint)"
        )
    if isinstance(backbone, BackboneRef):
        return backbone
    if isinstance(backbone, dict):
        return BackboneRef(**backbone)
    return BackboneRef(name=str(backbone.name), fingerprint=str(backbone.fingerprint))


def _load_backbone(backbone: Any) -> Any:
    if isinstance(backbone, (str, Path)):
        from adapterhub.backbone import load_backbone

        return load_backbone(str(backbone))
    return backbone


# --------------------------------------------------------------------------- publish


def _task_type_of(aid: AdapterId, head_task_type: str | None, recipe: Any) -> str | None:
    """The head's task type; for an adapter without a head, the headless task type of the task
    its recipe names, else its id's (``lang/*``: mlm, ``retrieval/*``: retrieval)."""
    if head_task_type is not None:
        return head_task_type
    # the task table imports torch (~9 s cold); publish has loaded the tensors by now, and
    # the card it renders imports the table anyway (manifest._pipeline_tag)
    from adapterhub.tasks import TASKS

    named = recipe.get("task") if isinstance(recipe, dict) else None
    spec = TASKS.get(str(named or ("mlm" if aid.task == LANGUAGE_TASK else aid.task)))
    return spec.task_type if spec is not None and not spec.type.publishes_head else None


def _preprocessing_of(recipe: Any, task_type: str | None) -> dict[str, Any] | None:
    """The preprocessing record of an adapter trained by ``recipe`` (None without one)."""
    if task_type is None or not isinstance(recipe, dict):
        return None
    return Preprocessing.from_dict(recipe).to_dict()


def publish(
    adapter_dir: str | Path,
    adapter_id: str | AdapterId,
    *,
    backbone: Any,
    metrics: dict[str, Any] | Metrics | None = None,
    recipe: dict[str, Any] | str | None = None,
    preprocessing: dict[str, Any] | None = None,
    parents: Sequence[str] = (),
    labels: Sequence[str] | None = None,
    license: str | None = None,
    created_by: str | None = None,
    description: str = "",
    store: str | Path | Store | None = None,
    yardstick: dict[str, Any] | Metrics | None = None,
    sign: str | Path | bool | None = None,
) -> Manifest:
    """Publish the adapter folder ``adapter_dir`` as the version ``adapter_id``.

    An id without a namespace is published under the user's (:func:`user_namespace`); the
    built-in ``adapterhub`` namespace is refused in any store but the project's. Parents given
    without a namespace or version are resolved to their exact ids.

    ``adapter_dir`` holds ``adapter_config.json``, ``adapter_model.safetensors`` and, for task
    adapters, ``head.safetensors`` (FORMAT.md); other files in it are ignored. ``backbone`` is the
    loaded :class:`~adapterhub.backbone.Backbone` it was trained on (its shapes are checked), or
    just ``{"name": ..., "fingerprint": ...}``. ``metrics`` is ``{"dataset": ..., "split": ...,
    "<metric>": value, ...}``; ``parents`` the exact ids of adapters it was trained on (the
    language adapter); ``labels`` defaults to the head's. Computes every file's sha256, writes
    the model card, then commits the manifest atomically. Raises :class:`ConflictError` when the
    version exists, :class:`IntegrityError` when the files fail verification.

    ``license`` defaults to what the training data's and the backbone's licences allow
    (:func:`adapterhub.registry.licensing.derive`: ``other`` for data such as the pattern
    corpora, personal use only); the manifest and the card record both.

    ``sign``: an EC private key (PEM) that signs every file of the entry, manifest included
    (:mod:`adapterhub.registry.signing`); None signs with the configured ``signing_key`` if
    there is one, False not at all.

    ``yardstick`` (``{"dataset": "sentiment-yardstick", "split": "dev", "accuracy": ...}``) is
    the version's results on its task's yardstick; the promotion gate judges them against the
    version the short id means now (:mod:`adapterhub.registry.promotion`) and the manifest
    records whether this version is promoted, and why.
    """
    aid = publish_id(adapter_id)
    ref = _backbone_ref(backbone)
    source = Path(adapter_dir)
    if not source.is_dir():
        raise UsageError(f"{source} is not a folder; give the folder train wrote")
    refuse_pickles(source)
    target = open_store(store)
    if target.read_only:
        raise RegistryError(f"{target} is read-only")
    _refuse_builtin(aid, target)
    parents = [_parent_id(parent, target) for parent in parents]
    with _workdir(target, "publish") as staging:
        for name in PAYLOAD_FILES:
            if (source / name).is_symlink():
                raise IntegrityError(f"{source / name} is a symbolic link; publish real files")
            if (source / name).is_file():
                shutil.copyfile(source / name, staging / name)
        for name in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
            if not (staging / name).is_file():
                raise UsageError(f"{source} has no {name}; is it an adapter folder?")
        try:
            checked = verify_adapter_dir(
                staging, backbone if getattr(backbone, "model", None) is not None else None
            )
        except IntegrityError as exc:  # name the user's folder, not our staging copy
            raise type(exc)(str(exc).replace(str(staging), str(source))) from exc
        if labels is not None and checked.head is not None and list(labels) != checked.labels:
            raise UsageError(f"labels {list(labels)} differ from the head's {checked.labels}")
        task_type = _task_type_of(aid, checked.task_type, recipe)
        fields = {
            "id": str(aid),
            "kind": aid.kind,
            "task": aid.task,
            "lang": aid.lang,
            "namespace": aid.namespace,
            "version": str(aid.version),
            "method": checked.method,
            "method_config": checked.config,
            "labels": checked.labels if checked.head is not None else list(labels or []),
            "task_type": task_type,
            "backbone": ref,
            "metrics": metrics if metrics is not None else {},
            "recipe": recipe,
            "preprocessing": preprocessing
            if preprocessing is not None
            else _preprocessing_of(recipe, task_type),
            "parents": list(parents),
            "created_at": utc_now(),
            "created_by": created_by or _user(),
            "license": "",  # derived below, from the data and the backbone
            "description": description,
            "files": {},
            "yardstick": yardstick,
        }
        manifest = _manifest(fields)
        licence = derive(
            dataset=manifest.metrics.dataset or _recipe_dataset(recipe),
            backbone=backbone,
            backbone_name=ref.name,
            requested=license,
        )
        manifest = manifest.model_copy(
            update={"license": licence.license, "license_sources": licence.sources}
        )
        if manifest.yardstick is not None:
            decision = judge(manifest.yardstick, _baseline(aid, store))
            manifest = manifest.model_copy(update={"promotion": decision})
        files = {}
        for name in [*PAYLOAD_FILES, CARD]:  # the card last: it lists the others
            if name == CARD:
                manifest = manifest.model_copy(update={"files": dict(files)})
                (staging / CARD).write_text(render_card(manifest), encoding="utf-8")
            if (staging / name).is_file():
                digest, size = sha256_file(staging / name)
                files[name] = FileInfo(sha256=digest, bytes=size)
        manifest = manifest.model_copy(update={"files": files})
        key = configured_signing_key() if sign is None or sign is True else sign or None
        if sign is True and key is None:
            raise UsageError("nothing to sign with: give --sign KEY or set signing_key")
        if key is not None:
            (staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
            sign_entry(staging, key)
            (staging / MANIFEST).unlink()  # the store writes these bytes as its commit point
        target.put(staging, manifest)
    log.info("published %s to %s", aid, target)
    return manifest


def _baseline(aid: AdapterId, store: str | Path | Store | None) -> Manifest | None:
    """The manifest of the version ``aid``'s short id (in its namespace) means now: what a new
    version is judged against."""
    try:
        return _resolver(store).resolve(aid.base).manifest
    except NotFoundError:
        return None


def _recipe_dataset(recipe: dict[str, Any] | str | None) -> str:
    """The dataset a recipe names (``dataset``, else its task's built-in one), if any."""
    if not isinstance(recipe, dict):
        return ""
    return str(recipe.get("dataset") or recipe.get("data") or "")


def publish_id(adapter_id: str | AdapterId) -> AdapterId:
    """The exact id a publish of ``adapter_id`` creates: the user's namespace when none is
    given; the version must be."""
    aid = AdapterId.parse(adapter_id)
    if aid.version is None:
        raise UsageError(f"{aid} needs a version to publish, e.g. {aid}:1.0.0")
    return aid if aid.namespace is not None else aid.with_namespace(user_namespace())


def _builtin_home() -> str:
    project = project_registry_dir()
    return f"the project store ({project})" if project else "the project store"


def _refuse_builtin(aid: AdapterId, target: Store) -> None:
    """New entries in ``adapterhub`` come only from the project store."""
    if aid.namespace == BUILTIN_NAMESPACE and not is_project_store(target):
        raise UsageError(
            f"{aid}: the namespace {BUILTIN_NAMESPACE!r} holds only the project's built-in "
            f"adapters, published to {_builtin_home()}; publish yours under your namespace, e.g. "
            f"{aid.with_namespace(user_namespace())} (`adapterhub config set namespace NAME`)"
        )


def _check_builtin_copy(aid: AdapterId, manifest: Manifest, target: Store) -> None:
    """A copy of an ``adapterhub`` entry in another store must be the project store's bytes."""
    if aid.namespace != BUILTIN_NAMESPACE or is_project_store(target):
        return
    project = project_registry_dir()
    store = LocalStore(project, read_only=True) if project else None
    if store is None or not store.exists(aid):
        _refuse_builtin(aid, target)
    genuine = store.read_manifest(aid)
    if {n: f.sha256 for n, f in genuine.files.items()} != {
        n: f.sha256 for n, f in manifest.files.items()
    }:
        raise ConflictError(
            f"{aid} differs from the project store's {aid} ({store.url}); only the project "
            "publishes the adapterhub namespace, so this copy is not the built-in adapter: "
            f"import it under your namespace with --id {aid.with_namespace(user_namespace())}"
        )


def _parent_id(parent: str, target: Store) -> str:
    """A parent's exact id: as given when exact, else what it resolves to from ``target``."""
    aid = AdapterId.parse(parent)
    if aid.is_exact:
        return str(aid)
    try:
        return str(Resolver.default(target).resolve(aid).id)
    except NotFoundError as exc:
        raise UsageError(
            f"parent {parent} does not resolve ({exc}); give its exact id TASK/LANG@NS:VERSION"
        ) from exc


@contextlib.contextmanager
def _workdir(store: Store, label: str) -> Iterator[Path]:
    """A scratch folder; inside a writable local store's ``.tmp/`` so that committing is a
    rename and ``gc`` reclaims it if this process is killed."""
    if isinstance(store, LocalStore) and not store.read_only:
        path = store.staging(label)
        try:
            yield path
        finally:
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
    else:
        with tempfile.TemporaryDirectory(prefix=f"adapterhub-{label}-") as tmp:
            yield Path(tmp)


def _manifest(fields: dict[str, Any]) -> Manifest:
    try:
        return Manifest.model_validate(fields)
    except ValueError as exc:
        raise UsageError(f"invalid manifest field ({str(exc).splitlines()[-1].strip()})") from exc


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


# --------------------------------------------------------------------------- find


def _resolver(store: str | Path | Store | Resolver | None, sources=None) -> Resolver:
    if isinstance(store, Resolver):
        return store
    return Resolver.default(store, sources=sources)


def resolution(
    adapter_id: str | AdapterId | Resolution,
    *,
    store: str | Path | Store | Resolver | None = None,
    sources: Sequence[Store | str] | None = None,
    include_yanked: bool = True,
) -> Resolution:
    """What ``adapter_id`` means: its exact id, the store it is read from and its manifest
    (:class:`~adapterhub.registry.resolver.Resolver`'s precedence: ``store``, then ``sources``
    or the configured remotes, then the project store)."""
    if isinstance(adapter_id, Resolution):
        return adapter_id
    return _resolver(store, sources).resolve(adapter_id, include_yanked=include_yanked)


def find(
    adapter_id: str | AdapterId,
    *,
    store: str | Path | Store | Resolver | None = None,
    sources: Sequence[Store | str] | None = None,
) -> AdapterId:
    """The exact id a reference means: itself if exact, else the highest version no store marks
    as yanked (releases before prereleases) in the first namespace that has one (yours, then
    ``adapterhub``); see :mod:`adapterhub.registry.resolver`."""
    return resolution(adapter_id, store=store, sources=sources).id


def show(
    adapter_id: str | AdapterId,
    *,
    store: str | Path | Store | Resolver | None = None,
    sources: Sequence[Store | str] | None = None,
) -> Manifest:
    """The manifest of the entry ``adapter_id`` resolves to (yanked versions by exact id)."""
    return resolution(adapter_id, store=store, sources=sources).manifest


def search(*, store: str | Path | Store | None = None, **filters: Any) -> list[Manifest]:
    """Entries of one store matching ``task``, ``lang``, ``namespace``, ``backbone`` (name or
    fingerprint), ``method``, ``kind``, ``metric``/``min_value``, ``include_yanked``; every
    store at once: :meth:`Resolver.entries`."""
    return open_store(store).search(**filters)


# --------------------------------------------------------------------------- move between stores


@dataclass(frozen=True)
class Copied:
    """What ``pull`` (or an import of an entry) did."""

    resolution: Resolution
    """The entry asked for and the store it came from."""
    target: NamedStore
    manifest: Manifest
    """The entry as ``target`` holds it now."""
    copied: bool
    """False when ``target`` already held these bytes and nothing was written."""

    @property
    def id(self) -> str:
        return self.manifest.id

    def describe(self) -> str:
        if not self.copied:
            text = f"already present: {self.id} in {self.target}"
            if self.resolution.source.url != self.target.url:
                text += f" (same bytes as {self.resolution.source})"
            return text
        return f"pulled {self.resolution.describe()} into {self.target}"


def _fetch_verified(source: Store, aid: AdapterId, into: Path) -> Manifest:
    source.fetch(aid, into)
    checked = verify_adapter_dir(into, require_manifest=True)
    manifest = checked.manifest
    assert manifest is not None
    if manifest.id != str(aid):
        raise IntegrityError(f"{source} served a manifest for {manifest.id} when asked for {aid}")
    return manifest


def _same_files(a: Manifest, b: Manifest) -> bool:
    return {n: f.sha256 for n, f in a.files.items()} == {n: f.sha256 for n, f in b.files.items()}


def _put_copy(target: Store, folder: Path, manifest: Manifest) -> Manifest:
    """Put an already verified entry; an identical existing copy is fine."""
    aid = manifest.adapter_id
    _check_builtin_copy(aid, manifest, target)
    signed = any((folder / name).is_file() for name in SIGNATURE_FILES)
    if signed and (folder / MANIFEST).read_bytes() != manifest.to_json().encode():
        raise IntegrityError(
            f"the manifest.json of {aid} is not in the form this adapterhub writes, so its "
            "signature would not survive the copy; upgrade adapterhub, or copy the entry's folder"
        )
    was_yanked = (folder / YANKED).is_file()
    for extra in (YANKED, MANIFEST):
        (folder / extra).unlink(missing_ok=True)
    try:
        target.put(folder, manifest)
    except ConflictError:
        existing = target.read_manifest(aid)
        if not _same_files(existing, manifest):
            raise ConflictError(
                f"{target} already has a different {aid} (other sha256); versions are "
                f"immutable: import it under another id with --id {aid.base}:NEW_VERSION"
            ) from None
        manifest = existing
    if was_yanked:
        target.yank(aid, manifest.yanked_reason or "yanked upstream")
    return target.read_manifest(aid)


def _policy(
    signatures: SignaturePolicy | None, source: NamedStore | None = None
) -> SignaturePolicy:
    """``signatures`` (default: the user's settings), plus the policy of the remote an entry
    comes from (its remotes.json entry: ``remote add --require-signature --trusted-key``)."""
    policy = signatures if signatures is not None else SignaturePolicy.configured()
    if source is None or source.name in (LOCAL, PROJECT_REMOTE, source.url):
        return policy  # not a named remote: no remotes.json read on the serving load path
    return policy.merged(SignaturePolicy.of_remote(list_remotes().get(source.name)))


def pull_entry(
    adapter_id: str | AdapterId | Resolution,
    source: str | Store | None = None,
    *,
    store: str | Path | Store | None = None,
    signatures: SignaturePolicy | None = None,
) -> Copied:
    """Copy an entry into the local store, verifying every file's sha256 first, and say what
    happened. ``source`` (a remote name, URL or store) is the one store to resolve in; without
    it the id resolves as everywhere else (the local store first: an entry already here is
    "already present"). The local store holding the same id with other bytes is a
    :class:`ConflictError` naming both; nothing is written when the source fails or refuses.
    A signature is verified where the entry has one; ``signatures`` (default: your settings) and
    the source remote's policy may require one by a trusted key."""
    local = NamedStore("local", local_store(store))
    if source:
        found = resolution(adapter_id, store=Resolver([named(source)]))
    else:
        found = resolution(adapter_id, store=Resolver.default(local.store))
    aid = found.id
    policy = _policy(signatures, found.source)
    if local.store.exists(aid):
        check_entry(local.store.entry_path(aid), policy, what=f"{aid} in {local}")
        existing = local.store.read_manifest(aid)
        if not _same_files(existing, found.manifest):
            raise ConflictError(
                f"{aid} differs between {local} and {found.source} (other sha256); refusing to "
                f"overwrite it: an exact id names one set of bytes. Remove the local copy "
                f"({local.store.entry_path(aid)}) to pull the other, or keep yours under "
                "another id"
            )
        if found.yanked and not existing.yanked:
            local.store.yank(aid, found.yanked_reason or f"yanked in {found.source.name}")
            existing = local.store.read_manifest(aid)
        return Copied(found, local, existing, copied=False)
    with _workdir(local.store, "pull") as tmp:
        manifest = _fetch_verified(found.store, aid, tmp)
        check_entry(tmp, policy, what=f"{aid} from {found.source}")
        if found.yanked:  # a yank in any store travels with the copy
            (tmp / YANKED).write_text("{}")
            manifest.yanked_reason = found.yanked_reason or f"yanked in {found.source.name}"
        return Copied(found, local, _put_copy(local.store, tmp, manifest), copied=True)


def pull(
    adapter_id: str | AdapterId | Resolution,
    source: str | Store | None = None,
    *,
    store: str | Path | Store | None = None,
) -> Manifest:
    """:func:`pull_entry`, returning the local entry's manifest."""
    return pull_entry(adapter_id, source, store=store).manifest


def _entry_folder(found: Resolution, into: Path) -> Path:
    """A verified folder of the entry's files: in place for a local directory store, else
    fetched from its store into ``into``."""
    if found.path is not None:
        verify_adapter_dir(found.path, require_manifest=True, expected_id=str(found.id))
        return found.path
    _fetch_verified(found.store, found.id, into)
    return into


def push(
    adapter_id: str | AdapterId | Resolution,
    to: str | Store,
    *,
    store: str | Path | Store | None = None,
) -> Manifest:
    """Copy an entry (verified first) to a remote; the remote refuses an existing version. The
    id resolves as everywhere else, so an entry that lives only upstream (the project store, a
    remote) is streamed from there."""
    found = resolution(adapter_id, store=store)
    remote = to if isinstance(to, Store) else named(to).store
    manifest = found.manifest
    _check_builtin_copy(found.id, manifest, remote)
    with tempfile.TemporaryDirectory(prefix="adapterhub-push-") as tmp:
        folder = _entry_folder(found, Path(tmp))
        remote.put(folder, manifest)
    if found.yanked:
        remote.yank(found.id, found.yanked_reason or "yanked")
    return manifest


def resolve(
    adapter_id: str | AdapterId | Resolution,
    *,
    backbone: Any = None,
    store: str | Path | Store | Resolver | None = None,
    sources: Sequence[Store | str] | None = None,
    verify: bool = True,
    signatures: SignaturePolicy | None = None,
) -> Path:
    """The local folder of a verified entry, pulling it on a miss.

    ``sentiment/de`` resolves as :func:`find` says. Entries of local directory stores (the
    project's ``registry/``) are used in place, not copied; entries of network stores are
    pulled into the local store (the default one when ``store`` is itself a remote, as a
    serving replica may be given). With ``backbone``, the fingerprint and shapes are checked;
    with ``verify``, a signature too, under ``signatures`` (default: your settings).
    """
    found = resolution(adapter_id, store=store, sources=sources)
    path = found.path
    if path is None:
        target = _resolver(store, sources).local.store
        cache = target if isinstance(target, LocalStore) else local_store(None)
        path = pull_entry(found, store=cache, signatures=signatures).target.store.entry_path(
            found.id
        )
    if verify:
        verify_adapter_dir(path, backbone, require_manifest=True, expected_id=str(found.id))
        check_entry(path, _policy(signatures, found.source), what=found.describe())
    return path


def open_adapter(
    adapter_id: str | AdapterId | Resolution,
    backbone: Any = None,
    *,
    store: str | Path | Store | Resolver | None = None,
    sources: Sequence[Store | str] | None = None,
    signatures: SignaturePolicy | None = None,
) -> VerifiedAdapter:
    """Resolve and verify in one pass: the verified tensors, head, labels and manifest (what the
    runtime loads into a slot). A yanked version is refused (:class:`YankedError`); a signature
    is verified where there is one, and ``signatures`` (default: your settings) may require
    one (:class:`UntrustedError`)."""
    found = resolution(adapter_id, store=store, sources=sources).require_servable()
    path = resolve(found, store=store, sources=sources, verify=False, signatures=signatures)
    verified = verify_adapter_dir(path, backbone, require_manifest=True, expected_id=str(found.id))
    check_entry(path, _policy(signatures, found.source), what=found.describe())
    return verified


# --------------------------------------------------------------------------- maintenance


def verify(
    adapter_id: str | AdapterId | None = None,
    *,
    store: str | Path | Store | None = None,
    backbone: Any = None,
    signatures: SignaturePolicy | None = None,
) -> list[tuple[str, str | None]]:
    """Check one entry or every entry of a local store: ``[(id, None | error message)]``
    (files, weights, backbone and signature; :func:`~adapterhub.registry.audit.audit` reports
    each check)."""
    reports = audit(adapter_id, store=local_store(store), backbone=backbone, signatures=signatures)
    return [(report.id, report.problem) for report in reports]


def yank(
    adapter_id: str | AdapterId, reason: str = "", *, store: str | Path | Store | None = None
) -> Manifest:
    """Mark a version as yanked: it stays readable by its exact id, but no short id or pattern
    resolves to it and the server refuses it. Without a namespace, the first of yours and
    ``adapterhub`` that holds the version in ``store``."""
    target = open_store(store)
    ref = AdapterId.parse(adapter_id)
    if ref.version is None:
        raise UsageError(f"{ref} needs a version here, e.g. {ref}:1.0.0")
    candidates = [AdapterId(ref.task, ref.lang, ns, ref.version) for ns in namespaces_for(ref)]
    aid = next((c for c in candidates if target.exists(c)), candidates[0])
    target.yank(aid, reason)
    return target.read_manifest(aid)


def gc(*, store: str | Path | Store | None = None, grace_s: float | None = None) -> list[str]:
    target = open_store(store)
    return target.gc() if grace_s is None else target.gc(grace_s)


def reindex(*, store: str | Path | Store | None = None) -> int:
    return local_store(store).reindex()


def export_bundle(
    adapter_id: str | AdapterId | Resolution,
    output: str | Path,
    *,
    store: str | Path | Store | None = None,
) -> Path:
    """Write a verified entry to one ``.tar`` file (``.tar.gz`` compresses). The id resolves as
    everywhere else; an entry that lives only upstream is streamed from its store."""
    found = resolution(adapter_id, store=store)
    with tempfile.TemporaryDirectory(prefix="adapterhub-export-") as tmp:
        entry = _entry_folder(found, Path(tmp))
        extras = [n for n in (YANKED, *SIGNATURE_FILES) if (entry / n).is_file()]
        names = [*found.manifest.files, MANIFEST, *extras]
        return write_bundle(entry, names, output)


def import_adapter(
    source: str | Path,
    adapter_id: str | AdapterId | None = None,
    *,
    backbone: Any = None,
    labels: Sequence[str] | None = None,
    task_type: str | None = None,
    metrics: dict[str, Any] | None = None,
    recipe: dict[str, Any] | str | None = None,
    parents: Sequence[str] = (),
    license: str | None = None,
    created_by: str | None = None,
    description: str = "",
    store: str | Path | Store | None = None,
    signatures: SignaturePolicy | None = None,
    sign: str | Path | bool | None = None,
) -> Manifest:
    """Import a bundle (``.tar``) or a folder into the local store.

    A bundle or folder with a ``manifest.json`` is an entry: its files are verified against it and
    it keeps its id (or is republished as ``adapter_id`` when given). A folder without one is a
    plain PEFT ``save_pretrained`` folder: ``adapter_id`` and ``backbone`` (a loaded Backbone,
    or a name/path to load) are required, the classifier saved through ``modules_to_save``
    becomes ``head.safetensors``.

    An entry's signature is verified where it has one, under ``signatures`` (default: your
    settings); one kept under its id keeps its signature, one republished under another id (or a
    PEFT folder) is signed as :func:`publish`'s ``sign`` says.
    """
    from adapterhub.registry.interop import convert_peft_dir

    local = local_store(store)
    source = Path(source)
    with tempfile.TemporaryDirectory(prefix="adapterhub-import-") as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        if source.is_file():
            extract_bundle(source, folder)
        elif source.is_dir():
            refuse_pickles(source)
            for path in source.iterdir():
                if path.is_symlink():
                    raise IntegrityError(f"{path} is a symbolic link; import real files")
                kept = (*PAYLOAD_FILES, CARD, MANIFEST, YANKED, *SIGNATURE_FILES)
                if path.is_file() and path.name in kept:
                    shutil.copyfile(path, folder / path.name)
        else:
            raise UsageError(f"{source} does not exist; give a .tar bundle or a PEFT folder")
        if (folder / MANIFEST).exists():
            loaded = _load_backbone(backbone) if backbone is not None else None
            manifest = verify_adapter_dir(folder, loaded, require_manifest=True).manifest
            assert manifest is not None
            check_entry(folder, _policy(signatures), what=f"{manifest.id} in {source}")
            if adapter_id is None or publish_id(adapter_id) == manifest.adapter_id:
                return _put_copy(local, folder, manifest)
            return publish(
                folder,
                adapter_id,
                backbone=loaded or manifest.backbone,
                metrics=metrics if metrics is not None else manifest.metrics,
                recipe=recipe if recipe is not None else manifest.recipe,
                parents=parents or manifest.parents,
                license=license,
                created_by=created_by,
                description=description or manifest.description,
                store=local,
                sign=sign,
            )
        if adapter_id is None:
            raise UsageError(f"{source} has no manifest.json; give the new entry's id with --id")
        if backbone is None:
            raise UsageError("importing a PEFT folder needs the backbone it was trained on")
        loaded = _load_backbone(backbone)
        converted = Path(tmp) / "out"
        converted.mkdir()
        convert_peft_dir(folder, converted, loaded, labels=labels, task_type=task_type)
        return publish(
            converted,
            adapter_id,
            backbone=loaded,
            metrics=metrics,
            recipe=recipe,
            parents=parents,
            license=license,
            created_by=created_by,
            description=description,
            store=local,
            sign=sign,
        )


__all__ = [
    "Copied",
    "export_bundle",
    "find",
    "gc",
    "import_adapter",
    "local_store",
    "open_adapter",
    "publish",
    "publish_id",
    "pull",
    "pull_entry",
    "push",
    "reindex",
    "resolution",
    "resolve",
    "search",
    "show",
    "verify",
    "yank",
]
