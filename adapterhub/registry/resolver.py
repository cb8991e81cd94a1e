"""One answer to "which entry does this id mean, and where is it?", for every command and the server.

``registry show/pull/push/export``, ``eval`` (and its matrix), ``train --stack-lang``, ``serve``'s
preload and every adapter the serving runtime loads go through :class:`Resolver`, so that an id
means the same entry everywhere, and each of them reports the full id and the store it came from.

Precedence:

1. Stores, in this order: the local store (``$ADAPTERHUB_HOME/registry``, or ``--store``), then
   the remotes in the order ``adapterhub registry remote list`` shows them (remotes.json), then
   the project's built-in store (``project``).
2. Namespace: the one written. Without one, the user's namespace (``adapterhub config set
   namespace NAME``, or ``$ADAPTERHUB_NAMESPACE``; default ``local``), then ``adapterhub``, the
   namespace of the built-in adapters.
3. Version: the one written. Without one, the highest version (releases before prereleases) that
   some store holds and no store marks as yanked, in the first namespace of (2) that has one;
   a version the promotion gate did not promote (it regressed on its yardstick,
   :mod:`adapterhub.registry.promotion`) is skipped while an older one is not.
   Patterns and references without a version never mean a yanked version; one asked for by its
   version (``sentiment/de:1.1.0``, ``sentiment/de@team:1.1.0``) can be shown, pulled and
   exported, but is never served (:class:`YankedError`).
4. Copy: the entry is read from the first store of (1) that holds it. Every other store that holds
   the same exact id must hold the same bytes (the sha256 of every file in the manifest);
   otherwise resolving it is a :class:`ConflictError` that names both stores, never a silent
   shadow.

A store that cannot be read (a remote that is down, a broken remotes.json) is skipped with a
warning; resolution fails on it only when no readable store holds what was asked for.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapterhub import settings
from adapterhub.errors import (
    AdapterHubError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    YankedError,
)
from adapterhub.registry.ids import BUILTIN_NAMESPACE, AdapterId, Version, newest, user_namespace
from adapterhub.registry.manifest import MANIFEST, YANKED, Manifest
from adapterhub.registry.remotes import PROJECT_REMOTE, list_remotes, project_registry_dir
from adapterhub.registry.stores import LocalStore, Store, open_store

log = logging.getLogger(__name__)

LOCAL = "local"
"""The name resolution gives the local store (whatever folder ``--store`` made it)."""

PRECEDENCE = (
    "Resolution (the same in every command and the server): stores are consulted as the local "
    "store, then the remotes in their configured order, then the built-in project store; an id "
    "without a namespace means your namespace (`adapterhub config set namespace`, default "
    "`local`), then `adapterhub`; without a version, the newest version no store marks as "
    "yanked. The same exact id with different bytes in two stores is an error naming both."
)
"""One paragraph for ``--help`` texts."""


def is_project_store(store: Store) -> bool:
    """Whether ``store`` is the project's built-in store, the one home of ``adapterhub/...``."""
    project = project_registry_dir()
    return (
        project is not None
        and isinstance(store, LocalStore)
        and store.root == Path(project).expanduser().resolve()
    )


def default_namespaces() -> list[str]:
    """The namespaces of a reference that names none, in order (precedence rule 2)."""
    return [user_namespace(), BUILTIN_NAMESPACE]


def namespaces_for(aid: AdapterId) -> list[str]:
    """The namespaces a reference is looked up in, in order."""
    return [aid.namespace] if aid.namespace is not None else default_namespaces()


@dataclass(frozen=True)
class NamedStore:
    """A store and the name resolution reports for it: ``local``, a remote's name, ``project``,
    or the URL it was given as."""

    name: str
    store: Store

    @property
    def url(self) -> str:
        return self.store.url

    def __str__(self) -> str:
        return self.name if self.name == self.url else f"{self.name} ({self.url})"


def name_of(store: Store) -> str:
    if is_project_store(store):
        return PROJECT_REMOTE
    if isinstance(store, LocalStore) and store.root == settings.registry_dir().resolve():
        return LOCAL
    return store.url


