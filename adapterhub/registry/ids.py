"""Adapter identifiers ``<task>/<lang>@<namespace>:<version>`` and their semver versions.

``sentiment/de@nlp-team:1.2.0`` names one immutable entry. The namespace and the version may be
left out: ``sentiment/de`` leaves both to resolution (:mod:`adapterhub.registry.resolver`): the
user's namespace, then the built-in ``adapterhub`` one, and the highest version that is not
yanked; ``sentiment/de:1.2.0`` fixes the version, ``sentiment/de@nlp-team`` the namespace.

Namespaces cannot collide: what a user publishes without naming one goes under the user's
namespace (:func:`user_namespace`: ``adapterhub config set namespace NAME``, or
``$ADAPTERHUB_NAMESPACE``, default ``local``). ``adapterhub`` (:data:`BUILTIN_NAMESPACE`) belongs
to the project's built-in store and cannot be a user's namespace.

Task, language and namespace are lowercase words of letters and digits joined by single ``-`` or
``_`` (``named-entity``, ``nlp_team``), so ``__`` can serve as the separator in OCI tags. Versions
follow semver 2.0.0 without build metadata (``+build`` is not allowed in OCI tags and carries no
precedence anyway): ``1.2.0``, ``1.2.0-rc.1``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from adapterhub import userconfig
from adapterhub.errors import UsageError

BUILTIN_NAMESPACE = "adapterhub"
"""The namespace of the project's built-in store; no other store publishes into it."""
DEFAULT_USER_NAMESPACE = "local"
LANGUAGE_TASK = "lang"
"""Language adapters use this task name: ``lang/de@adapterhub:1.0.0``."""

_WORD = r"[a-z0-9]+(?:[-_][a-z0-9]+)*"
_WORD_RE = re.compile(_WORD)  # fullmatch only: "$" would let a final newline pass
_SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$"
)
_ID_RE = re.compile(
    rf"^(?P<task>{_WORD})/(?P<lang>{_WORD})(?:@(?P<namespace>{_WORD}))?(?::(?P<version>[^\s]+))?$"
)


