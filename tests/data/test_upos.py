"""Native tagsets onto the 17 Universal POS tags: tables and the auxiliary rule."""

from __future__ import annotations

import pytest

from adapterhub.data.sources import _tagged_lines
from adapterhub.data.upos import EAGLES, ITALIAN, PENN, PKU, STTS, UPOS, to_upos


def test_every_table_maps_into_the_17_upos_tags():
    assert len(UPOS) == 17
    for table in (PENN, ITALIAN, STTS, EAGLES, PKU):
        assert set(table.values()) <= set(UPOS)


@pytest.mark.parametrize(
    ("tag", "tagset", "expected"),
    [
        ("NNP", "penn", "PROPN"),
        ("PRP$", "penn", "PRON"),
        ("VBG|NN", "penn", "VERB"),
        ("APPRART", "stts", "ADP"),
        ("VMFIN", "stts", "AUX"),
        ("PPOSAT", "stts", "DET"),
        ("Fpa", "eagles", "PUNCT"),
        ("VSI", "eagles", "AUX"),
        ("VMN", "eagles", "VERB"),
        ("NCS", "eagles", "NOUN"),
        ("V(hulp,ott,1of2of3,mv)", "wotan", "AUX"),
        ("N(eigen,ev,neut)", "wotan", "PROPN"),
        ("Pron(bez,3,ev,neut,attr)", "wotan", "DET"),
        ("Adv(deelv)", "wotan", "ADP"),
        ("Conj(onder,metfin)", "wotan", "SCONJ"),
        ("nr", "pku", "PROPN"),
        ("w", "pku", "PUNCT"),
        ("FC", "italian-wacky", "PUNCT"),
    ],
)
def test_known_tags(tag, tagset, expected):
    assert to_upos(tag, tagset) == expected


def test_unknown_tag_is_none_and_counted_as_x():
    from collections import Counter

    assert to_upos("NOT-A-TAG", "penn") is None
    unmapped = Counter()
    [(tokens, native, upos)] = _tagged_lines("odd/QQQ word/NN", "en", "penn", "f", unmapped)
    assert upos == ["X", "NOUN"] and unmapped == {("penn", "QQQ"): 1}


def _upos(line: str, tagset: str) -> list[str]:
    from collections import Counter

    [(_, _, upos)] = _tagged_lines(line, "xx", tagset, "f", Counter())
    return upos


def test_auxiliaries_in_penn_and_italian():
    assert _upos("It/PRP has/VBZ not/RB been/VBN easy/JJ", "penn") == [
        "PRON", "AUX", "PART", "AUX", "ADJ"
    ]  # fmt: skip
    assert _upos("She/PRP has/VBZ a/DT dog/NN", "penn") == ["PRON", "VERB", "DET", "NOUN"]
    assert _upos("Did/VBD you/PRP go/VB", "penn") == ["AUX", "PRON", "VERB"]
    assert _upos("I/PRP did/VBD it/PRP", "penn") == ["PRON", "VERB", "PRON"]
    assert _upos("è/VB stato/VB costruito/VB", "italian-wacky") == ["AUX", "AUX", "VERB"]
    assert _upos("ha/VB costruito/VB", "italian-wacky") == ["AUX", "VERB"]
    assert _upos("ha/VB fame/NN", "italian-wacky") == ["VERB", "NOUN"]
    assert _upos("Das/ART ist/VAFIN gut/ADJD", "stts") == ["DET", "AUX", "ADJ"]


def test_slash_entity_is_decoded():
    from collections import Counter

    [(tokens, native, upos)] = _tagged_lines("&slash;/( a&amp;b/NE", "de", "stts", "f", Counter())
    assert tokens == ["/", "a&b"] and upos == ["PUNCT", "PROPN"]
