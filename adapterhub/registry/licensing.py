"""An entry's licence, from what it was made of: its training data and its backbone.

Adapter weights are learnt from the data, so an adapter cannot be offered on freer terms than the
data it was trained on allows: one trained on the pattern corpora ("personal use only") must not
say apache-2.0. :func:`derive` takes the data's and the backbone's licence texts (the built-in
datasets declare theirs in :mod:`adapterhub.data.builtin`, the embedded backbone in
:mod:`adapterhub.backbone.embedded`) and answers with the card's ``license``: ``apache-2.0`` when
both are free, else ``other``, which the card explains with both texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapterhub.errors import UsageError

DEFAULT_LICENSE = "apache-2.0"
"""What the project licenses adapters under when their data and backbone allow it."""
RESTRICTED_NAME = "training-data-terms"
"""The card's ``license_name`` for ``license: other``: the terms of the data it was trained on."""

_FREE = ("public domain", "mit", "bsd", "apache", "cc0", "cc-by", "cc by", "isc", "unlicense")
_RESTRICTED = (
    "personal use",
    "research use",
    "redistribut",
    "non-commercial",
    "noncommercial",
    "-nc",
    "no derivatives",
    "unknown",
)


def is_free(text: str) -> bool:
    """Whether a licence text names only terms that allow redistributing derived weights."""
    lowered = f" {text.lower()} "
    if not text or any(marker in lowered for marker in _RESTRICTED):
        return False
    return any(f" {marker}" in lowered or f"({marker}" in lowered for marker in _FREE)


def _embedded() -> Any:
    # here, not at the top: the backbone package imports torch and transformers (seconds);
    # licences are derived at publish, which has loaded them anyway, never by `registry list`
    from adapterhub.backbone import embedded

    return embedded


def dataset_license(name: str) -> str | None:
    """The licence a built-in dataset declares; None when it is not a built-in one."""
    # here, not at the top: the dataset table imports the data sources (~0.2 s), which only a
    # publish needs, never `registry list` or `show`
    from adapterhub.data.builtin import DATASETS

    info = DATASETS.get(name)
    return info.license if info is not None else None


def backbone_license(backbone: Any) -> str | None:
    """The loaded backbone's licence (its provisioning metadata), the embedded one's by name;
    None when neither says."""
    meta = getattr(backbone, "meta", None) or {}
    if meta.get("license"):
        return str(meta["license"])
    name = backbone.get("name", "") if isinstance(backbone, dict) else getattr(backbone, "name", "")
    embedded = _embedded()
    return embedded.LICENSE if embedded.is_embedded_name(str(name)) else None


def hub_id(backbone_name: str) -> str | None:
    """The Hugging Face hub id a backbone name resolves to: itself for ``owner/name``, the
    upstream model of the embedded backbone for its names, None for a local folder's name."""
    if "/" in backbone_name and not backbone_name.startswith(("/", ".")):
        return backbone_name
    embedded = _embedded()
    return embedded.UPSTREAM if embedded.is_embedded_name(backbone_name) else None


@dataclass(frozen=True)
class Licence:
    """The card's licence and what it follows from."""

    license: str
    sources: dict[str, str]
    """``{"data": "DATASET: licence text", "backbone": "NAME: licence text"}``."""


def derive(
    *, dataset: str, backbone: Any, backbone_name: str, requested: str | None = None
) -> Licence:
    """The licence an adapter trained on ``dataset`` over ``backbone`` may carry.

    Without ``requested`` (``--license``): ``apache-2.0`` when the data's and the backbone's
    recorded licences are both free, else ``other`` (a licence not recorded is not known to be
    free). ``requested`` is kept unless a recorded licence restricts what it promises: a free
    licence for an adapter of personal-use data is refused."""
    data, base = dataset_license(dataset), backbone_license(backbone)
    sources = {
        "data": f"{dataset or 'unnamed'}: "
        + (data or "not recorded (not a built-in dataset): its own terms apply"),
        "backbone": f"{backbone_name}: " + (base or "not recorded: its own terms apply"),
    }
    recorded = [text for text in (data, base) if text is not None]
    if requested is None:
        free = len(recorded) == 2 and all(is_free(text) for text in recorded)
        return Licence(DEFAULT_LICENSE if free else "other", sources)
    restricted = [text for text in recorded if not is_free(text)]
    if restricted and requested.lower() != "other" and is_free(requested):
        raise UsageError(
            f"--license {requested}: the adapter was trained on {sources['data']} over "
            f"{sources['backbone']}; those terms do not allow {requested}. Leave --license out "
            "(the card then says `other` and quotes them) or give --license other"
        )
    return Licence(requested, sources)


__all__ = ["DEFAULT_LICENSE", "Licence", "derive", "hub_id", "is_free"]
