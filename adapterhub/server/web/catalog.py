"""What the hub's pages show about a registry, read through one :class:`Resolver`.

Every store the resolver consults is listed (the local store, the remotes, the project store),
each entry once with the stores that hold it ("where it lives"), and each marked with the
version its ``task/lang@namespace`` resolves to, so yanked and older (unpromoted) versions show
as such. Free of FastAPI and torch: the routes render these objects, tests and the benchmark
call them directly.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from adapterhub.errors import NotFoundError
from adapterhub.registry.ids import AdapterId, Version
from adapterhub.registry.manifest import Manifest
from adapterhub.registry.resolver import LOCAL, NamedStore, Resolution, Resolver

LANG_METRIC = re.compile(r"^(?P<metric>.+)_(?P<lang>[a-z]{2,3})$")
"""``accuracy_fr``: a metric measured in another language than the entry's own."""

EXAMPLES = {
    "de": "Das Buch ist wunderbar, ich habe es in einem Zug gelesen.",
    "en": "The book is wonderful, I read it in one sitting.",
    "es": "El libro es maravilloso, lo leí de un tirón.",
    "fr": "Le livre est merveilleux, je l'ai lu d'une traite.",
    "it": "Il libro è meraviglioso, l'ho letto tutto d'un fiato.",
    "ja": "すごく面白い映画でした。",
    "nl": "Het boek is geweldig, ik heb het in één keer uitgelezen.",
    "zh": "这本书很精彩，我一口气读完了。",
}
"""A sentence per language for the example commands (English where the language has none)."""

FACETS = ("task", "lang", "method", "backbone", "namespace", "kind")
METHOD_SETTINGS = (
    "r",
    "lora_alpha",
    "lora_dropout",
    "use_rslora",
    "target_modules",
    "feedforward_modules",
    "reduction_factor",
    "bottleneck_size",
    "non_linearity",
)
"""The keys of an adapter's config that its page lists (LoRA, IA3, bottleneck)."""


def language_metrics(manifest: Manifest) -> dict[str, dict[str, float]]:
    """``{lang: {metric: value}}``. The plain metrics belong to the entry's own language; a
    ``<metric>_<lang>`` whose ``<metric>`` is reported too is that metric measured in ``<lang>``
    (``accuracy_fr`` next to ``accuracy``), while ``macro_f1`` stays a metric of its own."""
    values = manifest.metrics.values
    own: dict[str, float] = {}
    other: dict[str, dict[str, float]] = {}
    for key, value in values.items():
        match = LANG_METRIC.match(key)
        if match and match["metric"] in values:
            other.setdefault(match["lang"], {})[match["metric"]] = value
        else:
            own[key] = value
    table = {manifest.lang: own} if own else {}
    for lang in sorted(other):
        table.setdefault(lang, {}).update(other[lang])
    return table


def headline_metric(manifest: Manifest) -> str | None:
    """The metric the charts show: the first (by name) that is reported in several languages,
    else the first of the entry's own."""
    table = language_metrics(manifest)
    own = sorted(table.get(manifest.lang, {}))
    spread = [m for m in own if sum(m in values for values in table.values()) > 1]
    return (spread or own or [None])[0]


