"""The retrieval task's arithmetic against hand computations: the symmetric InfoNCE loss with
its false-negative mask, and bitext mining's P@1 and MRR."""

from __future__ import annotations

import math

import pytest
import torch

from adapterhub.tasks import TASK_TYPES, TASKS
from adapterhub.tasks.retrieval import (
    false_negative_mask,
    info_nce,
    mine_pairs,
    mining_scores,
)

TEXTS = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
PAIRS = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])


def _cross_entropy(row: list[float], target: int) -> float:
    """-log softmax(row)[target], written out; -inf entries take no part."""
    total = sum(math.exp(v) for v in row if v != -math.inf)
    return -(row[target] - math.log(total))


def _hand_loss(tau: float, masked: set[tuple[int, int]]) -> float:
    n = len(TEXTS)
    s = [[float(TEXTS[i] @ PAIRS[j]) / tau for j in range(n)] for i in range(n)]
    rows = [[-math.inf if (i, j) in masked else s[i][j] for j in range(n)] for i in range(n)]
    columns = [[-math.inf if (i, j) in masked else s[i][j] for i in range(n)] for j in range(n)]
    forward = sum(_cross_entropy(rows[i], i) for i in range(n)) / n
    backward = sum(_cross_entropy(columns[j], j) for j in range(n)) / n
    return (forward + backward) / 2


@pytest.mark.parametrize("tau", [0.05, 1.0])
def test_info_nce_equals_the_hand_computation(tau):
    loss, logits = info_nce(TEXTS, PAIRS, tau)
    assert math.isclose(float(loss), _hand_loss(tau, set()), rel_tol=1e-6)
    assert torch.allclose(logits, TEXTS @ PAIRS.T / tau)


def test_info_nce_leaves_masked_translations_out_of_both_softmaxes():
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[0, 2] = mask[2, 0] = True
    loss, _ = info_nce(TEXTS, PAIRS, 0.1, mask)
    assert math.isclose(float(loss), _hand_loss(0.1, {(0, 2), (2, 0)}), rel_tol=1e-6)
    assert not math.isclose(float(loss), _hand_loss(0.1, set()), rel_tol=1e-3)


def test_false_negatives_are_pairs_sharing_either_text_case_folded():
    rows = [
        {"text": "Hola", "pair": "Hello"},
        {"text": "Hallo", "pair": "hello"},  # the same English: translates "Hola" too
        {"text": "hola", "pair": "Hi"},  # the same Spanish
        {"text": "Tschüss", "pair": "Bye"},
    ]
    mask = false_negative_mask(rows)
    assert mask.tolist() == [
        [False, True, True, False],
        [True, False, False, False],
        [True, False, False, False],
        [False, False, False, False],
    ]


def test_mining_scores_on_a_constructed_case():
    queries = torch.eye(3)
    candidates = torch.tensor(
        [
            [0.9, 0.1, 0.0],  # nearest to query 0
            [0.0, 0.5, 0.9],  # nearest to query 2, second for query 1
            [0.0, 0.8, 0.0],  # query 1's translation: first
            [0.0, 0.0, 0.1],  # query 2's translation: behind candidate 1 -> rank 2
        ]
    )
    gold = [{0}, {2}, {3}]
    # ranks 1, 1, 2
    assert mining_scores(queries, candidates, gold) == pytest.approx(
        {"p_at_1": 2 / 3, "mrr": (1 + 1 + 0.5) / 3}
    )
    # a query with two translations is ranked by the better one
    assert mining_scores(queries, candidates, [{0}, {2}, {3, 1}])["p_at_1"] == 1.0


def test_mining_both_directions_with_a_text_shared_by_two_pairs():
    rows = [
        {"text": "a1", "pair": "A"},
        {"text": "a2", "pair": "A"},  # two translations of A
        {"text": "b", "pair": "B"},
    ]
    vectors = {
        "a1": torch.tensor([1.0, 0.0]),
        "a2": torch.tensor([0.0, 1.0]),  # nearest to B: a miss for a2 -> A
        "b": torch.tensor([0.7071, 0.7071]),  # nearest to A and to B
        "A": torch.tensor([1.0, 0.0]),
        "B": torch.tensor([0.0, 1.0]),
    }
    metrics = mine_pairs(rows, vectors)
    # text -> pair: a1 finds A; a2 finds B (A second); b: A and B tie, B counts (ties favour gold)
    assert metrics["p_at_1_text_to_pair"] == pytest.approx(2 / 3)
    assert metrics["mrr_text_to_pair"] == pytest.approx((1 + 0.5 + 1) / 3)
    # pair -> text: A finds a1 (gold); B finds a2 (not gold; b second)
    assert metrics["p_at_1_pair_to_text"] == pytest.approx(1 / 2)
    assert metrics["mrr_pair_to_text"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["p_at_1"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_the_task_table_has_a_headless_retrieval_task():
    assert TASKS["retrieval"].type is TASK_TYPES["retrieval"]
    assert TASKS["retrieval"].kind == "task" and TASKS["retrieval"].metric == "p_at_1"
    kind = TASK_TYPES["retrieval"]
    assert not kind.publishes_head and kind.output_model is None
    assert kind.text_columns == ("text", "pair")
