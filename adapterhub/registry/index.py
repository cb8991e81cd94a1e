"""The SQLite index of a local store: answers ``list``/search without opening every manifest.

It is a cache of the manifests (plus yank markers) and can always be rebuilt from them
(``adapterhub registry reindex``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
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
"""


class Index:
    """``Index(path)`` opens (and creates) the index; ``":memory:"`` for a throwaway one."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.is_new = self.path == ":memory:" or not Path(self.path).exists()
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

    def add(self, manifest: Manifest) -> None:
        with self._connect() as db:
            self._insert(db, manifest)

    def rebuild(self, manifests: Iterable[Manifest]) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM metrics")
            db.execute("DELETE FROM entries")
            for manifest in manifests:
                self._insert(db, manifest)
        self.is_new = False

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