@dataclass(frozen=True)
class Row:
    """One entry as the browser lists it."""

    manifest: Manifest
    stores: tuple[str, ...]
    """Names of the stores that hold it, the one it is read from first."""
    conflict: bool
    """Two stores hold different bytes under this id (resolving it is an error)."""
    current: str | None
    """The version ``task/lang@namespace`` resolves to; None when every version is yanked."""

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def base(self) -> str:
        return str(self.manifest.adapter_id.base)

    @property
    def version(self) -> Version:
        return Version.parse(self.manifest.version)

    @property
    def is_current(self) -> bool:
        return not self.manifest.yanked and self.current == self.manifest.version

    @property
    def has_head(self) -> bool:
        return self.manifest.task_type is not None and bool(self.manifest.labels)

    @property
    def headline(self) -> tuple[str, float] | None:
        """(metric, value) the browser shows for this entry."""
        name = headline_metric(self.manifest)
        return (name, self.manifest.metrics.values[name]) if name else None

    @property
    def notes(self) -> list[str]:
        """Why this version is not what its short id means (empty when it is)."""
        found = []
        if self.manifest.yanked:
            reason = self.manifest.yanked_reason
            found.append(f"yanked{': ' + reason if reason else ''}")
        elif not self.is_current:
            means = f"{self.base} means {self.current}" if self.current else "no version served"
            kind = "a prerelease" if self.version.is_prerelease else "older"
            if not self.manifest.promoted:  # the promotion gate held it back
                kind = f"the gate held it back ({self.manifest.promotion.reason})"
            found.append(f"not promoted, {kind}: {means}")
        if self.conflict:
            found.append("different bytes in two stores: resolving it is an error")
        return found