def named(location: str | Path | Store | NamedStore) -> NamedStore:
    """A remote by its name in ``remote list``, or a store given as a URL, a path or an object."""
    if isinstance(location, NamedStore):
        return location
    if isinstance(location, Store):
        return NamedStore(name_of(location), location)
    text = str(location)
    remotes = list_remotes()
    if text in remotes:
        info = remotes[text]
        return NamedStore(text, open_store(info["url"], read_only=bool(info.get("read_only"))))
    if "://" in text or "/" in text or text.startswith(".") or Path(text).is_dir():
        return named(open_store(text))
    raise NotFoundError(
        f"no remote named {text!r}; add it with `adapterhub registry remote add {text} URL` "
        "or pass a URL or a folder"
    )


@dataclass(frozen=True)
class Resolution:
    """What a reference resolved to: the exact id, the store it is read from, and its manifest."""

    id: AdapterId
    """The full exact id ``task/lang@namespace:version``."""
    source: NamedStore
    """The first store (in precedence order) that holds it: where it is read from."""
    holders: tuple[NamedStore, ...]
    """Every consulted store that holds it (identical bytes in each), ``source`` first."""
    yanked: bool = False
    yanked_reason: str = ""
    unchecked: tuple[str, ...] = ()
    """Stores that could not be read while resolving (each with its error)."""
    _load: Callable[[], Manifest] | None = field(default=None, repr=False, compare=False)

    @property
    def store(self) -> Store:
        return self.source.store

    @property
    def store_name(self) -> str:
        return self.source.name

    @property
    def store_url(self) -> str:
        return self.source.url

    @functools.cached_property
    def manifest(self) -> Manifest:
        """The entry's manifest as its source store holds it, with the yank state resolution
        found (a yank in any store counts)."""
        loaded = self._load() if self._load else self.store.read_manifest(self.id)
        return loaded.model_copy(
            update={"yanked": self.yanked, "yanked_reason": self.yanked_reason}
        )

    @property
    def path(self) -> Path | None:
        """The entry's folder when its source is a local directory store, else None."""
        if isinstance(self.store, LocalStore):
            return self.store.entry_path(self.id)
        return None

    def describe(self) -> str:
        """``sentiment/de@adapterhub:1.2.0 from project (/…/registry)`` (+ yank state)."""
        text = f"{self.id} from {self.source}"
        if self.yanked:
            text += f" [yanked{': ' + self.yanked_reason if self.yanked_reason else ''}]"
        return text

    def summary(self) -> dict[str, Any]:
        """The JSON fields every command reports about what it used."""
        return {
            "id": str(self.id),
            "store": self.store_name,
            "store_url": self.store_url,
            "stores": [h.name for h in self.holders],
            "yanked": self.yanked,
        }

    def require_servable(self) -> Resolution:
        """Itself, or :class:`YankedError` when the version is yanked."""
        if self.yanked:
            raise YankedError(
                f"{self.id} was yanked"
                + (f" ({self.yanked_reason})" if self.yanked_reason else "")
                + f" in {self.source}; it is never served: use "
                f"{self.id.base} for the newest version that is not yanked"
            )
        return self


@dataclass
class Listed:
    """One entry of ``registry list``: an exact id and every store holding it."""

    manifest: Manifest
    holders: list[NamedStore]
    conflict: bool = False

    def row(self) -> dict[str, Any]:
        return {
            **self.manifest.summary(),
            "store": self.holders[0].name,
            "store_url": self.holders[0].url,
            "stores": [h.name for h in self.holders],
            "conflict": self.conflict,
        }


def _files(manifest: Manifest) -> dict[str, str]:
    return {name: info.sha256 for name, info in manifest.files.items()}


def _conflict(aid: AdapterId, first: NamedStore, other: NamedStore, a: Manifest, b: Manifest):
    ours, theirs = _files(a), _files(b)
    differing = sorted(n for n in set(ours) | set(theirs) if ours.get(n) != theirs.get(n))
    copies = [
        s for s in (first, other) if isinstance(s.store, LocalStore) and not s.store.read_only
    ]
    hint = (
        f"remove the wrong copy (the one in {copies[0].name} is {copies[0].store.entry_path(aid)})"
        if copies
        else "remove the wrong copy"
    )
    return ConflictError(
        f"{aid} differs between {first} and {other} (other sha256 for {', '.join(differing)}); "
        f"an exact id names one set of bytes, so one of them is not the published entry: {hint}, "
        "or name the store to use with --from"
    )


