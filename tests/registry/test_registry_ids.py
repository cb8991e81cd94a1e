"""Identifiers and semver ordering."""

from __future__ import annotations

import random

import pytest

from adapterhub.errors import UsageError
from adapterhub.registry.ids import BUILTIN_NAMESPACE, AdapterId, Version, newest, user_namespace


def test_full_id_round_trips():
    aid = AdapterId.parse("sentiment/de@nlp-team:1.2.0")
    assert (aid.task, aid.lang, aid.namespace, str(aid.version)) == (
        "sentiment",
        "de",
        "nlp-team",
        "1.2.0",
    )
    assert str(aid) == "sentiment/de@nlp-team:1.2.0"
    assert aid.relpath == "nlp-team/sentiment/de/1.2.0"
    assert AdapterId.parse(str(aid)) == aid


def test_short_forms_leave_the_namespace_to_resolution():
    # the namespace of a short id is no longer filled in at parse time: resolution tries the
    # user's namespace, then the built-in one (test_resolver.py)
    bare = AdapterId.parse("sentiment/de")
    assert bare.namespace is None and bare.version is None and not bare.is_exact
    assert str(bare) == "sentiment/de"
    pinned = AdapterId.parse("sentiment/de:2.0.0-rc.1")
    assert pinned.namespace is None and str(pinned.version) == "2.0.0-rc.1"
    assert not pinned.is_exact and str(pinned) == "sentiment/de:2.0.0-rc.1"
    with pytest.raises(UsageError, match="namespace"):
        pinned.relpath  # noqa: B018 - a folder needs the namespace
    assert AdapterId.parse("lang/de").kind == "language"
    assert AdapterId.parse("pos/multi").kind == "task"


def test_the_user_namespace_is_configured_and_never_the_builtin(monkeypatch, isolated_home):
    assert BUILTIN_NAMESPACE == "adapterhub"
    assert user_namespace() == "local"
    (isolated_home / "config.json").write_text('{"namespace": "nlp-team"}')
    assert user_namespace() == "nlp-team"
    monkeypatch.setenv("ADAPTERHUB_NAMESPACE", "alice")
    assert user_namespace() == "alice"  # the environment wins over the file
    for bad in ("adapterhub", "Not Valid"):
        monkeypatch.setenv("ADAPTERHUB_NAMESPACE", bad)
        with pytest.raises(UsageError, match="ADAPTERHUB_NAMESPACE"):
            user_namespace()


@pytest.mark.parametrize(
    "text",
    [
        "sentiment",
        "Sentiment/de",
        "sentiment/de/x",
        "sentiment/de@",
        "sentiment/de:1.0",
        "sentiment/de:01.0.0",
        "sentiment/de:1.0.0+build.5",
        "sentiment/de@a__b:1.0.0",
        "sentiment/de@team:1.0.0:2",
        "../de:1.0.0",
        "sentiment/../../etc:1.0.0",
        "",
    ],
)
def test_malformed_ids_are_refused_with_a_hint(text):
    with pytest.raises(UsageError, match="TASK/LANG|semver|invalid"):
        AdapterId.parse(text)


def test_semver_precedence_matches_the_spec():
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.2.0",
        "1.10.0",
        "2.0.0",
        "10.0.0",
    ]
    shuffled = ordered[:]
    random.Random(0).shuffle(shuffled)
    assert [str(v) for v in sorted(Version.parse(t) for t in shuffled)] == ordered


def test_newest_prefers_releases_over_newer_prereleases():
    versions = [Version.parse(t) for t in ("1.0.0", "1.1.0", "2.0.0-rc.1")]
    assert str(newest(versions)) == "1.1.0"
    assert str(newest(versions, include_prereleases=True)) == "2.0.0-rc.1"
    assert str(newest([Version.parse("0.1.0-alpha")])) == "0.1.0-alpha"
    assert newest([]) is None


def test_oci_tags_are_valid_and_reversible():
    import re

    aid = AdapterId.parse("named_entity/pt-br@nlp-team:1.0.0-rc.1")
    tag = aid.oci_tag
    assert re.fullmatch(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", tag)
    assert AdapterId.from_oci_tag(tag) == aid
    assert AdapterId.from_oci_tag("latest") is None
    assert AdapterId.from_oci_tag(tag + "__yanked") is None