class Filters(BaseModel):
    """The browser's query string: every field narrows the list; empty means any."""

    model_config = ConfigDict(extra="ignore")
    q: str = Field("", max_length=200, description="text in the id, description or dataset")
    task: str = ""
    lang: str = ""
    method: str = ""
    backbone: str = Field("", description="backbone name or fingerprint")
    namespace: str = ""
    kind: str = ""
    metric: str = Field("", description="keep entries reporting this metric")
    min_value: float | None = Field(None, description="... at least this value")
    sort: str = Field("", description="a metric, best first (default: the metric filter, else id)")
    hide_yanked: bool = False
    current_only: bool = Field(False, description="only the version each short id resolves to")

    @field_validator("min_value", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def sort_metric(self) -> str:
        return self.sort or self.metric

    @property
    def active(self) -> bool:
        return self != Filters()

    def matches(self, row: Row) -> bool:
        m = row.manifest
        for name in ("task", "lang", "method", "namespace", "kind"):
            wanted = getattr(self, name)
            if wanted and wanted != getattr(m, name):
                return False
        if self.backbone and self.backbone not in (m.backbone.name, m.backbone.fingerprint):
            return False
        if self.metric:
            value = m.metrics.values.get(self.metric)
            if value is None or (self.min_value is not None and value < self.min_value):
                return False
        if (self.hide_yanked and m.yanked) or (self.current_only and not row.is_current):
            return False
        if self.q:
            needle = self.q.strip().lower()
            haystack = " ".join((m.id, m.description, m.metrics.dataset)).lower()
            return needle in haystack
        return True


@dataclass(frozen=True)
class Listing:
    """The browser page: the rows that pass the filters, and what there is to filter by."""

    rows: list[Row]
    total: int
    facets: dict[str, list[str]]
    metrics: list[str]
    stores: list[str]


@dataclass(frozen=True)
class Matrix:
    """Cross-lingual transfer: the current adapters of one task (rows) scored in each language
    (columns) on one metric, from their manifests' per-language metrics."""

    metric: str
    rows: list[tuple[str, str]]
    """(adapter id, label) per row."""
    columns: list[str]
    values: dict[tuple[str, str], float]
    highlight: str
    """The id whose page shows it."""


@dataclass(frozen=True)
class Command:
    label: str
    text: str


@dataclass
class EntryView:
    """One entry in full: its adapter page."""

    resolution: Resolution
    row: Row
    versions: list[Row]
    children: list[str]
    matrix: Matrix | None
    stores: list[str] = field(default_factory=list)
    """The stores that hold it (:func:`where`), the one it is read from first."""

    @property
    def manifest(self) -> Manifest:
        return self.resolution.manifest

    @cached_property
    def languages(self) -> dict[str, dict[str, float]]:
        return language_metrics(self.manifest)

    @property
    def metric_names(self) -> list[str]:
        return sorted({m for values in self.languages.values() for m in values})

    @property
    def headline(self) -> str | None:
        return headline_metric(self.manifest)

    @property
    def bars(self) -> list[tuple[str, float]]:
        """(language, value) of the headline metric, for the bar chart."""
        metric = self.headline
        return [(lang, v[metric]) for lang, v in self.languages.items() if metric in v]

    @property
    def method_settings(self) -> list[tuple[str, str]]:
        config = self.manifest.method_config
        found = []
        for key in METHOD_SETTINGS:
            value = config.get(key)
            if value in (None, [], {}):
                continue
            found.append((key, ", ".join(sorted(value)) if isinstance(value, list) else str(value)))
        return found

    @property
    def recipe_text(self) -> str:
        """The recipe it was trained with, as YAML (empty without one)."""
        recipe = self.manifest.recipe
        if recipe is None or isinstance(recipe, str):
            return recipe or ""
        return yaml.safe_dump(recipe, sort_keys=True, allow_unicode=True)

    def split_of(self, lang: str) -> str:
        """The split a language's numbers were measured on: the manifest's split for its own
        language, that split's name (``test``) for the others."""
        split = self.manifest.metrics.split
        return split if lang == self.manifest.lang else split.split(" ")[0]

    def commands(self, server_url: str, read_token: bool = False) -> list[Command]:
        """Copyable commands: pull, serve and ask it over HTTP (with the read token's header,
        as ``$ADAPTERHUB_READ_TOKEN``, when the server wants one)."""
        m = self.manifest
        auth = ' -H "Authorization: Bearer $ADAPTERHUB_READ_TOKEN"' if read_token else ""
        source = self.resolution.store_name
        pull = f"adapterhub registry pull {m.id}"
        if source != LOCAL:
            pull += f" --from {shlex.quote(source)}"
        found = [Command("pull", pull), Command("serve", f"adapterhub serve --preload {m.id}")]
        text = EXAMPLES.get(m.lang, EXAMPLES["en"])
        if self.row.has_head:
            body = json.dumps({"adapter": m.id, "inputs": [text]}, ensure_ascii=False)
            found.append(
                Command(
                    "predict",
                    f"curl -s {server_url}/v1/predict -H 'Content-Type: application/json'{auth} "
                    f"-d {shlex.quote(body)}",
                )
            )
        else:
            body = json.dumps({"inputs": [text]}, ensure_ascii=False)
            found.append(
                Command(
                    "embed",
                    f"curl -s {server_url}/embed -H 'Content-Type: application/json'{auth} "
                    f"-H {shlex.quote('X-Adapter-Id: ' + m.id)} -d {shlex.quote(body)}",
                )
            )
        return found


class Catalog:
    """The registry as the pages see it. One per app: its resolver keeps the manifests it read
    (immutable once published); listings and yank states are read afresh on every call."""

    def __init__(self, resolver: Resolver, visible: Callable[[str], bool] | None = None) -> None:
        self.resolver = resolver
        self.visible = visible

    def seen_by(self, visible: Callable[[str], bool]) -> Catalog:
        """This catalog as one viewer sees it (``--read-namespaces``): only the entries
        ``visible(id)`` admits are listed, shown, counted or offered; the manifests the
        resolver read stay shared."""
        return Catalog(self.resolver, visible)

    @property
    def store_names(self) -> list[str]:
        return [where(s) for s in self.resolver.stores()]

    def rows(self) -> list[Row]:
        """Every entry of every store, sorted by namespace, task, language, newest first."""
        listed = self.resolver.entries(include_yanked=True)
        if self.visible is not None:
            listed = [e for e in listed if self.visible(e.manifest.id)]
        current: dict[str, str | None] = {}
        for entry in listed:
            base = entry.manifest.adapter_id.base
            if str(base) not in current:
                current[str(base)] = self._current(base)
        rows = [
            Row(
                e.manifest,
                tuple(h.name for h in e.holders),
                e.conflict,
                current[str(e.manifest.adapter_id.base)],
            )
            for e in listed
        ]
        rows.sort(key=lambda r: r.version, reverse=True)
        rows.sort(key=lambda r: (r.manifest.namespace, r.manifest.task, r.manifest.lang))
        return rows

    def _current(self, base: AdapterId) -> str | None:
        try:
            return str(self.resolver.resolve(base, include_yanked=False).id.version)
        except NotFoundError:
            return None

    def browse(self, filters: Filters) -> Listing:
        everything = self.rows()
        rows = [r for r in everything if filters.matches(r)]
        metric = filters.sort_metric
        if metric:
            rows.sort(key=lambda r: -r.manifest.metrics.values.get(metric, float("-inf")))
        facets = {
            name: sorted(
                {
                    r.manifest.backbone.name if name == "backbone" else getattr(r.manifest, name)
                    for r in everything
                }
            )
            for name in FACETS
        }
        metrics = sorted({k for r in everything for k in r.manifest.metrics.values})
        return Listing(rows, len(everything), facets, metrics, self.store_names)

    def servable(self) -> list[Row]:
        """The version each short id resolves to: what the playground offers."""
        return [r for r in self.rows() if r.is_current]

    def entry(self, reference: str) -> EntryView:
        """The entry ``reference`` resolves to (a yanked one by its exact id), with its
        versions, the adapters trained on it and its task's matrix."""
        resolution = self.resolver.resolve(reference, include_yanked=True)
        if self.visible is not None and not self.visible(str(resolution.id)):
            # said as for an id that does not exist: a hidden namespace's ids are not confirmed
            raise NotFoundError(f"no adapter {reference} in the registry this server shows you")
        rows = self.rows()
        exact = str(resolution.id)
        row = next((r for r in rows if r.id == exact), None)
        if row is None:  # listed nowhere (a store that resolves but cannot list, e.g. OCI)
            row = Row(resolution.manifest, tuple(h.name for h in resolution.holders), False, None)
        return EntryView(
            resolution=resolution,
            row=row,
            versions=[r for r in rows if r.base == row.base],
            children=[r.id for r in rows if exact in r.manifest.parents],
            matrix=_matrix(resolution.manifest, rows),
            stores=[where(h) for h in resolution.holders],
        )


def where(store: NamedStore) -> str:
    """A store as the pages name it: its name, with its URL when that is a remote's address;
    a folder of this machine is never shown (pages may be served to other machines)."""
    url = store.url
    if "://" not in url or url.startswith("file://") or url == store.name:
        return store.name
    return f"{store.name} ({url})"


def _trained_on(manifest: Manifest) -> list[str]:
    recipe = manifest.recipe if isinstance(manifest.recipe, dict) else {}
    return list(recipe.get("train_langs") or [])


def _matrix(manifest: Manifest, rows: list[Row]) -> Matrix | None:
    """The matrix of ``manifest``'s task: its own row and the current version of every other
    adapter of the task, namespace and backbone; None unless two rows share two languages."""
    metric = headline_metric(manifest)
    if metric is None:
        return None
    base = str(manifest.adapter_id.base)
    peers = [manifest] + [
        r.manifest
        for r in rows
        if r.is_current
        and r.base != base
        and (r.manifest.task, r.manifest.namespace) == (manifest.task, manifest.namespace)
        and r.manifest.backbone.fingerprint == manifest.backbone.fingerprint
    ]
    values: dict[tuple[str, str], float] = {}
    for peer in peers:
        for lang, metrics in language_metrics(peer).items():
            if metric in metrics:
                values[(peer.id, lang)] = metrics[metric]
    scored = sorted((p for p in peers if any(k[0] == p.id for k in values)), key=lambda p: p.lang)
    columns = sorted({lang for _, lang in values})
    if len(scored) < 2 or len(columns) < 2:
        return None
    labels = []
    for peer in scored:
        trained = _trained_on(peer)
        label = peer.lang + (f" (trained on {', '.join(trained)})" if trained else "")
        labels.append((peer.id, label))
    return Matrix(metric, labels, columns, values, manifest.id)