@functools.total_ordering
@dataclass(frozen=True)
class Version:
    """A semver version with semver's precedence: ``1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta <
    1.0.0-rc.1 < 1.0.0 < 1.0.1 < 1.1.0 < 2.0.0``."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _SEMVER_RE.match(text.strip())
        if not match:
            raise UsageError(
                f"{text!r} is not a semver version; write MAJOR.MINOR.PATCH, e.g. 1.0.0 or 1.1.0-rc.1"
            )
        major, minor, patch, pre = match.groups()
        return cls(int(major), int(minor), int(patch), tuple(pre.split(".")) if pre else ())

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{'.'.join(self.prerelease)}" if self.prerelease else core

    def _key(self) -> tuple:
        # A release sorts after all of its prereleases; numeric identifiers sort before
        # alphanumeric ones and compare as numbers; a longer prerelease wins a common prefix.
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)


def check_word(value: str, what: str) -> str:
    if not _WORD_RE.fullmatch(value or ""):
        raise UsageError(
            f"{what} {value!r} is invalid; use lowercase letters and digits joined by '-' or '_'"
        )
    return value


def check_user_namespace(value: str, where: str = "namespace") -> str:
    """A namespace a user may publish under: a valid word, and not the built-in one."""
    value = (value or "").strip()
    if not _WORD_RE.fullmatch(value):
        raise UsageError(
            f"namespace {value!r} (from {where}) is invalid; use lowercase letters and digits "
            "joined by '-' or '_', e.g. `adapterhub config set namespace nlp-team`"
        )
    if value == BUILTIN_NAMESPACE:
        raise UsageError(
            f"namespace {value!r} (from {where}) is the project's built-in namespace; choose your "
            "own, e.g. `adapterhub config set namespace nlp-team`"
        )
    return value


NAMESPACE_SETTING = userconfig.define(
    userconfig.Setting(
        name="namespace",
        help="the namespace of what you train, publish or import without naming one",
        env="ADAPTERHUB_NAMESPACE",
        default=DEFAULT_USER_NAMESPACE,
        check=check_user_namespace,
    )
)


def user_namespace() -> str:
    """``$ADAPTERHUB_NAMESPACE``, else ``adapterhub config set namespace``, else ``local``."""
    return userconfig.get(NAMESPACE_SETTING.name)[0]


@dataclass(frozen=True)
class AdapterId:
    """A parsed identifier. ``namespace`` and ``version`` are ``None`` where the text left them
    out; :attr:`is_exact` ids (both given) name one entry, others are references that
    :mod:`adapterhub.registry.resolver` turns into one."""

    task: str
    lang: str
    namespace: str | None = None
    version: Version | None = None

    @classmethod
    def parse(cls, text: str | AdapterId) -> AdapterId:
        if isinstance(text, AdapterId):
            return text
        # fullmatch, unstripped: "sentiment/de\n" is no id ($ alone would pass a final newline)
        match = _ID_RE.fullmatch(text or "")
        if not match:
            raise UsageError(
                f"{text!r} is not an adapter id; write TASK/LANG[@NAMESPACE][:VERSION], "
                "e.g. sentiment/de or sentiment/de@nlp-team:1.2.0"
            )
        version = match["version"]
        return cls(
            task=match["task"],
            lang=match["lang"],
            namespace=match["namespace"],
            version=Version.parse(version) if version else None,
        )

    def __str__(self) -> str:
        text = f"{self.task}/{self.lang}" + (f"@{self.namespace}" if self.namespace else "")
        return f"{text}:{self.version}" if self.version else text

    @property
    def is_exact(self) -> bool:
        return self.namespace is not None and self.version is not None

    @property
    def kind(self) -> str:
        return "language" if self.task == LANGUAGE_TASK else "task"

    @property
    def base(self) -> AdapterId:
        """The same adapter without a version."""
        return AdapterId(self.task, self.lang, self.namespace)

    def with_version(self, version: Version | str) -> AdapterId:
        if isinstance(version, str):
            version = Version.parse(version)
        return AdapterId(self.task, self.lang, self.namespace, version)

    def with_namespace(self, namespace: str) -> AdapterId:
        return AdapterId(self.task, self.lang, check_word(namespace, "namespace"), self.version)

    def require_exact(self) -> AdapterId:
        if self.version is None:
            raise UsageError(f"{self} needs a version here, e.g. {self}:1.0.0")
        if self.namespace is None:
            example = AdapterId(self.task, self.lang, user_namespace(), self.version)
            raise UsageError(f"{self} needs a namespace here, e.g. {example}")
        return self

    @property
    def parts(self) -> tuple[str, str, str, str]:
        """The entry's folder path components ``(namespace, task, lang, version)``."""
        self.require_exact()
        return (str(self.namespace), self.task, self.lang, str(self.version))

    @property
    def relpath(self) -> str:
        return "/".join(self.parts)

    @property
    def oci_tag(self) -> str:
        """``namespace__task__lang__version``: ``__`` never occurs inside a part."""
        return "__".join(self.parts)

    @classmethod
    def from_oci_tag(cls, tag: str) -> AdapterId | None:
        parts = tag.split("__")
        if len(parts) != 4:
            return None
        namespace, task, lang, version = parts
        try:
            return cls.parse(f"{task}/{lang}@{namespace}:{version}")
        except UsageError:
            return None

    @classmethod
    def from_parts(cls, namespace: str, task: str, lang: str, version: str) -> AdapterId | None:
        """The id of an entry folder, or None when the folder names are not an id."""
        try:
            return cls.parse(f"{task}/{lang}@{namespace}:{version}")
        except UsageError:
            return None


def parse_id(text: str | AdapterId) -> AdapterId:
    return AdapterId.parse(text)


def newest(versions: list[Version], *, include_prereleases: bool = False) -> Version | None:
    """The highest version, preferring releases: a prerelease is chosen only when no release
    exists (or when ``include_prereleases``)."""
    if not versions:
        return None
    releases = [v for v in versions if not v.is_prerelease]
    pool = versions if include_prereleases or not releases else releases
    return max(pool)
