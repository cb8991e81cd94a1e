"""Cross-lingual retrieval: an adapter trained so that translations embed next to each other.

Data: aligned pairs (:mod:`adapterhub.data.pairs`): ``text`` and ``pair``, two texts that
translate each other, with ``lang`` and ``pair_lang``. The recipe's prefix (e5's ``query: ``)
goes before both sides.

Training: both sides run through the adapted encoder and are mean-pooled over the attention
mask and L2-normalised (the e5 recipe). The loss is the symmetric InfoNCE with in-batch
negatives: for n pairs with embeddings t_i and p_i and the recipe's ``temperature`` tau,
S_ij = t_i . p_j / tau, and the loss is the mean of the cross-entropy of every row of S towards
its diagonal (text -> pair) and of every column (pair -> text). Another pair of the batch that
shares a text with pair i (one English verse paired with two languages) is a translation, not a
negative: its entries are masked out of row and column i.

No head: the adapter's output is the embedding, served by ``/v1/embed``, ``/embed``,
``/similarity`` and ``/rerank``; ``/v1/predict`` refuses it.

Evaluation, bitext mining as in Tatoeba and BUCC: within each language pair (lang, pair_lang)
of the held-out rows, every distinct ``text`` searches every distinct ``pair`` by cosine, and
the other way round. P@1 is the share of queries whose nearest neighbour is a translation, MRR
the mean reciprocal rank of the best-ranked translation; both directions are reported and
averaged, and several language pairs are averaged with equal weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from adapterhub.backbone import mean_pool
from adapterhub.data import PAIRS
from adapterhub.data.text import split_key
from adapterhub.errors import UsageError
from adapterhub.tasks.base import TaskModel, TaskType, encode_text, pad_batch, pad_id

DIRECTIONS = ("text_to_pair", "pair_to_text")
"""Mining directions: a ``text`` finds its ``pair`` (lang -> pair_lang), and back."""


def normalised_embeddings(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean-pooled last hidden states over the mask, at unit length: [n, T, H] -> [n, H]."""
    return nn.functional.normalize(mean_pool(hidden.float(), attention_mask), dim=-1)