class Resolver:
    """The stores of one command (or one server) in precedence order, and the rules above.

    ``Resolver.default()`` is the local store plus the configured remotes and the project store,
    read from remotes.json on first need (an exact id the local store holds still resolves when
    that file is broken, with a warning); ``Resolver.only(store)`` consults one store.
    Manifests, immutable once published, are read once per resolver; yank states every time.
    """

    def __init__(
        self,
        first: Sequence[NamedStore],
        upstreams: Callable[[], list[NamedStore]] | Sequence[NamedStore] = (),
    ) -> None:
        self._first = list(first)
        self._upstreams_factory = upstreams if callable(upstreams) else None
        self._upstreams: list[NamedStore] | None = None if callable(upstreams) else list(upstreams)
        self._upstream_error: AdapterHubError | None = None
        self._manifests: dict[tuple[str, str], Manifest] = {}

    # ------------------------------------------------------------------ construction

    @classmethod
    def default(
        cls,
        store: str | Path | Store | None = None,
        *,
        sources: Sequence[Store | str] | None = None,
    ) -> Resolver:
        """The local store (``store``; a remote URL there is consulted right after the default
        local store, which caches what is pulled from it), then ``sources`` or the configured
        remotes and the project store."""
        target = open_store(store)
        if isinstance(target, LocalStore):
            first = [NamedStore(LOCAL, target)]
        else:
            first = [NamedStore(LOCAL, open_store(None)), NamedStore(target.url, target)]
        if sources is not None:
            return cls(first, [named(s) for s in sources])
        return cls(first, configured_upstreams)

    @classmethod
    def only(cls, location: str | Path | Store | NamedStore | None) -> Resolver:
        """One store: a remote name, a URL or path, or None for the local store."""
        return cls([named(location) if location is not None else NamedStore(LOCAL, open_store())])

    # ------------------------------------------------------------------ stores

    def stores(self) -> list[NamedStore]:
        """The readable stores in precedence order (duplicates of one URL once)."""
        if self._upstreams is None and self._upstreams_factory is not None:
            try:
                self._upstreams = self._upstreams_factory()
            except AdapterHubError as exc:
                self._upstream_error = exc
                self._upstreams = []
                log.warning("only the local store is consulted: %s", exc)
        seen: set[str] = set()
        ordered = []
        for entry in [*self._first, *(self._upstreams or [])]:
            if entry.url not in seen:
                seen.add(entry.url)
                ordered.append(entry)
        return ordered

    @property
    def local(self) -> NamedStore:
        return self._first[0]

    def _failures(self) -> list[tuple[str, AdapterHubError]]:
        self.stores()  # reads the remotes if not yet done, noting whether that failed
        return [("remotes", self._upstream_error)] if self._upstream_error else []

    # ------------------------------------------------------------------ manifests

    def _manifest(self, holder: NamedStore, aid: AdapterId, *, fresh: bool = False) -> Manifest:
        key = (holder.url, str(aid))
        if fresh or key not in self._manifests:
            self._manifests[key] = holder.store.read_manifest(aid)
        return self._manifests[key]

    # ------------------------------------------------------------------ resolving

    def _holdings(
        self,
        base: AdapterId,
        failures: list[tuple[str, AdapterHubError]],
        version: Version | None = None,
    ) -> dict[Version, list[tuple[NamedStore, bool]]]:
        """``{version: [(store, yanked there), ...]}`` over every readable store (only
        ``version`` when given)."""
        held: dict[Version, list[tuple[NamedStore, bool]]] = {}
        for holder in self.stores():
            try:
                if version is not None and isinstance(holder.store, LocalStore):
                    # the serving runtime's load path: two stats (os.path: pathlib costs more
                    # than the stats), not a listing of every version
                    entry = os.path.join(holder.store.url, *base.with_version(version).parts)
                    versions = []
                    if os.path.isfile(os.path.join(entry, MANIFEST)):
                        versions = [(version, os.path.isfile(os.path.join(entry, YANKED)))]
                else:
                    versions = holder.store.versions(base)
            except NotFoundError:
                continue
            except IntegrityError:
                raise
            except RegistryError as exc:
                if not any(name == holder.name for name, _ in failures):
                    log.warning("skipping %s: %s", holder, exc)
                    failures.append((holder.name, exc))
                continue
            for version, yanked in versions:
                held.setdefault(version, []).append((holder, yanked))
        return held

    def resolve(self, reference: str | AdapterId, *, include_yanked: bool = True) -> Resolution:
        """The entry ``reference`` means (see the module's precedence rules). A reference with
        a version may resolve to a yanked one unless ``include_yanked`` is False; references
        without a version never do. Raises :class:`NotFoundError`, :class:`ConflictError`, or the error of an
        unreadable store when no readable one holds the reference."""
        ref = AdapterId.parse(reference)
        failures = self._failures()
        yanked_matches: list[AdapterId] = []
        namespaces = namespaces_for(ref)
        for namespace in namespaces:
            base = AdapterId(ref.task, ref.lang, namespace)
            held = self._holdings(base, failures, ref.version)
            if ref.version is not None:
                holders = held.get(ref.version, [])
                yanked = any(y for _, y in holders)
                if holders and yanked and not include_yanked:
                    yanked_matches.append(base.with_version(ref.version))
                    continue
                chosen = ref.version if holders else None
            else:
                live = [v for v, hs in held.items() if not any(y for _, y in hs)]
                chosen = self._promoted_newest(base, live, held)
                yanked_matches += [base.with_version(v) for v in held if chosen is None]
            if chosen is not None:
                return self._settle(base.with_version(chosen), held[chosen], failures)
        if failures:
            raise failures[0][1]
        where = ", ".join(str(s) for s in self.stores())
        if yanked_matches:
            raise NotFoundError(
                f"every version {ref} could mean is yanked ({', '.join(map(str, yanked_matches))})"
                " in " + where + "; ask for one by its exact id to read it anyway"
            )
        if ref.version is not None:
            raise NotFoundError(
                f"{ref} is not in {where} (namespaces {', '.join(namespaces)}); see "
                f"`adapterhub registry list --task {ref.task} --lang {ref.lang}`"
            )
        raise NotFoundError(
            f"no published, non-yanked version of {ref} (namespaces {', '.join(namespaces)}) in "
            f"{where}; see `adapterhub registry list --task {ref.task} --lang {ref.lang}`"
        )

    def _promoted_newest(
        self,
        base: AdapterId,
        versions: list[Version],
        held: dict[Version, list[tuple[NamedStore, bool]]],
    ) -> Version | None:
        """:func:`newest` of the versions the promotion gate let through (one that any holder's
        manifest marks ``promoted: false`` is skipped, :mod:`adapterhub.registry.promotion`);
        the newest of all when it let none through. Reads manifests newest first, so the
        usual case costs one (cached) read."""
        remaining = list(versions)
        while remaining:
            candidate = newest(remaining)
            aid = base.with_version(candidate)
            if all(self._promoted(h, aid) for h, _ in held[candidate]):
                return candidate
            remaining.remove(candidate)
        return newest(versions)

    def _promoted(self, holder: NamedStore, aid: AdapterId) -> bool:
        try:
            return self._manifest(holder, aid).promoted
        except AdapterHubError:  # an unreadable entry: the read that follows reports it
            return True

    def _settle(
        self,
        aid: AdapterId,
        holders: list[tuple[NamedStore, bool]],
        failures: list[tuple[str, AdapterHubError]],
    ) -> Resolution:
        """The resolution of an exact id the ``holders`` hold: same bytes everywhere, or a
        conflict naming both stores."""
        source = holders[0][0]
        if len(holders) > 1:
            first = self._manifest(source, aid)
            for other, _ in holders[1:]:
                theirs = self._manifest(other, aid)
                if _files(theirs) != _files(first):
                    raise _conflict(aid, source, other, first, theirs)
        reason = ""
        marked = [h for h, y in holders if y]
        if marked:
            reason = self._manifest(marked[0], aid, fresh=True).yanked_reason
        return Resolution(
            id=aid,
            source=source,
            holders=tuple(h for h, _ in holders),
            yanked=bool(marked),
            yanked_reason=reason,
            unchecked=tuple(f"{name}: {exc}" for name, exc in failures),
            _load=lambda: self._manifest(source, aid),
        )

    # ------------------------------------------------------------------ patterns and lists

    def match(self, pattern: str) -> list[Resolution]:
        """Every entry a shell-style pattern names, never a yanked one: ``sentiment/*`` (each
        matching task/lang as its short id resolves), ``topic/*@team``, ``sentiment/*:1.0.0``.
        """
        text, _, version_pattern = pattern.partition(":")
        task_lang, _, namespace_pattern = text.partition("@")
        path = default_namespaces()
        refs: set[AdapterId] = set()
        for holder in self.stores():
            try:
                ids = holder.store.ids()
            except RegistryError as exc:
                log.warning("skipping %s: %s", holder, exc)
                continue
            for aid in ids:
                if not fnmatch.fnmatchcase(f"{aid.task}/{aid.lang}", task_lang):
                    continue
                if namespace_pattern:
                    if not fnmatch.fnmatchcase(str(aid.namespace), namespace_pattern):
                        continue
                elif aid.namespace not in path:
                    continue
                if version_pattern and not fnmatch.fnmatchcase(str(aid.version), version_pattern):
                    continue
                refs.add(
                    AdapterId(
                        aid.task,
                        aid.lang,
                        aid.namespace if namespace_pattern else None,
                        aid.version if version_pattern else None,
                    )
                )
        found: dict[str, Resolution] = {}
        for ref in sorted(refs, key=str):
            try:
                resolution = self.resolve(ref, include_yanked=False)
            except NotFoundError:
                continue  # every version it names is yanked
            found.setdefault(str(resolution.id), resolution)
        return list(found.values())

    def entries(self, *, include_yanked: bool = True, local_only: bool = False, **filters: Any):
        """Every entry of every store matching ``filters`` (see :meth:`Store.search`), once per
        exact id with the stores holding it, sorted by id (by the metric, best first, with
        ``metric``). ``local_only`` leaves out network stores (fsspec, OCI)."""
        merged: dict[str, Listed] = {}
        for holder in self.stores():
            if local_only and not isinstance(holder.store, LocalStore):
                continue
            try:
                manifests = holder.store.search(include_yanked=True, **filters)
            except RegistryError as exc:
                log.warning("cannot list %s: %s", holder, exc)
                continue
            for manifest in manifests:
                listed = merged.get(manifest.id)
                if listed is None:
                    merged[manifest.id] = Listed(manifest.model_copy(), [holder])
                    continue
                listed.holders.append(holder)
                listed.conflict |= _files(manifest) != _files(listed.manifest)
                if manifest.yanked and not listed.manifest.yanked:
                    listed.manifest.yanked = True
                    listed.manifest.yanked_reason = manifest.yanked_reason
        rows = [e for e in merged.values() if include_yanked or not e.manifest.yanked]
        rows.sort(key=lambda e: _sort_key(e.manifest.adapter_id))
        metric = filters.get("metric")
        if metric:
            rows.sort(key=lambda e: -float(e.manifest.metrics.values.get(metric, 0.0)))
        return rows


def _sort_key(aid: AdapterId) -> tuple:
    return (aid.namespace, aid.task, aid.lang, aid.version)


def configured_upstreams() -> list[NamedStore]:
    """The remotes of remotes.json in their order, then the project store."""
    return [
        NamedStore(name, open_store(info["url"], read_only=bool(info.get("read_only"))))
        for name, info in list_remotes().items()
    ]


def resolve(
    reference: str | AdapterId,
    *,
    store: str | Path | Store | None = None,
    sources: Iterable[Store | str] | None = None,
    include_yanked: bool = True,
) -> Resolution:
    """:meth:`Resolver.resolve` over :meth:`Resolver.default` stores."""
    resolver = Resolver.default(store, sources=None if sources is None else list(sources))
    return resolver.resolve(reference, include_yanked=include_yanked)


__all__ = [
    "LOCAL",
    "PRECEDENCE",
    "Listed",
    "NamedStore",
    "Resolution",
    "Resolver",
    "configured_upstreams",
    "default_namespaces",
    "is_project_store",
    "named",
    "namespaces_for",
    "resolve",
]
