"""The manifest of a registry entry (``manifest.json``) and the model card generated from it.

The manifest is the commit point of a publish and never changes afterwards. ``yanked`` is the one
mutable fact about an entry; stores keep it beside the manifest (``yanked.json``, or an OCI tag)
and report it through this field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapterhub.errors import IntegrityError, UsageError
from adapterhub.preprocessing import Preprocessing
from adapterhub.registry.ids import AdapterId
from adapterhub.registry.licensing import RESTRICTED_NAME, hub_id

MANIFEST = "manifest.json"
CARD = "README.md"
YANKED = "yanked.json"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
HEAD = "head.safetensors"
PAYLOAD_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, HEAD)
"""The files an adapter folder may carry into an entry (FORMAT.md); the card is generated."""
SIGNATURE = "model.sig"
"""A signature over every other file of the entry, manifest included (:mod:`.signing`)."""
SIGNER_KEY = "signer.pem"
"""The public key that made ``model.sig``."""
SIGNATURE_FILES = (SIGNATURE, SIGNER_KEY)
"""Files that travel beside the manifest, which cannot list the signature that signs it."""
ENTRY_FILES = (*PAYLOAD_FILES, CARD, MANIFEST, *SIGNATURE_FILES)
SCHEMA_VERSION = 1


def _exact(text: str) -> AdapterId:
    try:
        return AdapterId.parse(text).require_exact()
    except UsageError as exc:  # pydantic reports ValueErrors as validation errors
        raise ValueError(str(exc)) from None


class BackboneRef(BaseModel):
    """The backbone an adapter was trained on; the fingerprint is what loading checks."""

    model_config = ConfigDict(extra="forbid")
    name: str
    fingerprint: str


class Metrics(BaseModel):
    """``{"dataset": "...", "split": "test", "accuracy": 0.91, "macro_f1": 0.9}``: the dataset and
    split the numbers were measured on, and any number of named metric values."""

    model_config = ConfigDict(extra="allow")
    dataset: str = ""
    split: str = ""

    @property
    def values(self) -> dict[str, float]:
        return {k: float(v) for k, v in (self.model_extra or {}).items()}

    def model_post_init(self, __context: Any) -> None:
        for key, value in (self.model_extra or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"metric {key!r} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"metric {key!r} must be finite, got {value!r}")


class Promotion(BaseModel):
    """Whether a version became what its short id means when it was published (the promotion
    gate, :mod:`adapterhub.registry.promotion`), and why."""

    model_config = ConfigDict(extra="forbid")
    promoted: bool
    reason: str
    baseline: str | None = None
    """The exact id it was judged against (the version the short id meant), if any."""
    band: float | None = None
    """The noise band of the judgement: how far below the baseline still counts as no
    regression (accuracy, overall on the yardstick)."""


class FileInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class Manifest(BaseModel):
    """Identity and provenance of one published adapter."""

    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION
    id: str
    kind: Literal["task", "language"]
    task: str
    lang: str
    namespace: str
    version: str
    method: str
    """``lora``, ``ia3`` or ``bottleneck``."""
    method_config: dict[str, Any] = Field(default_factory=dict)
    """The adapter_config.json the entry carries."""
    labels: list[str] = Field(default_factory=list)
    task_type: str | None = Field(None, pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    """The task type (``adapterhub.tasks.TASK_TYPES``): the head's (sequence, token), or for an
    adapter without one the headless type it was trained as (mlm, retrieval)."""
    preprocessing: dict[str, Any] | None = None
    """How inputs become token ids (:class:`adapterhub.preprocessing.Preprocessing`): what
    training did, what evaluation and serving do."""
    backbone: BackboneRef
    metrics: Metrics = Field(default_factory=Metrics)
    yardstick: Metrics | None = None
    """Results on the task's yardstick, a dev set (``sentiment-yardstick``): overall, hard
    subset and per language; what the promotion gate judges."""
    promotion: Promotion | None = None
    """The gate's decision; None for entries published before the gate (promoted)."""
    recipe: dict[str, Any] | str | None = None
    parents: list[str] = Field(default_factory=list)
    """Ids of the adapters this one was trained on (the language adapter under a task adapter)."""
    files: dict[str, FileInfo]
    created_at: str
    created_by: str
    license: str = "apache-2.0"
    """The card's licence: ``other`` when the data or the backbone restrict it (:mod:`.licensing`)."""
    license_sources: dict[str, str] = Field(default_factory=dict)
    """What the licence follows from: ``{"data": "DATASET: its licence", "backbone": ...}``."""
    description: str = ""
    yanked: bool = False
    yanked_reason: str = ""

    @field_validator("id")
    @classmethod
    def _exact_id(cls, value: str) -> str:
        return str(_exact(value))

    @field_validator("preprocessing")
    @classmethod
    def _preprocessing(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        unknown = set(value) - set(Preprocessing.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown preprocessing keys {sorted(unknown)}")
        try:
            return Preprocessing(**value).to_dict()
        except (UsageError, TypeError) as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("parents")
    @classmethod
    def _parent_ids(cls, value: list[str]) -> list[str]:
        return [str(_exact(p)) for p in value]

    def model_post_init(self, __context: Any) -> None:
        parsed = self.adapter_id
        if (parsed.task, parsed.lang, parsed.namespace, str(parsed.version)) != (
            self.task,
            self.lang,
            self.namespace,
            self.version,
        ):
            raise ValueError(f"manifest fields task/lang/namespace/version disagree with {self.id}")
        for name in self.files:
            if name not in PAYLOAD_FILES + (CARD,):
                raise ValueError(f"manifest lists an unexpected file {name!r}")

    @property
    def adapter_id(self) -> AdapterId:
        return AdapterId.parse(self.id)

    @property
    def promoted(self) -> bool:
        """Whether short ids may resolve to this version (the promotion gate let it through)."""
        return self.promotion is None or self.promotion.promoted

    def to_json(self) -> str:
        """The committed form: everything but the mutable yank state."""
        data = self.model_dump(mode="json", exclude={"yanked", "yanked_reason"})
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, *, where: str = "manifest.json") -> Manifest:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(
                f"{where} is not valid JSON ({exc}); the entry is corrupt"
            ) from exc
        if not isinstance(data, dict):
            raise IntegrityError(f"{where} is not a JSON object; the entry is corrupt")
        try:
            return cls.model_validate(data)
        except (ValidationError, ValueError) as exc:
            first = str(exc).splitlines()
            raise IntegrityError(
                f"{where} does not match the manifest schema ({' '.join(first[:3])})"
            ) from exc

    def summary(self) -> dict[str, Any]:
        """A flat dict for tables and ``--json``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "method": self.method,
            "backbone": self.backbone.name,
            "metrics": self.metrics.values,
            "dataset": self.metrics.dataset,
            "labels": len(self.labels),
            "created_at": self.created_at,
            "yanked": self.yanked,
            "promoted": self.promoted,
        }


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _pipeline_tag(task_type: str | None) -> str:
    # the task table imports torch (~9 s cold); cards are rendered at publish, which loads the
    # tensors anyway, and never by `registry list`
    from adapterhub.tasks import TASK_TYPES

    known = TASK_TYPES.get(task_type or "")
    return known.pipeline_tag if known is not None else "other"


@dataclass(frozen=True)
class _Evaluation:
    """Where a manifest's metrics were measured, read from its ``split`` (training writes
    ``test (zero-shot from en,fr)`` for a language it had no data for)."""

    split: str
    languages: list[str]
    trained_on: list[str]

    @classmethod
    def of(cls, manifest: Manifest) -> _Evaluation:
        split, _, rest = (manifest.metrics.split or "unknown").partition(" (zero-shot from ")
        trained_on = [x for x in rest.rstrip(")").split(",") if x] if rest else []
        multi = manifest.lang in ("multi", "mul")
        return cls(split.strip(), [] if multi else [manifest.lang], trained_on)

    def describe(self, dataset: str) -> str:
        where = f"the {f'`{dataset}` ' if dataset else ''}{self.split} split"
        where += f", {', '.join(self.languages)}" if self.languages else ", every language"
        if self.trained_on:
            where += f", zero-shot (trained on {', '.join(self.trained_on)} only)"
        return where


def _files_section(manifest: Manifest) -> list[str]:
    """Every file the entry has, this card included (written before its own sha256 is known)."""
    lines = ["## Files", ""]
    for name in sorted({*manifest.files, CARD}):
        info = manifest.files.get(name)
        size = f" ({info.bytes} bytes, sha256 `{info.sha256[:12]}…`)" if info else ""
        lines.append(f"- `{name}`: {_FILE_ROLES.get(name, 'part of the entry')}{size}")
    return [*lines, ""]


_FILE_ROLES = {
    ADAPTER_CONFIG: "the adapter's configuration (PEFT's adapter_config.json)",
    ADAPTER_WEIGHTS: "the adapter's weights (safetensors)",
    HEAD: "the task head (safetensors; its labels in the metadata)",
    CARD: "this card",
}


def _licence_section(manifest: Manifest) -> list[str]:
    lines = ["## Licence", ""]
    if manifest.license == "other":
        lines.append(
            "`other`: the weights were learnt from data whose terms restrict their use, or "
            "whose terms are not recorded; use them only as the terms below allow."
        )
    else:
        lines.append(f"`{manifest.license}`.")
    sources = manifest.license_sources
    if sources.get("data"):
        lines.append(f"- Training data: {sources['data']}")
    if sources.get("backbone"):
        lines.append(f"- Backbone: {sources['backbone']}")
    return [*lines, ""]


def render_card(manifest: Manifest) -> str:
    """A model card in the Hugging Face style: YAML front matter, then a short text.

    It says only what the entry holds: the files it lists are the manifest's, the head is
    described only when there is one, ``base_model`` is a hub id (or absent for a backbone
    known only by a local folder's name), and results name their split and languages."""
    upstream = hub_id(manifest.backbone.name)
    evaluation = _Evaluation.of(manifest)
    front: dict[str, Any] = {
        "library_name": "peft" if manifest.method in ("lora", "ia3") else "adapterhub",
        **({"base_model": upstream} if upstream else {}),
        "license": manifest.license,
        **({"license_name": RESTRICTED_NAME} if manifest.license == "other" else {}),
        "tags": ["adapterhub", manifest.method, manifest.task, manifest.kind],
        "adapterhub": {
            "id": manifest.id,
            "kind": manifest.kind,
            "method": manifest.method,
            "backbone": manifest.backbone.name,
            "backbone_fingerprint": manifest.backbone.fingerprint,
            "parents": list(manifest.parents),
            "labels": list(manifest.labels),
            "files": sorted({*manifest.files, CARD}),
            "created_at": manifest.created_at,
            "created_by": manifest.created_by,
        },
    }
    if manifest.lang not in ("multi", "mul"):
        front["language"] = [manifest.lang]
    values = manifest.metrics.values
    if values:
        front["adapterhub"]["evaluation"] = {
            "split": evaluation.split,
            "languages": evaluation.languages or "all",
            "zero_shot": bool(evaluation.trained_on),
            **({"trained_on": evaluation.trained_on} if evaluation.trained_on else {}),
        }
    if values:
        front["model-index"] = [
            {
                "name": manifest.id,
                "results": [
                    {
                        "task": {
                            "type": _pipeline_tag(manifest.task_type),
                            "name": manifest.task,
                        },
                        "dataset": {
                            "name": manifest.metrics.dataset or "unknown",
                            "type": manifest.metrics.dataset or "unknown",
                            "split": evaluation.split,
                            **(
                                {"config": ",".join(evaluation.languages)}
                                if evaluation.languages
                                else {}
                            ),
                        },
                        "metrics": [{"type": k, "value": v} for k, v in sorted(values.items())],
                    }
                ],
            }
        ]
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# {manifest.id}",
        "",
        manifest.description
        or f"A {manifest.method} {manifest.kind} adapter for `{manifest.task}` in `{manifest.lang}`.",
        "",
        _backbone_line(manifest, upstream),
    ]
    if manifest.labels:
        lines.append(f"- Labels: {', '.join(f'`{label}`' for label in manifest.labels)}")
    if manifest.parents:
        lines.append(f"- Trained on: {', '.join(f'`{p}`' for p in manifest.parents)}")
    if values:
        scores = ", ".join(f"{k} {v:.4g}" for k, v in sorted(values.items()))
        lines.append(f"- Results on {evaluation.describe(manifest.metrics.dataset)}: {scores}")
    if manifest.yardstick is not None:
        board = manifest.yardstick.values
        per_lang = ", ".join(
            f"{k.removeprefix('accuracy_')} {v:.3f}"
            for k, v in sorted(board.items())
            if k.startswith("accuracy_")
        )
        lines.append(
            f"- Yardstick ({manifest.yardstick.dataset} {manifest.yardstick.split}, a dev set): "
            f"accuracy {board.get('accuracy', 0):.3f}, hard subset "
            f"{board.get('hard_accuracy', 0):.3f}; per language: {per_lang}"
        )
    if manifest.promotion is not None and not manifest.promotion.promoted:
        lines.append(
            f"- Not promoted (short ids do not mean this version): {manifest.promotion.reason}"
        )
    lines += [
        f"- Created {manifest.created_at} by {manifest.created_by}; licence {manifest.license}",
        "",
        *_files_section(manifest),
        *_licence_section(manifest),
        "## Use",
        "",
        "```bash",
        f"adapterhub registry pull {manifest.id}",
        "```",
        "",
    ]
    if manifest.method in ("lora", "ia3"):
        use = (
            "The adapter is a plain PEFT folder: "
            "`PeftModel.from_pretrained(backbone_model, entry_dir)` loads it"
        )
        if HEAD in manifest.files:
            use += "; `head.safetensors` holds the task head."
        elif manifest.kind == "language":
            use += ". It has no head: it is a language adapter, for a task adapter to be "
            use += "stacked on (`adapterhub train --stack-lang`)."
        else:
            use += ". It has no head: its outputs are the backbone's hidden states."
        lines += [use, ""]
    return "\n".join(lines)


def _backbone_line(manifest: Manifest, upstream: str | None) -> str:
    name, fingerprint = manifest.backbone.name, manifest.backbone.fingerprint
    if upstream is None:
        return f"- Backbone: `{name}` (a local model; fingerprint `{fingerprint}`)"
    if upstream == name:
        return f"- Backbone: `{name}` (fingerprint `{fingerprint}`)"
    embedded = f"as adapterhub's embedded `{name}`"
    return f"- Backbone: `{upstream}`, {embedded} (fingerprint `{fingerprint}`)"


def read_card_front_matter(text: str) -> dict[str, Any]:
    """The YAML front matter of a card (for tests and tools)."""
    if not text.startswith("---\n"):
        raise IntegrityError("the model card has no YAML front matter")
    end = text.index("\n---", 4)
    return yaml.safe_load(text[4:end]) or {}
