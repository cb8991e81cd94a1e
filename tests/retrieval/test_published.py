"""The published retrieval/multi on the real backbone: it loads from the project store as plain
PEFT, and on held-out Bible verses it finds more translations than the bare backbone."""

from __future__ import annotations

import pytest

from adapterhub.evaluation import evaluate_adapter

pytestmark = pytest.mark.real


def test_published_retrieval_adapter_beats_the_bare_backbone_on_held_out_verses(
    real_backbone, test_home
):
    def scores(adapter):
        return evaluate_adapter(
            adapter,
            ["es"],
            backbone=real_backbone,
            task="retrieval",
            dataset="bible-pairs",
            max_examples=300,  # a fixed sample of the 3,071 test verses (the README has all)
        )["es"]

    bare, adapted = scores(None), scores("retrieval/multi@adapterhub:1.0.0")
    # among 300 verses the bare backbone already finds 98% of the Spanish for English queries,
    # so only es -> en leaves room for the issue's +3 points here (both are in the README)
    assert adapted["p_at_1_text_to_pair"] >= bare["p_at_1_text_to_pair"] + 0.03, (bare, adapted)
    assert adapted["p_at_1_pair_to_text"] >= bare["p_at_1_pair_to_text"], (bare, adapted)
    assert adapted["mrr"] > bare["mrr"]
