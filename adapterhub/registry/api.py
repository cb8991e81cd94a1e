"""The registry's library API; the CLI (``adapterhub registry ...``) is a thin layer over it.

Every function takes ``store=None`` for the local registry (``settings.registry_dir()``), or a
path, URL or :class:`Store`.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from adapterhub.errors import (
    AdapterHubError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    UsageError,
)
from adapterhub.preprocessing import Preprocessing
from adapterhub.registry.bundle import extract_bundle, write_bundle
from adapterhub.registry.ids import AdapterId, newest
from adapterhub.registry.manifest import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CARD,
    MANIFEST,
    PAYLOAD_FILES,
    YANKED,
    BackboneRef,
    FileInfo,
    Manifest,
    Metrics,
    render_card,
    utc_now,
)
from adapterhub.registry.remotes import remote_store, upstream_stores
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


def _preprocessing_of(recipe: Any, task_type: str | None) -> dict[str, Any] | None:
    """The preprocessing record of a task adapter trained by ``recipe`` (None without one)."""
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
    license: str = "apache-2.0",
    created_by: str | None = None,
    description: str = "",
    store: str | Path | Store | None = None,
) -> Manifest:
    """Publish the adapter folder ``adapter_dir`` as the exact id ``adapter_id``.

    ``adapter_dir`` holds ``adapter_config.json``, ``adapter_model.safetensors`` and, for task
    adapters, ``head.safetensors`` (FORMAT.md); other files in it are ignored. ``backbone`` is the
    loaded :class:`~adapterhub.backbone.Backbone` it was trained on (its shapes are checked), or
    just ``{"name": ..., "fingerprint": ...}``. ``metrics`` is ``{"dataset": ..., "split": ...,
    "<metric>": value, ...}``; ``parents`` the exact ids of adapters it was trained on (the
    language adapter); ``labels`` defaults to the head's. Computes every file's sha256, writes
    the model card, then commits the manifest atomically. Raises :class:`ConflictError` when the
    version exists, :class:`IntegrityError` when the files fail verification.
    """
    aid = AdapterId.parse(adapter_id).require_exact()
    ref = _backbone_ref(backbone)
    source = Path(adapter_dir)
    if not source.is_dir():
        raise UsageError(f"{source} is not a folder; give the folder train wrote")
    refuse_pickles(source)
    target = open_store(store)
    if target.read_only:
        raise RegistryError(f"{target} is read-only")
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
            "task_type": checked.task_type,
            "backbone": ref,
            "metrics": metrics if metrics is not None else {},
            "recipe": recipe,
            "preprocessing": preprocessing
            if preprocessing is not None
            else _preprocessing_of(recipe, checked.task_type),
            "parents": list(parents),
            "created_at": utc_now(),
            "created_by": created_by or _user(),
            "license": license,
            "description": description,
            "files": {},
        }
        manifest = _manifest(fields)
        (staging / CARD).write_text(render_card(manifest), encoding="utf-8")
        files = {}
        for name in [*PAYLOAD_FILES, CARD]:
            if (staging / name).is_file():
                digest, size = sha256_file(staging / name)
                files[name] = FileInfo(sha256=digest, bytes=size)
        manifest = manifest.model_copy(update={"files": files})
        target.put(staging, manifest)
    log.info("published %s to %s", aid, target)
    return manifest


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


def _newest_in(stores: Iterable[Store], base: AdapterId) -> AdapterId | None:
    candidates = []
    for store in stores:
        candidates += [v for v, yanked in store.versions(base) if not yanked]
    best = newest(candidates)
    return base.with_version(best) if best else None


def find(
    adapter_id: str | AdapterId,
    *,
    store: str | Path | Store | None = None,
    sources: Sequence[Store] | None = None,
) -> AdapterId:
    """The exact id a reference means: itself if exact, else the highest non-yanked version
    (releases before prereleases) in the local store and local-folder upstreams, falling back to
    the network remotes when none has it."""
    aid = AdapterId.parse(adapter_id)
    if aid.is_exact:
        return aid
    local = open_store(store)
    upstreams = list(upstream_stores() if sources is None else sources)
    near = [local, *[s for s in upstreams if isinstance(s, LocalStore)]]
    far = [s for s in upstreams if not isinstance(s, LocalStore)]
    found = _newest_in(near, aid)
    errors: list[AdapterHubError] = []
    for remote in far if found is None else []:
        try:
            found = _newest_in([remote], aid)
        except RegistryError as exc:
            errors.append(exc)
            continue
        if found is not None:
            break
    if found is None:
        if errors:
            raise errors[0]
        raise NotFoundError(
            f"no published, non-yanked version of {aid}; see `adapterhub registry list "
            f"--task {aid.task} --lang {aid.lang}`"
        )
    return found


def show(adapter_id: str | AdapterId, *, store: str | Path | Store | None = None) -> Manifest:
    target = open_store(store)
    return target.read_manifest(find(adapter_id, store=target, sources=[]))


def search(*, store: str | Path | Store | None = None, **filters: Any) -> list[Manifest]:
    """Entries matching ``task``, ``lang``, ``namespace``, ``backbone`` (name or fingerprint),
    ``method``, ``kind``, ``metric``/``min_value``, ``include_yanked``."""
    return open_store(store).search(**filters)


# --------------------------------------------------------------------------- move between stores


def _fetch_verified(source: Store, aid: AdapterId, into: Path) -> Manifest:
    source.fetch(aid, into)
    checked = verify_adapter_dir(into, require_manifest=True)
    manifest = checked.manifest
    assert manifest is not None
    if manifest.id != str(aid):
        raise IntegrityError(f"{source} served a manifest for {manifest.id} when asked for {aid}")
    return manifest


def _put_copy(target: Store, folder: Path, manifest: Manifest) -> Manifest:
    """Put an already verified entry; an identical existing copy is fine."""
    aid = manifest.adapter_id
    was_yanked = (folder / YANKED).is_file()
    for extra in (YANKED, MANIFEST):
        (folder / extra).unlink(missing_ok=True)
    try:
        target.put(folder, manifest)
    except ConflictError:
        existing = target.read_manifest(aid)
        if existing.files != manifest.files:
            raise ConflictError(
                f"{target} already has a different {aid} (other files); versions are immutable"
            ) from None
        manifest = existing
    if was_yanked:
        target.yank(aid, manifest.yanked_reason or "yanked upstream")
    return target.read_manifest(aid)


def pull(
    adapter_id: str | AdapterId,
    source: str | Store | None = None,
    *,
    store: str | Path | Store | None = None,
) -> Manifest:
    """Copy an entry from a remote (a name from ``remote list``, a URL, or every remote in turn)
    into the local store, verifying every file's sha256 first. Nothing is written locally when
    the remote fails or refuses."""
    local = local_store(store)
    sources = (
        [source if isinstance(source, Store) else remote_store(source)]
        if source
        else upstream_stores()
    )
    aid = find(adapter_id, store=local, sources=sources)
    if local.exists(aid):
        return local.read_manifest(aid)
    return _pull(aid, local, sources, where=str(source or "any remote"))


def _pull(aid: AdapterId, local: LocalStore, sources: Sequence[Store], where: str) -> Manifest:
    errors: list[AdapterHubError] = []
    for remote in sources:
        try:
            if not remote.exists(aid):
                continue
            with _workdir(local, "pull") as tmp:
                manifest = _fetch_verified(remote, aid, tmp)
                return _put_copy(local, tmp, manifest)
        except (RegistryError, UsageError) as exc:
            if isinstance(exc, (IntegrityError, ConflictError)) or len(sources) == 1:
                raise
            errors.append(exc)
    if errors:
        raise errors[0]
    raise NotFoundError(f"{aid} is not in {where}; see `adapterhub registry remote list`")


def push(
    adapter_id: str | AdapterId,
    to: str | Store,
    *,
    store: str | Path | Store | None = None,
) -> Manifest:
    """Copy a local entry (verified first) to a remote; the remote refuses an existing version."""
    local = local_store(store)
    aid = find(adapter_id, store=local, sources=[])
    remote = to if isinstance(to, Store) else remote_store(to)
    checked = verify_adapter_dir(local.entry_path(aid), require_manifest=True)
    manifest = checked.manifest
    assert manifest is not None
    remote.put(local.entry_path(aid), manifest)
    if manifest.yanked:
        remote.yank(aid, manifest.yanked_reason or "yanked")
    return manifest


def resolve(
    adapter_id: str | AdapterId,
    *,
    backbone: Any = None,
    store: str | Path | Store | None = None,
    sources: Sequence[Store] | None = None,
    verify: bool = True,
) -> Path:
    """The local folder of a verified entry, pulling it from the remotes on a miss.

    ``sentiment/de`` becomes the newest non-yanked version (see :func:`find`). Entries of
    read-only local upstreams (the project's ``registry/``) are used in place, not copied. When
    ``store`` is a remote (an ``oci://`` or fsspec URL, as a serving replica may be given), it is
    the first source and entries are cached in the default local store. With ``backbone``, the
    fingerprint and shapes are checked too.
    """
    target = open_store(store)
    exact = AdapterId.parse(adapter_id)
    if isinstance(target, LocalStore) and exact.is_exact and target.exists(exact):
        # the serving runtime's load path: an exact id already here needs no remote consulted
        path = target.entry_path(exact)
        if verify:
            verify_adapter_dir(path, backbone, require_manifest=True)
        return path
    upstreams = list(upstream_stores() if sources is None else sources)
    if isinstance(target, LocalStore):
        local = target
    else:
        local, upstreams = local_store(None), [target, *upstreams]
    aid = find(adapter_id, store=local, sources=upstreams)
    path = None
    if local.exists(aid):
        path = local.entry_path(aid)
    else:
        for upstream in upstreams:
            if isinstance(upstream, LocalStore) and upstream.exists(aid):
                path = upstream.entry_path(aid)
                break
        else:
            remotes = [s for s in upstreams if not isinstance(s, LocalStore)]
            _pull(aid, local, remotes, where="any remote")
            path = local.entry_path(aid)
    if verify:
        verify_adapter_dir(path, backbone, require_manifest=True)
    return path


def open_adapter(
    adapter_id: str | AdapterId,
    backbone: Any = None,
    *,
    store: str | Path | Store | None = None,
    sources: Sequence[Store] | None = None,
) -> VerifiedAdapter:
    """Resolve and verify in one pass: the verified tensors, head, labels and manifest (what the
    runtime loads into a slot)."""
    path = resolve(adapter_id, store=store, sources=sources, verify=False)
    return verify_adapter_dir(path, backbone, require_manifest=True)


# --------------------------------------------------------------------------- maintenance


def verify(
    adapter_id: str | AdapterId | None = None,
    *,
    store: str | Path | Store | None = None,
    backbone: Any = None,
) -> list[tuple[str, str | None]]:
    """Check one entry or every entry of a local store: ``[(id, None | error message)]``."""
    local = local_store(store)
    ids = (
        [find(adapter_id, store=local, sources=[])]
        if adapter_id
        else sorted(local.ids(), key=lambda a: (a.namespace, a.task, a.lang, a.version))
    )
    results = []
    for aid in ids:
        try:
            verify_adapter_dir(local.entry_path(aid), backbone, require_manifest=True)
            results.append((str(aid), None))
        except IntegrityError as exc:
            results.append((str(aid), str(exc)))
    return results


def yank(
    adapter_id: str | AdapterId, reason: str = "", *, store: str | Path | Store | None = None
) -> Manifest:
    """Mark a version as yanked: it stays readable by its exact id, but ``sentiment/de`` no
    longer resolves to it."""
    target = open_store(store)
    aid = AdapterId.parse(adapter_id).require_exact()
    target.yank(aid, reason)
    return target.read_manifest(aid)


def gc(*, store: str | Path | Store | None = None, grace_s: float | None = None) -> list[str]:
    target = open_store(store)
    return target.gc() if grace_s is None else target.gc(grace_s)


def reindex(*, store: str | Path | Store | None = None) -> int:
    return local_store(store).reindex()


def export_bundle(
    adapter_id: str | AdapterId, output: str | Path, *, store: str | Path | Store | None = None
) -> Path:
    """Write a verified entry to one ``.tar`` file (``.tar.gz`` compresses)."""
    local = local_store(store)
    aid = find(adapter_id, store=local, sources=[])
    entry = local.entry_path(aid)
    manifest = verify_adapter_dir(entry, require_manifest=True).manifest
    assert manifest is not None
    names = [*manifest.files, MANIFEST, *([YANKED] if (entry / YANKED).is_file() else [])]
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
    license: str = "apache-2.0",
    created_by: str | None = None,
    description: str = "",
    store: str | Path | Store | None = None,
) -> Manifest:
    """Import a bundle (``.tar``) or a folder into the local store.

    A bundle or folder with a ``manifest.json`` is an entry: its files are verified against it and
    it keeps its id (or is republished as ``adapter_id`` when given). A folder without one is a
    plain PEFT ``save_pretrained`` folder: ``adapter_id`` and ``backbone`` (a loaded Backbone,
    or a name/path to load) are required, the classifier saved through ``modules_to_save``
    becomes ``head.safetensors``.
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
                if path.is_file() and path.name in (*PAYLOAD_FILES, CARD, MANIFEST, YANKED):
                    shutil.copyfile(path, folder / path.name)
        else:
            raise UsageError(f"{source} does not exist; give a .tar bundle or a PEFT folder")
        if (folder / MANIFEST).exists():
            loaded = _load_backbone(backbone) if backbone is not None else None
            manifest = verify_adapter_dir(folder, loaded, require_manifest=True).manifest
            assert manifest is not None
            if adapter_id is None or AdapterId.parse(adapter_id) == manifest.adapter_id:
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
        )


__all__ = [
    "export_bundle",
    "find",
    "gc",
    "import_adapter",
    "local_store",
    "open_adapter",
    "publish",
    "pull",
    "push",
    "reindex",
    "resolve",
    "search",
    "show",
    "verify",
    "yank",
]
