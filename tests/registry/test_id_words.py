"""An id part is a word and nothing after it: a trailing newline (which ``$`` alone lets pass)
is refused wherever a part is checked on its own."""

from __future__ import annotations

import pytest

from adapterhub.errors import UsageError
from adapterhub.registry.ids import AdapterId, check_word


@pytest.mark.parametrize("word", ["team\n", "team\n\n", "\nteam", "te\nam", "team "])
def test_a_part_with_a_newline_or_space_is_refused(word):
    with pytest.raises(UsageError, match="invalid"):
        check_word(word, "namespace")
    with pytest.raises(UsageError, match="invalid"):
        AdapterId.parse("sentiment/de:1.0.0").with_namespace(word)


def test_a_plain_word_still_passes():
    assert check_word("nlp-team", "namespace") == "nlp-team"
    assert str(AdapterId.parse("sentiment/de:1.0.0").with_namespace("nlp_team")) == (
        "sentiment/de@nlp_team:1.0.0"
    )
