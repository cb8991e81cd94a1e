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
- :class:`OCIStore` uploads the blobs first; the manifest PUT under the entry's tag is the commit.

Yanking writes a marker (``yanked.json``, or an OCI tag ``<tag>__yanked``); the manifest and the
files of a published version never change.
"""

from __future__ import annotations

import base64
import contextlib
import errno
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
from adapterhub.registry.manifest import ENTRY_FILES, MANIFEST, YANKED, Manifest, utc_now

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
        with open(dst, "xb") as fout:
            copied = 0
            while chunk := fin.read(min(1 << 20, size + 1 - copied)):
                copied += len(chunk)
                if copied > size:
                    raise IntegrityError(f"{src} grew past its declared {size} bytes; refusing it")
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
    def _committed(self) -> Iterator[tuple[AdapterId, Path]]:
        """``(id, manifest path)`` of every committed entry, by its folder names."""
        if not self.root.is_dir():
            return
        for manifest in self.root.glob(f"*/*/*/*/{MANIFEST}"):
            parts = manifest.parent.relative_to(self.root).parts
            if parts[0].startswith("."):
                continue
            aid = AdapterId.from_parts(*parts)
            if aid is not None:
                yield aid, manifest

    @staticmethod
    def _stamp(manifest: Path) -> str | None:
        """What changes when an entry appears, is replaced or is yanked: its manifest's inode,
        mtime and size and its yank marker's mtime; None when the manifest is gone."""
        try:
            info = manifest.stat()
        except FileNotFoundError:
            return None
        try:
            yanked = (manifest.parent / YANKED).stat().st_mtime_ns
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
        for name in [*manifest.files, MANIFEST, *([YANKED] if manifest.yanked else [])]:
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
        in_place = src.parent == self.root / TMP_DIR and {p.name for p in src.iterdir()} == set(
            manifest.files
        )
        staging = src if in_place else self.staging(aid.oci_tag)
        try:
            if in_place:
                for name in manifest.files:
                    with open(staging / name, "rb+") as handle:
                        os.fsync(handle.fileno())
            else:
                for name in manifest.files:
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

    def read_manifest(self, aid: AdapterId) -> Manifest:
        path = self._path(*aid.parts, MANIFEST)
        try:
            text = self.fs.cat_file(path)
        except FileNotFoundError:
            raise NotFoundError(f"{aid} is not in {self.url}") from None
        manifest = Manifest.from_json(text, where=f"{self.url}: {aid.relpath}/{MANIFEST}")
        if manifest.id != str(aid):
            raise IntegrityError(f"{self.url}: {aid.relpath} holds a manifest for {manifest.id}")
        yanked = self._path(*aid.parts, YANKED)
        if self.fs.exists(yanked):
            manifest.yanked = True
            with contextlib.suppress(ValueError, OSError):
                manifest.yanked_reason = str(json.loads(self.fs.cat_file(yanked)).get("reason", ""))
        return manifest

    def fetch(self, aid: AdapterId, dest: Path) -> None:
        manifest = self.read_manifest(aid)
        for name in [*manifest.files, MANIFEST, *([YANKED] if manifest.yanked else [])]:
            path = self._path(*aid.parts, name)
            info = self.fs.info(path)
            if (info.get("size") or 0) > MAX_REMOTE_FILE_BYTES:
                raise IntegrityError(f"{self.url}: {name} of {aid} is over the size cap")
            self.fs.get_file(path, str(dest / name))

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
            for name in manifest.files:
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
_YANK_SUFFIX = "__yanked"


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
    """

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
        except (RegistryError, UsageError):
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

    def _get(self, path: str, *, stream: bool = False):
        import oras.provider

        scheme = "http" if self.insecure else "https"
        # the undecorated request: oras' retry decorator would sleep for minutes on a refusal
        do_request = getattr(oras.provider.Registry.do_request, "__wrapped__", None)
        do_request = do_request or oras.provider.Registry.do_request
        response = do_request(
            self.client,
            f"{scheme}://{self.host}/v2/{self.repository}/{path}",
            "GET",
            headers={
                "Accept": "application/vnd.oci.image.manifest.v1+json",
            },
            stream=stream,
        )
        if response.status_code in (401, 403):
            raise self._auth_error()
        return response

    def _tags(self) -> list[str]:
        def tags():
            response = self._get("tags/list")
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

    def _manifest(self, tag: str) -> dict | None:
        def get():
            response = self._get(f"manifests/{tag}")
            if response.status_code == 404:
                return None
            response.raise_for_status()
            return response.json()

        return self._call(f"read {tag}", get)

    def exists(self, aid: AdapterId) -> bool:
        return self._manifest(aid.oci_tag) is not None

    def _layers(self, aid: AdapterId, tag: str | None = None) -> dict[str, dict]:
        oci_manifest = self._manifest(tag or aid.oci_tag)
        if oci_manifest is None:
            raise NotFoundError(f"{aid} is not in {self.url}")
        layers = {}
        for layer in oci_manifest.get("layers", []):
            title = (layer.get("annotations") or {}).get("org.opencontainers.image.title", "")
            if title not in (*ENTRY_FILES, YANKED):
                raise IntegrityError(f"{self.url}: {aid} carries an unexpected file {title!r}")
            if int(layer.get("size", 0)) > MAX_REMOTE_FILE_BYTES:
                raise IntegrityError(f"{self.url}: {title} of {aid} is over the size cap")
            layers[title] = layer
        return layers

    def _download(self, layer: dict, dest: Path) -> None:
        import hashlib

        digest = str(layer.get("digest", ""))
        if not digest.startswith("sha256:"):
            raise IntegrityError(f"{self.url}: layer digest {digest!r} is not sha256")

        def download():
            response = self._get(f"blobs/{digest}", stream=True)
            response.raise_for_status()
            hasher = hashlib.sha256()
            size = 0
            with open(dest, "xb") as handle:
                for chunk in response.iter_content(1 << 20):
                    size += len(chunk)
                    if size > MAX_REMOTE_FILE_BYTES:
                        raise IntegrityError(f"{self.url}: blob {digest} is over the size cap")
                    hasher.update(chunk)
                    handle.write(chunk)
            if f"sha256:{hasher.hexdigest()}" != digest:
                raise IntegrityError(f"{self.url}: blob {digest} does not match its digest")

        self._call(f"download {digest}", download)

    def read_manifest(self, aid: AdapterId) -> Manifest:
        layers = self._layers(aid)
        if MANIFEST not in layers:
            raise IntegrityError(f"{self.url}: {aid} has no manifest.json layer")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / MANIFEST
            self._download(layers[MANIFEST], path)
            manifest = Manifest.from_json(path.read_bytes(), where=f"{self.url} {aid}")
        if manifest.id != str(aid):
            raise IntegrityError(
                f"{self.url}: tag {aid.oci_tag} holds a manifest for {manifest.id}"
            )
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
        layers = self._layers(aid)
        for name, layer in layers.items():
            self._download(layer, dest / name)
        if self._manifest(aid.oci_tag + _YANK_SUFFIX) is not None:
            (dest / YANKED).write_bytes(_yank_record(""))

    def _push(self, tag: str, folder: Path, names: list[str], annotations: dict) -> None:
        files = [f"{folder / name}:{OCI_MEDIA_TYPE}" for name in names]

        def push():
            response = self.client.push(
                target=self._target(tag),
                files=files,
                disable_path_validation=True,
                manifest_annotations=annotations,
                quiet=True,
            )
            if response.status_code in (401, 403):
                raise self._auth_error()

        self._call(f"push {tag}", push)

    def put(self, src: Path, manifest: Manifest) -> None:
        if self.read_only:
            raise _read_only(self.url)
        aid = manifest.adapter_id
        if self.exists(aid):
            raise _conflict(aid, self.url)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            for name in manifest.files:
                shutil.copyfile(Path(src) / name, folder / name)
            (folder / MANIFEST).write_text(manifest.to_json())
            # OCI tags can be overwritten: this check-then-push keeps honest publishers from
            # clobbering a version, but unlike the file stores it is not race-free.
            self._push(
                aid.oci_tag,
                folder,
                [*manifest.files, MANIFEST],
                {"org.opencontainers.image.title": str(aid), "io.adapterhub.id": str(aid)},
            )

    def yank(self, aid: AdapterId, reason: str = "") -> None:
        if self.read_only:
            raise _read_only(self.url)
        if not self.exists(aid):
            raise NotFoundError(f"{aid} is not in {self.url}")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / YANKED).write_bytes(_yank_record(reason))
            self._push(
                aid.oci_tag + _YANK_SUFFIX, Path(tmp), [YANKED], {"io.adapterhub.id": str(aid)}
            )


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
