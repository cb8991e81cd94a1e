"""The SQLite index of a local store: answers ``list``/search without opening every manifest.

It is a cache of the manifests (plus yank markers) and can always be rebuilt from them
(``adapterhub registry reindex``). It also records a stamp per entry (what the store's
committed manifest and yank marker look like on disk: inode, mtime, size), so that every open
can bring it up to date cheaply with :meth:`Index.refresh`: an entry a publisher committed but
was killed before indexing is added, one removed by hand is dropped, and only those entries'
manifests are read.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from adapterhub.registry.ids import AdapterId
from adapterhub.registry.manifest import Manifest

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    task TEXT NOT NULL,
    lang TEXT NOT NULL,
    version TEXT NOT NULL,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    backbone_name TEXT NOT NULL,
    backbone_fingerprint TEXT NOT NULL,
    dataset TEXT NOT NULL,
    created_at TEXT NOT NULL,
    yanked INTEGER NOT NULL,
    manifest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    id TEXT NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (id, name)
);
CREATE INDEX IF NOT EXISTS entries_task_lang ON entries(task, lang);
CREATE TABLE IF NOT EXISTS stamps (
    id TEXT PRIMARY KEY,
    stamp TEXT NOT NULL
);
"""


class Index:
    """``Index(path)`` opens (and creates) the index; ``":memory:"`` for a throwaway one."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._memory = sqlite3.connect(":memory:") if self.path == ":memory:" else None
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if self._memory is not None:
            with self._memory:
                yield self._memory
            return
        db = sqlite3.connect(self.path, timeout=60)
        try:
            db.execute("PRAGMA foreign_keys = ON")
            with db:
                yield db
        finally:
            db.close()

    @staticmethod
    def _drop(db: sqlite3.Connection, aid: str) -> None:
        db.execute("DELETE FROM metrics WHERE id = ?", (aid,))
        db.execute("DELETE FROM entries WHERE id = ?", (aid,))

    @staticmethod
    def _insert(db: sqlite3.Connection, manifest: Manifest) -> None:
        db.execute("DELETE FROM metrics WHERE id = ?", (manifest.id,))
        db.execute(
            "INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                manifest.id,
                manifest.namespace,
                manifest.task,
                manifest.lang,
                manifest.version,
                manifest.kind,
                manifest.method,
                manifest.backbone.name,
                manifest.backbone.fingerprint,
                manifest.metrics.dataset,
                manifest.created_at,
                int(manifest.yanked),
                manifest.model_dump_json(),
            ),
        )
        db.executemany(
            "INSERT INTO metrics VALUES (?,?,?)",
            [(manifest.id, name, value) for name, value in manifest.metrics.values.items()],
        )

    def add(self, manifest: Manifest, stamp: str | None = None) -> None:
        """Index (or re-index) one entry; ``stamp``: its files' stamp as the store sees them."""
        with self._connect() as db:
            self._insert(db, manifest)
            if stamp is not None:
                db.execute("INSERT OR REPLACE INTO stamps VALUES (?, ?)", (manifest.id, stamp))

    def rebuild(self, manifests: Iterable[Manifest], stamps: dict[str, str] | None = None) -> None:
        """Replace everything with ``manifests`` (and the stamps of what the store holds)."""
        with self._connect() as db:
            db.execute("DELETE FROM metrics")
            db.execute("DELETE FROM entries")
            db.execute("DELETE FROM stamps")
            for manifest in manifests:
                self._insert(db, manifest)
            db.executemany("INSERT INTO stamps VALUES (?, ?)", sorted((stamps or {}).items()))

    def refresh(self, stamps: dict[str, str], load: Callable[[str], Manifest | None]) -> int:
        """Bring the index up to date with what the store holds now.

        ``stamps`` maps every committed entry's id to its stamp. Entries whose stamp differs
        from the recorded one (new, yanked since, replaced, or indexed without a stamp) are
        read again with ``load``; ``None`` from it (an unreadable entry) keeps the entry out
        of the index but records its stamp, so it is not read again until it changes. Entries
        no longer in ``stamps`` are dropped. Returns how many entries changed.
        """
        with self._connect() as db:
            known: dict[str, str | None] = dict(db.execute("SELECT id, stamp FROM stamps"))
            for (aid,) in db.execute("SELECT id FROM entries"):
                known.setdefault(aid, None)
        gone = [aid for aid in known if aid not in stamps]
        changed = {aid: stamp for aid, stamp in stamps.items() if known.get(aid) != stamp}
        if not gone and not changed:
            return 0
        loaded = {aid: load(aid) for aid in changed}  # outside the transaction: reads files
        with self._connect() as db:
            for aid in gone:
                self._drop(db, aid)
                db.execute("DELETE FROM stamps WHERE id = ?", (aid,))
            for aid, stamp in changed.items():
                manifest = loaded[aid]
                if manifest is None:
                    self._drop(db, aid)
                else:
                    self._insert(db, manifest)
                db.execute("INSERT OR REPLACE INTO stamps VALUES (?, ?)", (aid, stamp))
        return len(gone) + len(changed)

    def search(
        self,
        *,
        task: str | None = None,
        lang: str | None = None,
        namespace: str | None = None,
        version: str | None = None,
        backbone: str | None = None,
        method: str | None = None,
        kind: str | None = None,
        metric: str | None = None,
        min_value: float | None = None,
        include_yanked: bool = True,
    ) -> list[Manifest]:
        """Matching entries, sorted by id then semver. ``backbone`` matches a name or a
        fingerprint; ``metric`` keeps entries reporting that metric (``>= min_value`` if given)
        and sorts them best first."""
        where, params = [], []
        for column, value in (
            ("e.task", task),
            ("e.lang", lang),
            ("e.namespace", namespace),
            ("e.version", version),
            ("e.method", method),
            ("e.kind", kind),
        ):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        if backbone:
            where.append("(e.backbone_name = ? OR e.backbone_fingerprint = ?)")
            params += [backbone, backbone]
        if not include_yanked:
            where.append("e.yanked = 0")
        join = ""
        if metric:
            join = "JOIN metrics m ON m.id = e.id AND m.name = ?"
            params.insert(0, metric)
            if min_value is not None:
                where.append("m.value >= ?")
                params.append(min_value)
        sql = f"SELECT e.manifest{', m.value' if metric else ''} FROM entries e {join}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._connect() as db:
            rows = db.execute(sql, params).fetchall()
        manifests = [Manifest.model_validate_json(row[0]) for row in rows]
        if metric:
            scores = {m.id: row[1] for m, row in zip(manifests, rows)}
            return sorted(manifests, key=lambda m: -scores[m.id])
        return sorted(manifests, key=_sort_key)


def _sort_key(manifest: Manifest) -> tuple:
    aid = AdapterId.parse(manifest.id)
    return (aid.namespace, aid.task, aid.lang, aid.version)
