"""Stacks in evaluation: a language adapter under a task adapter, as the runtime serves them.

A :class:`Stack` names its two parts as the CLI takes them, ``lang/de,sentiment/en``; the
language part may be ``lang/{lang}`` (MAD-X: each test language gets its own language
adapter, swapped in under the same task adapter). Both parts are registry ids or folders, and a
stack is scored through the same inference code as a plain adapter
(:func:`~adapterhub.evaluation.inference.load_task_model` with ``language_adapter``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapterhub.errors import NotFoundError, UsageError
from adapterhub.evaluation.inference import evaluate_adapter
from adapterhub.registry import api

EACH_LANGUAGE = "{lang}"
"""In a stack's language part: the test language's own adapter (``lang/{lang}``)."""


@dataclass(frozen=True)
class Stack:
    """``[language, task]``: ``language`` is an id, a folder, or a template with ``{lang}``."""

    language: str
    task: str

    @classmethod
    def parse(cls, text: str) -> Stack:
        """``lang/de,sentiment/en`` (language first, as the runtime's stacks)."""
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2 or not all(parts):
            raise UsageError(
                f"a stack is LANGUAGE_ADAPTER,TASK_ADAPTER (e.g. lang/de,sentiment/en or "
                f"lang/{EACH_LANGUAGE},sentiment/en), not {text!r}"
            )
        return cls(parts[0], parts[1])

    @property
    def per_language(self) -> bool:
        return EACH_LANGUAGE in self.language

    def language_for(self, lang: str) -> str:
        """The language adapter used on test language ``lang``."""
        return self.language.replace(EACH_LANGUAGE, lang)

    def __str__(self) -> str:
        return f"[{self.language}, {self.task}]"


def language_adapter_folder(reference: str, backbone) -> Path | None:
    """The folder of a language adapter id or folder; None when no store holds the id."""
    folder = Path(reference).expanduser()
    if folder.is_dir():
        return folder
    if reference.startswith(("/", "./", "../", "~")):  # a folder path, and no such folder
        return None
    try:
        return Path(api.resolve(reference, backbone=backbone))
    except NotFoundError:
        return None


def evaluate_stack(
    stack: Stack, langs: list[str], *, backbone, skip_missing: bool = True, **options
) -> dict[str, dict[str, float]]:
    """``{lang: metrics}`` of the stack, as :func:`evaluate_adapter` gives for an adapter
    (``options`` are its keywords). With ``lang/{lang}``, each test language is scored with its
    own language adapter, and a language without one is left out (or, without
    ``skip_missing``, an error)."""
    results: dict[str, dict[str, float]] = {}
    by_adapter: dict[str, list[str]] = {}
    for lang in langs:
        by_adapter.setdefault(stack.language_for(lang), []).append(lang)
    for language, chosen in by_adapter.items():
        folder = language_adapter_folder(language, backbone)
        if folder is None:
            if stack.per_language and skip_missing:
                continue
            raise UsageError(f"no store holds the language adapter {language} of {stack}")
        results.update(
            evaluate_adapter(
                stack.task, chosen, backbone=backbone, language_adapter=folder, **options
            )
        )
    return {lang: results[lang] for lang in langs if lang in results}