def info_nce(
    texts: torch.Tensor,
    pairs: torch.Tensor,
    temperature: float,
    false_negatives: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(symmetric InfoNCE loss, similarity logits S [n, n]) of unit-length embeddings.

    ``false_negatives`` [n, n] marks entries (i, j), i != j, that are translations too: they
    take no part in row i's or column j's softmax.
    """
    logits = texts @ pairs.T / temperature
    masked = logits
    if false_negatives is not None:
        masked = logits.masked_fill(false_negatives, float("-inf"))
    targets = torch.arange(logits.shape[0], device=logits.device)
    loss = (
        nn.functional.cross_entropy(masked, targets)
        + nn.functional.cross_entropy(masked.T, targets)
    ) / 2
    return loss, logits


def false_negative_mask(examples: Sequence[dict]) -> torch.Tensor:
    """[n, n] True where pair j, j != i, shares its ``text`` or its ``pair`` with pair i
    (case-folded), so that ``pair`` j translates ``text`` i as well."""
    texts = [split_key(e["text"]) for e in examples]
    pairs = [split_key(e["pair"]) for e in examples]
    n = len(examples)
    mask = torch.zeros((n, n), dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            if i != j and (texts[i] == texts[j] or pairs[i] == pairs[j]):
                mask[i, j] = True
    return mask


class RetrievalModel(TaskModel):
    """The adapted encoder as an embedder, trained with :func:`info_nce`."""

    def __init__(
        self, task_type: TaskType, encoder: nn.Module, hidden_size: int, temperature: float
    ) -> None:
        super().__init__(task_type, encoder, hidden_size)
        self.temperature = temperature

    def collate(self, examples, tokenizer, max_length, generator=None):
        pad = pad_id(tokenizer)
        texts = pad_batch(
            [encode_text(tokenizer, e["text"], max_length).input_ids for e in examples], pad
        )
        pairs = pad_batch(
            [encode_text(tokenizer, e["pair"], max_length).input_ids for e in examples], pad
        )
        return {
            **texts,
            "pair_input_ids": pairs["input_ids"],
            "pair_attention_mask": pairs["attention_mask"],
            "false_negatives": false_negative_mask(examples),
        }

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Unit-length embeddings of a padded batch."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return normalised_embeddings(hidden, attention_mask)

    def forward(self, batch: dict):
        texts = self.embed(batch["input_ids"], batch["attention_mask"])
        pairs = self.embed(batch["pair_input_ids"], batch["pair_attention_mask"])
        return info_nce(texts, pairs, self.temperature, batch["false_negatives"])


# --------------------------------------------------------------------------- evaluation


def embed_texts(
    model: RetrievalModel, texts: Sequence[str], tokenizer: Any, max_length: int, batch_size: int
) -> torch.Tensor:
    """Unit-length embeddings [n, H] of ``texts`` (batched by length: less padding)."""
    encoded = [encode_text(tokenizer, t, max_length).input_ids for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    device = next(model.parameters()).device
    vectors: list[torch.Tensor] = [torch.empty(0)] * len(texts)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = pad_batch([encoded[i] for i in chunk], pad_id(tokenizer))
        out = model.embed(batch["input_ids"].to(device), batch["attention_mask"].to(device))
        for i, vector in zip(chunk, out.cpu()):
            vectors[i] = vector
    return torch.stack(vectors) if vectors else torch.empty(0, model.hidden_size)


def mining_scores(
    queries: torch.Tensor, candidates: torch.Tensor, gold: Sequence[set[int]]
) -> dict[str, float]:
    """``{"p_at_1", "mrr"}`` of nearest-neighbour search by cosine: query i's translations are
    the candidates ``gold[i]``; its rank is 1 + the candidates that are not translations and
    score above its best translation."""
    if not len(gold):
        return {"p_at_1": 0.0, "mrr": 0.0}
    scores = queries.float() @ candidates.float().T
    hits = 0
    reciprocal = 0.0
    for i, wanted in enumerate(gold):
        row = scores[i]
        is_gold = torch.zeros(row.shape[0], dtype=torch.bool)
        is_gold[list(wanted)] = True
        best = row[is_gold].max()
        rank = 1 + int((row[~is_gold] > best).sum())
        hits += rank == 1
        reciprocal += 1.0 / rank
    return {"p_at_1": hits / len(gold), "mrr": reciprocal / len(gold)}


def mine_pairs(rows: Sequence[dict], vectors: dict[str, torch.Tensor]) -> dict[str, float]:
    """Bitext mining over ``rows`` of one language pair, both directions (see the module);
    ``vectors`` holds every text's unit-length embedding."""
    texts = sorted({r["text"] for r in rows})
    pairs = sorted({r["pair"] for r in rows})
    text_index = {t: i for i, t in enumerate(texts)}
    pair_index = {p: i for i, p in enumerate(pairs)}
    pair_gold: list[set[int]] = [set() for _ in texts]
    text_gold: list[set[int]] = [set() for _ in pairs]
    for r in rows:
        pair_gold[text_index[r["text"]]].add(pair_index[r["pair"]])
        text_gold[pair_index[r["pair"]]].add(text_index[r["text"]])
    text_vectors = torch.stack([vectors[t] for t in texts])
    pair_vectors = torch.stack([vectors[p] for p in pairs])
    metrics: dict[str, float] = {}
    for direction, (queries, candidates, gold) in zip(
        DIRECTIONS,
        ((text_vectors, pair_vectors, pair_gold), (pair_vectors, text_vectors, text_gold)),
    ):
        for name, value in mining_scores(queries, candidates, gold).items():
            metrics[f"{name}_{direction}"] = value
    for name in ("p_at_1", "mrr"):
        metrics[name] = sum(metrics[f"{name}_{d}"] for d in DIRECTIONS) / len(DIRECTIONS)
    return metrics


def cosine_similarities(source: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Cosine of one embedding [H] with each of several [n, H] (the serving routes' score)."""
    source = nn.functional.normalize(source.float(), dim=-1)
    targets = nn.functional.normalize(targets.float(), dim=-1)
    return (targets @ source).tolist()


class RetrievalTask(TaskType):
    name = "retrieval"
    data_kind = PAIRS
    pipeline_tag = "sentence-similarity"
    metrics = (
        "p_at_1",
        "mrr",
        *(f"{m}_{d}" for d in DIRECTIONS for m in ("p_at_1", "mrr")),
    )
    publishes_head = False
    text_columns = ("text", "pair")

    def model(
        self, encoder, hidden_size, labels, *, temperature: float = 0.05, **_: Any
    ) -> TaskModel:
        if not temperature > 0:
            raise UsageError(f"the InfoNCE temperature must be positive, not {temperature}")
        return RetrievalModel(self, encoder, hidden_size, temperature)

    def evaluate(self, model, rows, tokenizer, max_length, batch_size):
        """Bitext mining per (lang, pair_lang) of ``rows``, averaged over the language pairs
        with equal weight. Each distinct text is embedded once (an English text shared by
        hundreds of language pairs, too)."""
        groups: dict[tuple[str, str], list[dict]] = {}
        for row in rows:
            key = (row.get("lang", "und"), row.get("pair_lang", "und"))
            groups.setdefault(key, []).append(row)
        if not groups:
            return {name: 0.0 for name in self.metrics}
        distinct = sorted({r[c] for r in rows for c in self.text_columns})
        embedded = embed_texts(model, distinct, tokenizer, max_length, batch_size)
        vectors = dict(zip(distinct, embedded))
        results = [mine_pairs(group, vectors) for group in groups.values()]
        metrics = {name: sum(r[name] for r in results) / len(results) for name in results[0]}
        metrics["language_pairs"] = float(len(results))
        return metrics
