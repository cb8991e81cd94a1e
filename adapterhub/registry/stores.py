"""Where entries live: a local directory, any fsspec URL, or an OCI registry, behind one interface.

Every store holds entries at ``<namespace>/<task>/<lang>/<version>/`` (OCI: one repository, one tag
per entry) and makes publishing atomic in its own way:

- :class:`LocalStore` stages every file, the manifest last, in a hidden ``.tmp/`` folder and commits
  with one ``rename(2)`` of that folder onto the entry path. ``rename`` refuses a non-empty target,
  so of N racing publishers exactly one wins and the others get :class:`ConflictError`; a killed
  publisher leaves only its staging folder, which no reader looks at and ``gc`` removes.
- :class:`FsspecStore` (object stores have no rename) first claims the entry by creating
  ``.claim`` exclusively (``open(..., "xb")``; the claim stays forever, so a late publisher can
  never write into a committed entry), then writes the files, then moves a fully written
  ``manifest.json`` into place as the commit point. Readers see an entry only once its manifest
  exists; ``gc`` removes claimed entries whose publisher died (``.owner~HOST~PID`` marks).
  :class:`S3Store` (``s3://``) makes the claim and the manifest conditional PUTs
  (``If-None-Match: *``) and refuses to publish to a server that ignores the condition.
- :class:`OCIStore`: registries have no conditional tag write, so a publisher first wins a timed
  claim on the tag ``<tag>__claim`` (Fischer's mutual exclusion: read, write within a bounded
  window, wait longer than it, read the verdict), then uploads the blobs and PUTs the entry's
  manifest under its tag as the commit, and reads both back: a lost race is a
  :class:`ConflictError`, never a success (the protocol and its limits: the class docstring).

Yanking writes a marker (``yanked.json``, or an OCI tag ``<tag>__yanked``); the manifest and the
files of a published version never change.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from adapterhub.errors import (
    AdapterHubError,
    AuthError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    UsageError,
)
from adapterhub.registry.ids import AdapterId, Version
from adapterhub.registry.index import Index
from adapterhub.registry.manifest import (
    ENTRY_FILES,
    MANIFEST,
    SIGNATURE_FILES,
    YANKED,
    Manifest,
    utc_now,
)
from adapterhub.registry.verify import sha256_file

log = logging.getLogger(__name__)

TMP_DIR = ".tmp"
CLAIM = ".claim"
OWNER_PREFIX = ".owner~"
INDEX_FILE = ".index.sqlite"
DEFAULT_GC_GRACE_S = 3600.0
MAX_REMOTE_FILE_BYTES = 1 << 30
"""The largest file an entry may hold: refused from its declared size, before it is read."""
MAX_MANIFEST_BYTES = 4 << 20
"""The largest manifest (ours or an OCI registry's) or yank marker read."""


def _conflict(aid: AdapterId, where: str) -> ConflictError:
    return ConflictError(
        f"{aid} already exists in {where}; published versions are immutable: "
        "publish a new version (bump the patch number)"
    )


def _read_only(where: str) -> RegistryError:
    return RegistryError(f"{where} is a read-only store; publish to your local registry instead")


def _yank_record(reason: str) -> bytes:
    return json.dumps({"yanked_at": utc_now(), "reason": reason}, indent=2).encode() + b"\n"


class Store(ABC):
    """A place entries live. Implementations: :class:`LocalStore`, :class:`FsspecStore`
    (:class:`S3Store`), :class:`OCIStore`."""

    url: str
    read_only: bool = False

    @abstractmethod
    def ids(self) -> list[AdapterId]:
        """Every committed entry (exact ids), in no particular order."""

    @abstractmethod
    def read_manifest(self, aid: AdapterId) -> Manifest:
        """The manifest of an entry with its yank state; :class:`NotFoundError` if absent."""

    @abstractmethod
    def exists(self, aid: AdapterId) -> bool: ...

    @abstractmethod
    def fetch(self, aid: AdapterId, dest: Path) -> None:
        """Copy the entry's files (manifest included) into the empty folder ``dest``, unverified."""

    @abstractmethod
    def put(self, src: Path, manifest: Manifest) -> None:
        """Publish the files ``manifest.files`` from ``src`` plus the manifest, atomically;
        :class:`ConflictError` if the version exists or another publisher won."""

    @abstractmethod
    def yank(self, aid: AdapterId, reason: str = "") -> None: ...

    def gc(self, grace_s: float = DEFAULT_GC_GRACE_S) -> list[str]:
        """Remove what killed publishers left; returns what was removed."""
        return []

    def versions(self, base: AdapterId) -> list[tuple[Version, bool]]:
        """``(version, yanked)`` of every committed version of ``base``."""
        return [
            (aid.version, self.read_manifest(aid).yanked)
            for aid in self.ids()
            if aid.base == base and aid.version is not None
        ]

    def manifests(self) -> list[Manifest]:
        found = []
        for aid in self.ids():
            try:
                found.append(self.read_manifest(aid))
            except IntegrityError as exc:
                log.warning("skipping %s in %s: %s", aid, self.url, exc)
        return found

    def search(self, **filters: Any) -> list[Manifest]:
        """Entries matching ``filters`` (see :meth:`Index.search`); stores without a persistent
        index scan their manifests into a temporary one."""
        index = Index(":memory:")
        index.rebuild(self.manifests())
        return index.search(**filters)

    def __str__(self) -> str:
        return self.url


# --------------------------------------------------------------------------- local directory


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _copy_synced(src: Path, dst: Path) -> None:
    with open(src, "rb") as fin, open(dst, "xb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def _write_synced(dst: Path, data: bytes, *, exclusive: bool = True) -> None:
    with open(dst, "xb" if exclusive else "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _subfolders(path: str) -> list[tuple[str, str]]:
    """``(name, path)`` of the folders in ``path`` whose names do not start with a dot."""
    try:
        with os.scandir(path) as entries:
            return [(e.name, e.path) for e in entries if not e.name.startswith(".") and e.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_at_most(path: Path, limit: int) -> bytes:
    """A file's bytes, refused from its size (before reading) when over ``limit``; a file
    that grows meanwhile is refused at the first byte past it."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise IntegrityError(
            f"{path} is {max(size, len(data))} bytes, over the {limit} byte cap; refusing to read it"
        )
    return data


def _signature_files(folder: Path) -> list[str]:
    """The signature files a folder carries beside its manifest (:mod:`.signing`): part of the
    entry, though the manifest they sign cannot list them."""
    return [name for name in SIGNATURE_FILES if (Path(folder) / name).is_file()]


def _copy_declared(src: Path, dst: Path, size: int) -> None:
    """Copy ``src``, which its manifest declares to hold ``size`` bytes: a file of another size
    (or one that grows meanwhile) is refused before (at most ``size + 1`` of) it is read."""
    with open(src, "rb") as fin:
        actual = os.fstat(fin.fileno()).st_size
        if actual != size:
            raise IntegrityError(
                f"{src} is {actual} bytes but its manifest declares {size}; the entry is corrupt "
                "or was tampered with (pull it again)"
            )
        _copy_at_most(fin, dst, size, f"{src} grew")


def _copy_at_most(fin: Any, dst: Path, size: int, what: str) -> None:
    """Copy the open file ``fin`` to the new file ``dst``, refusing it at the first byte past
    ``size`` (at most ``size + 1`` bytes are read); ``what`` starts the message."""
    with open(dst, "xb") as fout:
        copied = 0
        while chunk := fin.read(min(1 << 20, size + 1 - copied)):
            copied += len(chunk)
            if copied > size:
                raise IntegrityError(f"{what} past its declared {size} bytes; refusing it")
            fout.write(chunk)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalStore(Store):
    """A registry in a local folder, with an SQLite index (``.index.sqlite``) for search.

    ``read_only`` stores (the project's ``registry/`` folder used as an upstream) are never
    written to, not even their index: searches then scan the manifests.

    The index is refreshed from the committed manifests whenever it is opened (one walk of the
    entry folders and two ``stat`` calls per entry; only new or changed entries' manifests are
    read), so an entry whose publisher was killed between its commit and its index update is
    listed by the next search, and ``reindex`` is only a rebuild from scratch.
    """

    def __init__(self, root: str | Path, *, read_only: bool = False) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        self.read_only = read_only

    # paths
    def entry_path(self, aid: AdapterId) -> Path:
        return self.root.joinpath(*aid.parts)

    def _open_index(self) -> Index:
        if self.read_only:
            raise _read_only(self.url)
        self.root.mkdir(parents=True, exist_ok=True)
        return Index(self.root / INDEX_FILE)

    @property
    def index(self) -> Index:
        """The index, brought up to date with the committed manifests first."""
        index = self._open_index()
        index.refresh(self._stamps(), self._indexable)
        return index

    def _indexable(self, aid: str) -> Manifest | None:
        try:
            return self.read_manifest(AdapterId.parse(aid))
        except (IntegrityError, NotFoundError) as exc:
            log.warning("not indexing %s in %s: %s", aid, self.url, exc)
            return None

    # reading
    def _committed(self) -> Iterator[tuple[AdapterId, str]]:
        """``(id, manifest path)`` of every committed entry, by its folder names (scandir and
        plain strings: a quarter of the time of a glob, so opening the index stays cheap)."""
        for namespace, ns_path in _subfolders(str(self.root)):
            for task, task_path in _subfolders(ns_path):
                for lang, lang_path in _subfolders(task_path):
                    for version, version_path in _subfolders(lang_path):
                        manifest = os.path.join(version_path, MANIFEST)
                        if not os.path.exists(manifest):
                            continue
                        aid = AdapterId.from_parts(namespace, task, lang, version)
                        if aid is not None:
                            yield aid, manifest

    @staticmethod
    def _stamp(manifest: str | Path) -> str | None:
        """What changes when an entry appears, is replaced or is yanked: its manifest's inode,
        mtime and size and its yank marker's mtime; None when the manifest is gone."""
        try:
            info = os.stat(manifest)
        except FileNotFoundError:
            return None
        try:
            yanked = os.stat(os.path.join(os.path.dirname(manifest), YANKED)).st_mtime_ns
        except FileNotFoundError:
            yanked = 0
        return f"{info.st_ino}:{info.st_mtime_ns}:{info.st_size}:{yanked}"

    def _stamps(self) -> dict[str, str]:
        """``{id: stamp}`` of every committed entry."""
        stamps = {}
        for aid, manifest in self._committed():
            stamp = self._stamp(manifest)
            if stamp is not None:
                stamps[str(aid)] = stamp
        return stamps

    def ids(self) -> list[AdapterId]:
        return [aid for aid, _ in self._committed()]

    def exists(self, aid: AdapterId) -> bool:
        return (self.entry_path(aid) / MANIFEST).is_file()

    def versions(self, base: AdapterId) -> list[tuple[Version, bool]]:
        folder = self.root / base.namespace / base.task / base.lang
        found = []
        for entry in folder.iterdir() if folder.is_dir() else []:
            if (entry / MANIFEST).is_file():
                aid = AdapterId.from_parts(base.namespace, base.task, base.lang, entry.name)
                if aid is not None and aid.version is not None:
                    found.append((aid.version, (entry / YANKED).exists()))
        return found

    def read_manifest(self, aid: AdapterId) -> Manifest:
        entry = self.entry_path(aid)
        try:
            text = _read_at_most(entry / MANIFEST, MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise NotFoundError(
                f"{aid} is not in {self.url}; see `adapterhub registry list`, or pull it"
            ) from None
        manifest = Manifest.from_json(text, where=str(entry / MANIFEST))
        if manifest.id != str(aid):
            raise IntegrityError(
                f"{entry} is the folder of {aid} but holds a manifest for {manifest.id}; the "
                f"entry was moved or tampered with (pull {manifest.id} again, or remove {entry})"
            )
        yanked = entry / YANKED
        if yanked.is_file():
            manifest.yanked = True
            with contextlib.suppress(ValueError, OSError, AttributeError, IntegrityError):
                record = json.loads(_read_at_most(yanked, MAX_MANIFEST_BYTES))
                manifest.yanked_reason = str(record.get("reason", ""))
        return manifest

    def fetch(self, aid: AdapterId, dest: Path) -> None:
        """The entry's files, each refused before it is read unless it has the size its
        manifest declares (and that size is within the cap)."""
        manifest = self.read_manifest(aid)
        entry = self.entry_path(aid)
        extras = [*([YANKED] if manifest.yanked else []), *_signature_files(entry)]
        for name in [*manifest.files, MANIFEST, *extras]:
            source = entry / name
            if source.is_symlink():
                raise IntegrityError(f"{source} is a symbolic link; refusing it")
            declared = manifest.files.get(name)
            if declared is None:
                (dest / name).write_bytes(_read_at_most(source, MAX_MANIFEST_BYTES))
                continue
            if declared.bytes > MAX_REMOTE_FILE_BYTES:
                raise IntegrityError(
                    f"{aid}: its manifest declares {name} as {declared.bytes} bytes, over the "
                    f"{MAX_REMOTE_FILE_BYTES} byte cap; refusing it"
                )
            _copy_declared(source, dest / name, declared.bytes)

    def search(self, **filters: Any) -> list[Manifest]:
        if self.read_only:
            return super().search(**filters)
        return self.index.search(**filters)

    # writing
    def staging(self, label: str = "work") -> Path:
        """A fresh folder under ``.tmp/`` for work that may end up in this store: it is on the
        same file system (so committing is one rename) and ``gc`` removes it if its owner dies."""
        if self.read_only:
            raise _read_only(self.url)
        tmp = self.root / TMP_DIR
        tmp.mkdir(parents=True, exist_ok=True)
        # host and pid in the name let gc tell a dead publisher from a live one
        name = f"{label}~{socket.gethostname()}~{os.getpid()}~{uuid.uuid4().hex[:12]}"
        path = tmp / name
        path.mkdir()
        return path

    def put(self, src: Path, manifest: Manifest) -> None:
        """Commit ``src``: copied into a staging folder, or, when ``src`` already is one of this
        store's staging folders holding exactly the entry's files, renamed in place."""
        if self.read_only:
            raise _read_only(self.url)
        aid = manifest.adapter_id
        final = self.entry_path(aid)
        if (final / MANIFEST).exists():
            raise _conflict(aid, self.url)
        src = Path(src)
        names = [*manifest.files, *_signature_files(src)]
        in_place = src.parent == self.root / TMP_DIR and {p.name for p in src.iterdir()} == set(
            names
        )
        staging = src if in_place else self.staging(aid.oci_tag)
        try:
            if in_place:
                for name in names:
                    with open(staging / name, "rb+") as handle:
                        os.fsync(handle.fileno())
            else:
                for name in names:
                    _copy_synced(src / name, staging / name)
            _write_synced(staging / MANIFEST, manifest.to_json().encode())  # the manifest last
            _fsync_dir(staging)
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final)  # the commit point
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    if (final / MANIFEST).exists():
                        raise _conflict(aid, self.url) from None
                    raise ConflictError(
                        f"{final} holds a half-written entry; run `adapterhub registry gc` and retry"
                    ) from None
                raise
            _fsync_dir(final.parent)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        self._index_add(manifest)

    def _index_add(self, manifest: Manifest) -> None:
        try:
            stamp = self._stamp(self.entry_path(manifest.adapter_id) / MANIFEST)
            self._open_index().add(manifest, stamp)
        except Exception as exc:  # the entry is committed; the next open of the index adds it
            log.warning("could not update the index of %s (%s)", self.url, exc)

    def yank(self, aid: AdapterId, reason: str = "") -> None:
        if self.read_only:
            raise _read_only(self.url)
        manifest = self.read_manifest(aid)
        entry = self.entry_path(aid)
        if not manifest.yanked:
            temp = entry / f".{YANKED}.{uuid.uuid4().hex[:8]}"
            _write_synced(temp, _yank_record(reason))
            os.replace(temp, entry / YANKED)
            manifest.yanked, manifest.yanked_reason = True, reason
        self._index_add(manifest)

    def gc(self, grace_s: float = DEFAULT_GC_GRACE_S) -> list[str]:
        """Remove staging folders of dead publishers (at once, on this host) or older than
        ``grace_s``, and entry folders without a manifest; then refresh the index."""
        if self.read_only:
            raise _read_only(self.url)
        removed: list[str] = []
        now = time.time()
        host = socket.gethostname()
        tmp = self.root / TMP_DIR
        for path in sorted(tmp.iterdir()) if tmp.is_dir() else []:
            parts = path.name.split("~")
            dead = False
            if len(parts) == 4 and parts[1] == host and parts[2].isdigit():
                dead = not _pid_alive(int(parts[2]))
            if dead or now - path.lstat().st_mtime > grace_s:
                _remove(path)
                removed.append(str(path))
        if self.root.is_dir():
            for entry in self.root.glob("*/*/*/*"):
                if entry.relative_to(self.root).parts[0].startswith("."):
                    continue
                if entry.is_dir() and not (entry / MANIFEST).exists():
                    if now - entry.lstat().st_mtime > min(grace_s, 60.0) or not any(
                        entry.iterdir()
                    ):
                        _remove(entry)
                        removed.append(str(entry))
            self.reindex()
        return removed

    def reindex(self) -> int:
        """Rebuild the index from scratch; returns how many entries it holds."""
        stamps = self._stamps()
        manifests = self.manifests()
        self._open_index().rebuild(manifests, stamps)
        return len(manifests)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# --------------------------------------------------------------------------- fsspec


class FsspecStore(Store):
    """A registry at any fsspec URL (``file://``, ``memory://``, ``s3://``, ...)."""

    def __init__(self, url: str, *, read_only: bool = False, **storage_options: Any) -> None:
        import fsspec

        self.url = url
        self.read_only = read_only
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        except ImportError as exc:  # the scheme's implementation is a separate package
            raise RegistryError(f"{url}: {exc}") from None
        self.root = root.rstrip("/")

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def ids(self) -> list[AdapterId]:
        found = []
        for path in self.fs.glob(self._path("*", "*", "*", "*", MANIFEST)):
            parts = path.rstrip("/").split("/")[-5:-1]
            if parts[0].startswith("."):
                continue
            aid = AdapterId.from_parts(*parts)
            if aid is not None:
                found.append(aid)
        return found

    def exists(self, aid: AdapterId) -> bool:
        return self.fs.exists(self._path(*aid.parts, MANIFEST))

    def _read_at_most(self, path: str, limit: int) -> bytes:
        """A file's bytes, refused from its listed size (before reading) when over ``limit``,
        and at the first byte past it when the listing understates it."""
        listed = self.fs.info(path).get("size") or 0
        with self.fs.open(path, "rb") as handle:
            data = handle.read(limit + 1) if listed <= limit else b""
        if listed > limit or len(data) > limit:
            raise IntegrityError(
                f"{self.url}: {path.removeprefix(self.root + '/')} is "
                f"{max(listed, len(data))} bytes, over the {limit} byte cap; refusing to read it"
            )
        return data

    def read_manifest(self, aid: AdapterId) -> Manifest:
        path = self._path(*aid.parts, MANIFEST)
        try:
            text = self._read_at_most(path, MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise NotFoundError(f"{aid} is not in {self.url}") from None
        manifest = Manifest.from_json(text, where=f"{self.url}: {aid.relpath}/{MANIFEST}")
        if manifest.id != str(aid):
            raise IntegrityError(f"{self.url}: {aid.relpath} holds a manifest for {manifest.id}")
        yanked = self._path(*aid.parts, YANKED)
        if self.fs.exists(yanked):
            manifest.yanked = True
            with contextlib.suppress(ValueError, OSError, AttributeError, IntegrityError):
                record = json.loads(self._read_at_most(yanked, MAX_MANIFEST_BYTES))
                manifest.yanked_reason = str(record.get("reason", ""))
        return manifest

    def fetch(self, aid: AdapterId, dest: Path) -> None:
        """The entry's files, each refused before it is read unless the store lists it with
        the size its manifest declares (within the cap), and cut off at the first byte past
        that size should the listing be wrong; the manifest, the yank marker and signatures
        are capped like manifests (as :meth:`LocalStore.fetch` does)."""
        manifest = self.read_manifest(aid)
        signed = [n for n in SIGNATURE_FILES if self.fs.exists(self._path(*aid.parts, n))]
        for name in [*manifest.files, MANIFEST, *([YANKED] if manifest.yanked else []), *signed]:
            path = self._path(*aid.parts, name)
            declared = manifest.files.get(name)
            if declared is None:
                (dest / name).write_bytes(self._read_at_most(path, MAX_MANIFEST_BYTES))
                continue
            where = f"{self.url}: {name} of {aid}"
            if declared.bytes > MAX_REMOTE_FILE_BYTES:
                raise IntegrityError(
                    f"{where}: its manifest declares {declared.bytes} bytes, over the "
                    f"{MAX_REMOTE_FILE_BYTES} byte cap; refusing it"
                )
            listed = self.fs.info(path).get("size")
            if listed is not None and listed != declared.bytes:
                raise IntegrityError(
                    f"{where} is {listed} bytes but its manifest declares {declared.bytes}; the "
                    "entry is corrupt or was tampered with (pull it again)"
                )
            with self.fs.open(path, "rb") as handle:
                _copy_at_most(handle, dest / name, declared.bytes, f"{where} streamed")

    def put(self, src: Path, manifest: Manifest) -> None:
        if self.read_only:
            raise _read_only(self.url)
        aid = manifest.adapter_id
        if self.exists(aid):
            raise _conflict(aid, self.url)
        entry = self._path(*aid.parts)
        self._claim(aid, entry)
        # the claim stays after the commit: it is what keeps a late publisher, one that checked
        # for the manifest before this commit, from ever writing into the entry
        if self.exists(aid):
            raise _conflict(aid, self.url)
        try:
            for name in [*manifest.files, *_signature_files(src)]:
                self.fs.put_file(str(Path(src) / name), f"{entry}/{name}")
            self._commit_manifest(aid, entry, manifest.to_json().encode())
        except BaseException:
            if not self.exists(aid):
                with contextlib.suppress(Exception):
                    self.fs.rm(entry, recursive=True)
            raise

    def _commit_manifest(self, aid: AdapterId, entry: str, data: bytes) -> None:
        """Write the manifest, the commit point, so that it appears whole: written aside, then
        moved into place (a rename on file systems)."""
        partial = f"{entry}/.{MANIFEST}.{uuid.uuid4().hex[:12]}"
        self.fs.pipe_file(partial, data)
        self.fs.mv(partial, f"{entry}/{MANIFEST}")

    def _claim(self, aid: AdapterId, entry: str) -> None:
        """Create ``entry/.claim`` exclusively, or raise :class:`ConflictError`.

        Creating and filling the claim are two steps, so each contender first leaves an owner
        mark ``.owner~HOST~PID`` (whole, in one write): gc can then tell a claim left empty by
        a dead publisher from one a live publisher is about to fill.
        """
        claim = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        owner = f"{entry}/{OWNER_PREFIX}{claim['host']}~{claim['pid']}"
        for attempt in range(2):
            self.fs.makedirs(entry, exist_ok=True)
            try:
                self.fs.pipe_file(owner, json.dumps(claim).encode())
                with self.fs.open(f"{entry}/{CLAIM}", "xb") as handle:
                    handle.write(json.dumps(claim).encode())
                return
            except FileNotFoundError:
                if attempt:  # gc removed the empty folder between our mkdir and open
                    raise
            except FileExistsError:
                with contextlib.suppress(Exception):
                    self.fs.rm_file(owner)
                if self.exists(aid):
                    raise _conflict(aid, self.url) from None
                raise ConflictError(
                    f"another publisher is writing {aid} to {self.url} (or died doing so: run "
                    "`adapterhub registry gc`)"
                ) from None

    def _owners_dead(self, entry: str, host: str) -> bool:
        """True when every owner mark in ``entry`` names a dead process on this host."""
        marks = self.fs.glob(f"{entry}/{OWNER_PREFIX}*")
        if not marks:
            return False
        for mark in marks:
            mark_host, _, pid = mark.rsplit("/", 1)[-1][len(OWNER_PREFIX) :].rpartition("~")
            if mark_host != host or not pid.isdigit() or _pid_alive(int(pid)):
                return False
        return True

    def yank(self, aid: AdapterId, reason: str = "") -> None:
        if self.read_only:
            raise _read_only(self.url)
        if not self.read_manifest(aid).yanked:
            self.fs.pipe_file(self._path(*aid.parts, YANKED), _yank_record(reason))

    def gc(self, grace_s: float = DEFAULT_GC_GRACE_S) -> list[str]:
        if self.read_only:
            raise _read_only(self.url)
        removed = []
        now = time.time()
        host = socket.gethostname()
        for claim in self.fs.glob(self._path("*", "*", "*", "*", CLAIM)):
            entry = claim.rsplit("/", 1)[0]
            if self.fs.exists(f"{entry}/{MANIFEST}"):
                continue  # committed: the claim stays
            try:
                info = json.loads(self.fs.cat_file(claim))
                age = now - float(info.get("time", 0))
                dead = info.get("host") == host and not _pid_alive(int(info.get("pid", 0)))
            except (ValueError, OSError, TypeError):
                # an empty claim: its publisher died right after creating it, or is about to
                # write it; give it a few seconds
                try:
                    age = now - self.fs.modified(claim).timestamp()
                except Exception:
                    age = float("inf")
                dead = self._owners_dead(entry, host) or age > grace_s
            if dead or age > grace_s:
                self.fs.rm(entry, recursive=True)
                removed.append(entry)
        # entry folders without claim or manifest: a publisher died between mkdir and claim
        for entry in self.fs.glob(self._path("*", "*", "*", "*")):
            if entry.rstrip("/").split("/")[-4].startswith("."):
                continue
            if not self.fs.isdir(entry):
                continue
            if not self.fs.exists(f"{entry}/{CLAIM}") and not self.fs.exists(f"{entry}/{MANIFEST}"):
                self.fs.rm(entry, recursive=True)
                removed.append(entry)
        return removed


# --------------------------------------------------------------------------- S3

S3_SCHEMES = ("s3://", "s3a://")
PROBE_PREFIX = ".probe~"
_PROBE_MAX_AGE_S = 60.0  # a probe lives for three requests; an older one's publisher died


class S3Store(FsspecStore):
    """A registry on S3 or an S3-compatible server, ``s3://BUCKET[/PREFIX]``, through s3fs
    (the ``s3`` extra).

    Endpoint and credentials come from the standard AWS configuration (``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ...), from fsspec's own
    (``FSSPEC_S3_ENDPOINT_URL``, ``~/.config/fsspec/s3.json``) or from ``storage_options``.

    S3 has no rename and no exclusive create, but it has conditional writes: a PUT with
    ``If-None-Match: *`` that the server refuses (412) when the key exists. The claim and the
    manifest are each one such PUT, so of N racing publishers exactly one wins, and a manifest
    (one PUT) appears whole. A server that ignored the header would let every racer "win", so
    before its first publish a store checks that the server refuses to create one key twice,
    and refuses to publish where it does not.
    """

    def __init__(self, url: str, *, read_only: bool = False, **storage_options: Any) -> None:
        bucket = urlparse(url).netloc
        if not bucket:
            raise UsageError(f"{url!r} names no bucket; write s3://BUCKET[/PREFIX]")
        try:
            # an optional dependency; checked here because fsspec's own message ("Install
            # s3fs to access S3") arrives as a traceback and does not name the extra
            import s3fs  # noqa: F401
        except ImportError:
            raise RegistryError(
                f"{url} needs s3fs, which is not installed: pip install 'adapterhub[s3]'"
            ) from None
        # a registry must see what other processes publish; s3fs would cache listings for good
        storage_options.setdefault("use_listings_cache", False)
        super().__init__(url, read_only=read_only, **storage_options)
        self.bucket = bucket
        self._conditional_writes_ok = False

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """botocore's and s3fs' failures as one line that says what to do."""
        # botocore comes with s3fs (through aiobotocore), so it is optional too
        import botocore.exceptions

        try:
            yield
        except AdapterHubError:
            raise
        except (
            PermissionError,
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
        ) as exc:
            raise AuthError(
                f"{self.url}: cannot {what} ({exc}); set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to credentials that may use the bucket"
            ) from exc
        except botocore.exceptions.ConnectionError as exc:
            raise RegistryError(
                f"cannot reach the S3 endpoint of {self.url} to {what} ({exc}); is it running? "
                "AWS_ENDPOINT_URL sets the endpoint of an S3-compatible server"
            ) from exc
        except FileNotFoundError as exc:
            raise NotFoundError(f"{self.url}: cannot {what}: {exc}") from exc
        except (OSError, botocore.exceptions.BotoCoreError) as exc:
            raise RegistryError(f"{self.url}: cannot {what} ({exc})") from exc

    def ids(self) -> list[AdapterId]:
        with self._errors("list entries"):
            return super().ids()

    def exists(self, aid: AdapterId) -> bool:
        with self._errors(f"look for {aid}"):
            return super().exists(aid)

    def read_manifest(self, aid: AdapterId) -> Manifest:
        with self._errors(f"read {aid}"):
            return super().read_manifest(aid)

    def fetch(self, aid: AdapterId, dest: Path) -> None:
        with self._errors(f"download {aid}"):
            super().fetch(aid, dest)

    def put(self, src: Path, manifest: Manifest) -> None:
        if self.read_only:
            raise _read_only(self.url)
        with self._errors(f"publish {manifest.id}"):
            self._check_conditional_writes()
            super().put(src, manifest)

    def yank(self, aid: AdapterId, reason: str = "") -> None:
        with self._errors(f"yank {aid}"):
            super().yank(aid, reason)

    def gc(self, grace_s: float = DEFAULT_GC_GRACE_S) -> list[str]:
        with self._errors("collect garbage"):
            removed = super().gc(grace_s)
            now = time.time()
            for probe in self.fs.glob(self._path(f"{PROBE_PREFIX}*")):
                if now - self.fs.modified(probe).timestamp() > min(grace_s, _PROBE_MAX_AGE_S):
                    self.fs.rm_file(probe)
                    removed.append(probe)
            return removed

    def _commit_manifest(self, aid: AdapterId, entry: str, data: bytes) -> None:
        # one PUT appears whole, and If-None-Match makes it the commit point only if absent
        try:
            self.fs.pipe_file(f"{entry}/{MANIFEST}", data, mode="create")
        except FileExistsError:
            raise _conflict(aid, self.url) from None

    def _check_conditional_writes(self) -> None:
        """Raise unless the server refuses a second ``If-None-Match: *`` PUT of one key (once
        per store object: three requests on a throwaway key at the store's root)."""
        if self._conditional_writes_ok:
            return
        name = f"{PROBE_PREFIX}{socket.gethostname()}~{os.getpid()}~{uuid.uuid4().hex[:12]}"
        probe = self._path(name)
        try:
            self.fs.pipe_file(probe, b"", mode="create")
            self.fs.pipe_file(probe, b"", mode="create")
        except FileExistsError:
            self._conditional_writes_ok = True
            return
        except FileNotFoundError:
            raise NotFoundError(
                f"{self.url}: bucket {self.bucket!r} does not exist; create it first "
                f"(`aws s3 mb s3://{self.bucket}`), or check AWS_ENDPOINT_URL"
            ) from None
        except PermissionError:
            raise
        except OSError as exc:
            reason = f"it refused the header ({exc})"
        else:
            reason = "it accepted a second create of one key"
        finally:
            with contextlib.suppress(Exception):
                self.fs.rm_file(probe)
        raise RegistryError(
            f"{self.url} does not honour conditional writes (PUT with If-None-Match: *): "
            f"{reason}, so two publishers of one version could both succeed; publish to a server "
            "that supports them (AWS S3, MinIO, Ceph RGW, Cloudflare R2) or to an OCI registry"
        )


# --------------------------------------------------------------------------- OCI

_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
OCI_MEDIA_TYPE = "application/vnd.adapterhub.file.v1"
_OCI_MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
_OCI_CONFIG_TYPE = "application/vnd.unknown.config.v1+json"  # what oras writes; all accept it
_TITLE = "org.opencontainers.image.title"
_YANK_SUFFIX = "__yanked"
_CLAIM_SUFFIX = "__claim"
_CLAIM_ANNOTATION = "io.adapterhub.claim"
CLAIM_FILE = "claim.json"
OCI_CLAIM_WINDOW_S = 2.0
"""The longest a claim may take from sending its read of the claim tag to the answer to its
write (two requests; milliseconds on a LAN). A slower claim cannot be trusted and fails."""
OCI_CLAIM_SETTLE_S = 3.0
"""How long a publisher waits after its claim before reading who holds the claim tag: longer
than the window, so that every claim written by a publisher that also saw no claim has landed."""
OCI_CLAIM_STALE_S = DEFAULT_GC_GRACE_S
"""Age after which a claim whose entry never appeared no longer blocks (its publisher died)."""


def _docker_config_auth(host: str) -> str | None:
    """``auths[host].auth`` from the docker config (``$DOCKER_CONFIG/config.json``)."""
    folder = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    path = Path(folder) / "config.json"
    try:
        auths = json.loads(path.read_text()).get("auths", {})
    except (OSError, ValueError):
        return None
    for key in (host, f"https://{host}", f"http://{host}"):
        auth = (auths.get(key) or {}).get("auth")
        if auth:
            return auth
    return None


def oci_credentials(host: str) -> tuple[str, str] | None:
    """``ADAPTERHUB_OCI_USERNAME``/``ADAPTERHUB_OCI_PASSWORD``, else the docker config's entry."""
    user = os.environ.get("ADAPTERHUB_OCI_USERNAME")
    password = os.environ.get("ADAPTERHUB_OCI_PASSWORD")
    if user and password is not None:
        return user, password
    auth = _docker_config_auth(host)
    if auth:
        with contextlib.suppress(ValueError):
            user, _, password = base64.b64decode(auth).decode().partition(":")
            return user, password
    return None


class OCIStore(Store):
    """Entries as OCI artifacts in one repository: ``oci://host[:port]/team/adapters``.

    Each entry is a tag ``<namespace>__<task>__<lang>__<version>`` whose layers are the entry's
    files (titled by file name). Plain http is used for loopback hosts or when
    ``ADAPTERHUB_OCI_INSECURE=1``. Credentials: ``ADAPTERHUB_OCI_USERNAME`` and
    ``ADAPTERHUB_OCI_PASSWORD``, else the docker config; oras is never allowed to write them.

    **Publishing.** A registry lets anyone move a tag at any time: the distribution API has no
    conditional tag PUT (Debian's docker-registry, Harbor, GHCR and ECR all follow it), so "write
    only if absent" cannot be asked for and a plain push is last-writer-wins. :meth:`put` makes
    the first publisher the only winner with Fischer's timed mutual exclusion on a claim tag,
    ``<tag>__claim``, before it touches the entry's tag:

    1. The entry's tag must be absent.
    2. The claim artifact (host, pid, time and a random nonce, so its digest is ours alone) is
       uploaded; then one GET of the claim tag and, when it holds no live claim, one PUT of our
       claim manifest. A live claim there is :class:`ConflictError`. From sending the GET to the
       PUT's answer must take at most :data:`OCI_CLAIM_WINDOW_S`, else the publish fails
       (measured against docker-registry on loopback, 8 racers on 2 busy cores: 0.18 s median,
       0.28 s at most). A PUT the registry fails is read back: it counts if our claim is there.
    3. After :data:`OCI_CLAIM_SETTLE_S` (longer than the window) the claim tag is read again; a
       digest other than ours is :class:`ConflictError`. Why one winner: every publisher that
       read "no claim" wrote within the window of that read, so by the time anyone reads the
       verdict all those writes have landed and only the last writer sees its own claim; a
       publisher whose GET came after a claim landed backs off in step 2.
    4. The entry's blobs are uploaded; the claim must still be ours and the tag still absent;
       the entry manifest is PUT under the tag (the commit); then the tag and the manifest (by
       its digest) are read back and must be exactly the bytes we wrote, else
       :class:`ConflictError`: a lost race fails, it is never reported as a success.

    Limits. It is a timed protocol: it assumes the registry applies a request between receiving
    it and answering, and that a tag read after a write's answer sees that write (one registry
    on a consistent store; not a registry behind a cache that can serve a stale tag). A
    publisher killed (or failing) after step 2 leaves its claim, which blocks the version until
    it is :data:`OCI_CLAIM_STALE_S` old; a publisher that holds its claim longer than that can
    be overtaken (its re-check before the commit narrows that window, it does not close it).
    Writers that skip the protocol (a plain ``oras push``) can still move the tag; step 4 sees
    that only if it happened before the read-back. Repositories with immutable tags (ECR's tag
    immutability, Harbor's immutability rules) refuse a second write of a tag themselves; a
    refused claim write is read back and reported as a lost race, and an expired claim then
    cannot be taken over. The claim tag stays after the commit, as :class:`FsspecStore`'s
    ``.claim`` does. Every publish waits the settle time once. Reads that get a server error
    are asked again (docker-registry answers 500 to a read of a tag being written).
    """

    claim_window_s = OCI_CLAIM_WINDOW_S
    claim_settle_s = OCI_CLAIM_SETTLE_S
    claim_stale_s = OCI_CLAIM_STALE_S

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "oci" or not parsed.netloc or not parsed.path.strip("/"):
            raise UsageError(f"{url!r} is not an OCI store; write oci://HOST[:PORT]/REPOSITORY")
        self.url = url
        self.read_only = read_only
        self.host = parsed.netloc
        self.repository = parsed.path.strip("/")
        hostname = parsed.hostname or ""
        self.insecure = hostname in _LOOPBACK or os.environ.get("ADAPTERHUB_OCI_INSECURE") == "1"
        self._client = None
        self._basic = False

    @property
    def client(self):
        if self._client is None:
            import oras.auth
            import oras.client

            credentials = oci_credentials(self.host)
            client = oras.client.OrasClient(
                hostname=self.host,
                insecure=self.insecure,
                auth_backend="basic" if credentials else "token",
            )
            # credentials come from us only; oras must neither read nor write docker configs
            client.auth.load_configs = lambda *args, **kwargs: None
            if credentials:
                client.auth.set_basic_auth(*credentials)
                self._basic = True
            else:
                token_flow = client.auth.authenticate_request

                def authenticate(response, headers=None, refresh=False):
                    # anonymous bearer tokens (public GHCR/Harbor repos) are fine; a Basic
                    # challenge without credentials is a clear "log in" error
                    challenge = response.headers.get("Www-Authenticate", "")
                    if not challenge.lower().startswith("bearer"):
                        # oras retries other exceptions for minutes; this one it passes on
                        raise oras.auth.AuthenticationException("credentials required")
                    return token_flow(response, headers, refresh)

                client.auth.authenticate_request = authenticate
            self._client = client
        return self._client

    def _target(self, tag: str) -> str:
        return f"{self.host}/{self.repository}:{tag}"

    def _call(self, what: str, func, *args, **kwargs):
        import oras.auth
        import requests

        try:
            return func(*args, **kwargs)
        except (AdapterHubError, UsageError):
            raise
        except oras.auth.AuthenticationException as exc:
            raise self._auth_error() from exc
        except requests.RequestException as exc:
            raise RegistryError(
                f"cannot reach {self.url} to {what} ({exc}); is it running?"
            ) from exc
        except Exception as exc:
            text = str(exc)
            lowered = text.lower()
            if any(
                s in lowered
                for s in ("401", "403", "unauthorized", "denied", "authentication", "basic_auth")
            ):
                raise self._auth_error() from exc
            if "404" in text or "not found" in lowered or "unknown" in lowered:
                raise NotFoundError(f"{what}: not found in {self.url}") from exc
            raise RegistryError(f"{self.url}: {what} failed ({text[:200]})") from exc

    def _auth_error(self) -> AuthError:
        have = oci_credentials(self.host)
        hint = (
            "the credentials were refused" if have else "it asks for credentials and none are set"
        )
        return AuthError(
            f"{self.url}: {hint}; set ADAPTERHUB_OCI_USERNAME and ADAPTERHUB_OCI_PASSWORD "
            f"(or `docker login {self.host}`)"
        )

    def _request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ):
        """One request to ``/v2/<repository>/<path>``, answered as it comes (no retries)."""
        import oras.provider

        client = self.client
        scheme = "http" if self.insecure else "https"
        # the undecorated request: oras' retry decorator would sleep for minutes on a refusal,
        # and the claim's read and write must each be one request
        do_request = getattr(oras.provider.Registry.do_request, "__wrapped__", None)
        do_request = do_request or oras.provider.Registry.do_request
        sent = {"Accept": _OCI_MANIFEST_TYPE, **(headers or {})}
        if self._basic:  # skip the 401 round trip a Basic registry answers first
            sent.update(client.auth.get_auth_header())
        response = do_request(
            client,
            f"{scheme}://{self.host}/v2/{self.repository}/{path}",
            method,
            data=data,
            headers=sent,
            stream=stream,
        )
        if response.status_code in (401, 403):
            raise self._auth_error()
        return response

    def _get(self, path: str, *, stream: bool = False) -> tuple[Any, float]:
        """A GET and the monotonic time its answering attempt was sent. A server error is asked
        again a few times: docker-registry answers 500 to a read of a tag that another
        publisher is writing at that moment."""
        delays = iter((0.05, 0.1, 0.2, 0.4, 0.8))
        while True:
            sent = time.monotonic()
            response = self._request("GET", path, stream=stream)
            delay = next(delays, None) if response.status_code >= 500 else None
            if delay is None:
                return response, sent
            response.close()
            time.sleep(delay)

    def _tags(self) -> list[str]:
        def tags():
            response, _ = self._get("tags/list")
            if response.status_code == 404:
                return []
            response.raise_for_status()
            return list(response.json().get("tags") or [])

        return self._call("list tags", tags)

    def versions(self, base: AdapterId) -> list[tuple[Version, bool]]:
        tags = set(self._tags())
        found = []
        for tag in tags:
            aid = AdapterId.from_oci_tag(tag)
            if aid is not None and aid.base == base and aid.version is not None:
                found.append((aid.version, tag + _YANK_SUFFIX in tags))
        return found

    def ids(self) -> list[AdapterId]:
        found = []
        for tag in self._tags():
            aid = AdapterId.from_oci_tag(tag)
            if aid is not None:
                found.append(aid)
        return found

    def _read_tag(self, reference: str) -> tuple[str, dict] | None:
        """``(digest, manifest)`` of a tag (or digest) as the registry holds it now, the digest
        computed from the bytes it sent; None when absent."""
        return self._read_tag_sent(reference)[0]

    def _read_tag_sent(self, reference: str) -> tuple[tuple[str, dict] | None, float]:
        """:meth:`_read_tag` and when the request that answered it was sent."""

        def get():
            response, sent = self._get(f"manifests/{reference}", stream=True)
            with response:
                if response.status_code == 404:
                    return None, sent
                response.raise_for_status()
                body = _read_capped(response, MAX_MANIFEST_BYTES, f"manifest {reference}")
            try:
                manifest = json.loads(body)
            except ValueError:
                raise IntegrityError(f"{self.url}: {reference} is not a JSON manifest") from None
            if not isinstance(manifest, dict):
                raise IntegrityError(f"{self.url}: {reference} is not a JSON manifest")
            return (_digest(body), manifest), sent

        return self._call(f"read {reference}", get)

    def _manifest(self, tag: str) -> dict | None:
        found = self._read_tag(tag)
        return None if found is None else found[1]

    def exists(self, aid: AdapterId) -> bool:
        return self._manifest(aid.oci_tag) is not None

    def _layers(self, aid: AdapterId, tag: str | None = None) -> dict[str, dict]:
        oci_manifest = self._manifest(tag or aid.oci_tag)
        if oci_manifest is None:
            raise NotFoundError(f"{aid} is not in {self.url}")
        layers = {}
        for layer in oci_manifest.get("layers") or []:
            if not isinstance(layer, dict):
                raise IntegrityError(f"{self.url}: {aid} has a malformed layer")
            title = (layer.get("annotations") or {}).get(_TITLE, "")
            if title not in (*ENTRY_FILES, YANKED):
                raise IntegrityError(f"{self.url}: {aid} carries an unexpected file {title!r}")
            if title in layers:
                raise IntegrityError(f"{self.url}: {aid} carries {title} twice")
            size = layer.get("size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise IntegrityError(f"{self.url}: {title} of {aid} has no valid size")
            if size > MAX_REMOTE_FILE_BYTES:
                raise IntegrityError(
                    f"{self.url}: {title} of {aid} is {size} bytes, over the "
                    f"{MAX_REMOTE_FILE_BYTES} byte cap; refusing to download it"
                )
            layers[title] = layer
        return layers

    def _download(self, layer: dict, dest: Path) -> None:
        """Stream a blob into ``dest``: at most the layer's size is read (a server that sends
        more, or announces more, is refused before the excess is read) and its sha256 must be
        the layer's digest."""
        digest = str(layer.get("digest", ""))
        size = int(layer["size"])
        if not digest.startswith("sha256:"):
            raise IntegrityError(f"{self.url}: layer digest {digest!r} is not sha256")

        def download():
            response, _ = self._get(f"blobs/{digest}", stream=True)
            with response:
                response.raise_for_status()
                announced = response.headers.get("Content-Length")
                if announced is not None and announced.isdigit() and int(announced) > size:
                    raise IntegrityError(
                        f"{self.url}: blob {digest} is {announced} bytes, but its layer says "
                        f"{size}; refusing it unread"
                    )
                hasher = hashlib.sha256()
                received = 0
                with open(dest, "xb") as handle:
                    for chunk in response.iter_content(1 << 20):
                        received += len(chunk)
                        if received > size:
                            raise IntegrityError(
                                f"{self.url}: blob {digest} is longer than its layer's {size} "
                                "bytes; refusing it"
                            )
                        hasher.update(chunk)
                        handle.write(chunk)
            if received != size or f"sha256:{hasher.hexdigest()}" != digest:
                raise IntegrityError(f"{self.url}: blob {digest} does not match its digest")

        self._call(f"download {digest}", download)

    def _entry_manifest(self, aid: AdapterId, layers: dict[str, dict], folder: Path) -> Manifest:
        if MANIFEST not in layers:
            raise IntegrityError(f"{self.url}: {aid} has no manifest.json layer")
        if layers[MANIFEST]["size"] > MAX_MANIFEST_BYTES:
            raise IntegrityError(f"{self.url}: the manifest.json of {aid} is over the size cap")
        path = folder / MANIFEST
        self._download(layers[MANIFEST], path)
        manifest = Manifest.from_json(path.read_bytes(), where=f"{self.url} {aid}")
        if manifest.id != str(aid):
            raise IntegrityError(
                f"{self.url}: tag {aid.oci_tag} holds a manifest for {manifest.id}, not {aid}; "
                "the entry was tampered with"
            )
        return manifest

    def read_manifest(self, aid: AdapterId) -> Manifest:
        layers = self._layers(aid)
        with tempfile.TemporaryDirectory() as tmp:
            manifest = self._entry_manifest(aid, layers, Path(tmp))
        manifest.yanked = self._manifest(aid.oci_tag + _YANK_SUFFIX) is not None
        return manifest

    def manifests(self) -> list[Manifest]:
        tags = set(self._tags())
        found = []
        for tag in tags:
            aid = AdapterId.from_oci_tag(tag)
            if aid is None:
                continue
            try:
                found.append(self.read_manifest(aid))
            except IntegrityError as exc:
                log.warning("skipping %s in %s: %s", aid, self.url, exc)
        return found

    def fetch(self, aid: AdapterId, dest: Path) -> None:
        """The entry's files; each layer's size and digest must be what the entry's manifest
        declares for that file before a byte of it is downloaded."""
        layers = self._layers(aid)
        manifest = self._entry_manifest(aid, layers, dest)
        missing = sorted(set(manifest.files) - set(layers))
        if missing:
            raise IntegrityError(f"{self.url}: {aid} lacks the files {missing} its manifest lists")
        for name, layer in layers.items():
            if name in (MANIFEST, YANKED):
                continue
            if name in SIGNATURE_FILES:  # beside the manifest, not in it: capped like it
                if layer["size"] > MAX_MANIFEST_BYTES:
                    raise IntegrityError(f"{self.url}: {name} of {aid} is over the size cap")
                self._download(layer, dest / name)
                continue
            declared = manifest.files.get(name)
            if declared is None:
                raise IntegrityError(
                    f"{self.url}: {aid} carries {name}, which its manifest does not list"
                )
            if (
                layer["size"] != declared.bytes
                or layer.get("digest") != f"sha256:{declared.sha256}"
            ):
                raise IntegrityError(
                    f"{self.url}: {name} of {aid} is a {layer['size']} byte blob "
                    f"{layer.get('digest')}, but the manifest declares {declared.bytes} bytes "
                    f"with sha256 {declared.sha256[:12]}…; refusing to download it"
                )
            self._download(layer, dest / name)
        if self._manifest(aid.oci_tag + _YANK_SUFFIX) is not None:
            (dest / YANKED).write_bytes(_yank_record(""))

    # writing

    def _upload(self, path: Path, title: str, tag: str) -> dict:
        """Upload one file as a blob (content-addressed: invisible until a manifest names it)
        and return its layer descriptor."""
        digest, size = sha256_file(path)
        layer = {"mediaType": OCI_MEDIA_TYPE, "size": size, "digest": f"sha256:{digest}"}
        if title:
            layer["annotations"] = {_TITLE: title}

        def upload():
            response = self.client.upload_blob(str(path), self._target(tag), layer)
            if response.status_code in (401, 403):
                raise self._auth_error()
            if response.status_code not in (200, 201, 202):
                raise RegistryError(
                    f"{self.url}: uploading {title or 'the config'} was refused "
                    f"(HTTP {response.status_code})"
                )

        self._call(f"upload {title or 'the config'}", upload)
        return layer

    def _artifact(self, tag: str, folder: Path, names: list[str], annotations: dict) -> bytes:
        """Upload ``names`` from ``folder`` and return the manifest naming them, as the bytes
        that will be PUT (so the digest we compare is the digest of exactly these bytes)."""
        config = folder / ".oci-config.json"
        config.write_bytes(b"{}")
        manifest = {
            "schemaVersion": 2,
            "mediaType": _OCI_MANIFEST_TYPE,
            "config": {**self._upload(config, "", tag), "mediaType": _OCI_CONFIG_TYPE},
            "layers": [self._upload(folder / name, name, tag) for name in names],
            "annotations": annotations,
        }
        return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()

    def _put_manifest(self, tag: str, body: bytes) -> str:
        """PUT ``body`` under ``tag``; returns its digest."""

        def put():
            response = self._request(
                "PUT", f"manifests/{tag}", data=body, headers={"Content-Type": _OCI_MANIFEST_TYPE}
            )
            if response.status_code not in (200, 201):
                raise RegistryError(
                    f"{self.url}: the registry refused the manifest of {tag} "
                    f"(HTTP {response.status_code}: {response.text[:200]})"
                )

        self._call(f"push {tag}", put)
        return _digest(body)

    def _claim_is_live(self, claim: dict) -> bool:
        """A claim blocks others unless its record says it is older than the stale age (a
        claim without a readable record blocks: it is not ours to judge)."""
        try:
            record = json.loads((claim.get("annotations") or {})[_CLAIM_ANNOTATION])
            return time.time() - float(record["claimed_at"]) < self.claim_stale_s
        except (KeyError, TypeError, ValueError):
            return True

    def _claim(self, aid: AdapterId, folder: Path) -> str:
        """Steps 2 and 3 of the protocol (see the class): our claim's digest, or ConflictError."""
        tag = aid.oci_tag + _CLAIM_SUFFIX
        record = {
            "id": str(aid),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "nonce": uuid.uuid4().hex,
            "claimed_at": time.time(),
        }
        (folder / CLAIM_FILE).write_text(json.dumps(record))
        body = self._artifact(tag, folder, [CLAIM_FILE], {_CLAIM_ANNOTATION: json.dumps(record)})
        held, started = self._read_tag_sent(tag)
        if held is not None and self._claim_is_live(held[1]):
            raise self._claimed_error(aid, held[1])
        ours = _digest(body)
        try:
            self._put_manifest(tag, body)
        except AuthError:
            raise
        except RegistryError:
            # docker-registry may fail one of two PUTs of one tag at the same moment; the
            # request is over, so the tag shows whether ours landed (then go on: it landed
            # within the window measured below)
            now = self._read_tag(tag)
            if now is None:
                raise
            if now[0] != ours:
                raise self._lost(aid) from None
        took = time.monotonic() - started
        if took > self.claim_window_s:
            raise ConflictError(
                f"claiming {aid} in {self.url} took {took:.1f} s, over the "
                f"{self.claim_window_s:g} s that make OCI publishing race-free, so another "
                "publisher may hold it; nothing was published. Check with `adapterhub registry "
                f"show {aid} --from {self.url}`; if it is absent, publish another version (this "
                f"one stays claimed for {self.claim_stale_s:g} s)"
            )
        time.sleep(self.claim_settle_s)
        now = self._read_tag(tag)
        if now is None or now[0] != ours:
            raise self._lost(aid)
        return ours

    def _lost(self, aid: AdapterId) -> ConflictError:
        return ConflictError(
            f"another publisher claimed {aid} in {self.url} at the same time and won; nothing "
            "was published. Published versions are immutable: publish a new version (bump the "
            "patch number)"
        )

    def _claimed_error(self, aid: AdapterId, claim: dict) -> ConflictError:
        if self.exists(aid):
            return _conflict(aid, self.url)
        try:
            record = json.loads((claim.get("annotations") or {})[_CLAIM_ANNOTATION])
            who = f"{record['host']} pid {record['pid']} at {_utc(record['claimed_at'])}"
        except (KeyError, TypeError, ValueError):
            who = "another publisher"
        return ConflictError(
            f"{aid} is being published to {self.url} by {who}, or that publisher died: the "
            f"claim expires {self.claim_stale_s:g} s after it was made. Check with `adapterhub "
            f"registry show {aid} --from {self.url}`, or publish another version"
        )

    def put(self, src: Path, manifest: Manifest) -> None:
        """Publish with the claim protocol of the class docstring: exactly one of racing
        publishers succeeds, every other one gets :class:`ConflictError`."""
        if self.read_only:
            raise _read_only(self.url)
        aid = manifest.adapter_id
        tag = aid.oci_tag
        if self.exists(aid):
            raise _conflict(aid, self.url)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            signed = _signature_files(src)
            names = [*manifest.files, *signed, MANIFEST]
            for name in [*manifest.files, *signed]:
                shutil.copyfile(Path(src) / name, folder / name)
            (folder / MANIFEST).write_text(manifest.to_json())
            claim = self._claim(aid, folder)
            body = self._artifact(
                tag, folder, names, {_TITLE: str(aid), "io.adapterhub.id": str(aid)}
            )
            held = self._read_tag(tag + _CLAIM_SUFFIX)
            if held is None or held[0] != claim:
                raise ConflictError(
                    f"{aid}: this publisher's claim in {self.url} was taken over (it held it "
                    f"for over {self.claim_stale_s:g} s); nothing was published"
                )
            if self.exists(aid):
                raise _conflict(aid, self.url)
            ours = self._put_manifest(tag, body)  # the commit
            for reference in (tag, ours):
                found = self._read_tag(reference)
                if found is None or found[0] != ours:
                    raise ConflictError(
                        f"{aid} in {self.url} is not what this publisher wrote (the tag now "
                        f"names {found[0] if found else 'nothing'}, ours was {ours}): a writer "
                        "outside adapterhub's claim protocol moved it. Check the entry with "
                        f"`adapterhub registry show {aid} --from {self.url}`"
                    )

    def yank(self, aid: AdapterId, reason: str = "") -> None:
        if self.read_only:
            raise _read_only(self.url)
        if not self.exists(aid):
            raise NotFoundError(f"{aid} is not in {self.url}")
        tag = aid.oci_tag + _YANK_SUFFIX
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / YANKED).write_bytes(_yank_record(reason))
            self._put_manifest(
                tag, self._artifact(tag, Path(tmp), [YANKED], {"io.adapterhub.id": str(aid)})
            )


def _read_capped(response: Any, cap: int, what: str) -> bytes:
    """A response body of at most ``cap`` bytes, refused (unread past the cap) when longer."""
    announced = response.headers.get("Content-Length")
    if announced is not None and announced.isdigit() and int(announced) > cap:
        raise IntegrityError(f"{what} is {announced} bytes, over the {cap} byte cap")
    body = bytearray()
    for chunk in response.iter_content(1 << 16):
        body += chunk
        if len(body) > cap:
            raise IntegrityError(f"{what} is over the {cap} byte cap")
    return bytes(body)


def _digest(body: bytes) -> str:
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(epoch)))


# --------------------------------------------------------------------------- factory


def open_store(location: str | Path | Store | None = None, *, read_only: bool = False) -> Store:
    """A store from a path, a URL (``oci://``, ``file://``, ``memory://``, ``s3://``, ...) or
    ``None`` for the local registry (``settings.registry_dir()``)."""
    if isinstance(location, Store):
        return location
    if location is None:
        from adapterhub import settings

        return LocalStore(settings.registry_dir(), read_only=read_only)
    text = str(location)
    if text.startswith("oci://"):
        return OCIStore(text, read_only=read_only)
    if text.startswith(S3_SCHEMES):
        return S3Store(text, read_only=read_only)
    if "://" in text:
        return FsspecStore(text, read_only=read_only)
    return LocalStore(Path(text), read_only=read_only)
