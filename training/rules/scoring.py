"""THE score of a recommender: hide one item of each held-out basket, ask the model for k items, count the hits.

Every model of a job is scored by `score_held_out` on the same `HeldOut` baskets: a trial's
candidate (on the split's `valid`), the popularity baseline, the chosen candidate and the current
champion (on `test`). It only calls `RecommenderModel.recommend`, so a model fitted in this process,
one unpickled from the registry and the baseline are scored alike, with labels (a champion may
know other items than the candidate).

Metrics: hit rate@k (the objective: share of baskets whose hidden item is among the k items),
MRR@k (mean of 1/rank of the hidden item, 0 when missed), coverage (share of baskets that get any
item), rule coverage (share that get an item from a fired rule), distinct items recommended.
Baskets of fewer than 2 items have nothing left to recommend from once one is hidden: they are
not scored and are counted. `Evaluation.losses` has one row per scored basket, in held-out order,
so two models scored on the same `HeldOut` can be paired basket by basket.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd

from features.baskets import Baskets
from serving.models.base import RecommenderModel
from training.family import Evaluation


@dataclass(frozen=True)
class HeldOut:
    """Held-out baskets of 2+ items, one item hidden each: basket ids, the rest (labels), the hidden items."""

    ids: np.ndarray  # basket ids, in the held-out baskets' order
    baskets: list[list[str]]  # what the model is shown: each basket without its hidden item
    hidden: np.ndarray  # the hidden item (label) of each basket
    skipped: int  # held-out baskets with fewer than 2 items (nothing left to recommend from)

    def __len__(self) -> int:
        return len(self.hidden)


def hide_one(baskets: Baskets, seed: int | list[int]) -> HeldOut:
    """Hide one item of every basket of 2+ items; which one depends only on the seed and basket order."""
    m = baskets.matrix
    sizes = np.diff(m.indptr)
    u = np.random.default_rng(seed).random(len(sizes))
    eligible = np.flatnonzero(sizes >= 2)
    pos = m.indptr[eligible] + np.floor(u[eligible] * sizes[eligible]).astype(np.int64)
    keep = np.repeat(sizes >= 2, sizes)
    keep[pos] = False
    labels = baskets.items[m.indices[keep]].tolist()
    bounds = np.r_[0, np.cumsum(sizes[eligible] - 1)].tolist()
    rest = [labels[a:b] for a, b in pairwise(bounds)]
    hidden = np.asarray(baskets.items[m.indices[pos]], dtype=object)
    return HeldOut(np.asarray(baskets.ids[eligible], dtype=object), rest, hidden, int(len(sizes) - len(eligible)))


def score_held_out(model: RecommenderModel, held: HeldOut, k: int) -> Evaluation:
    """Hit rate@k of `model` on the held-out baskets, with MRR, coverage and the per-basket hits and ranks."""
    recommended = model.recommend(held.baskets, [k] * len(held))
    n = len(held)
    rank = np.full(n, np.nan)
    with_items = np.zeros(n, dtype=bool)
    with_rules = np.zeros(n, dtype=bool)
    distinct: set[str] = set()
    for i, (rec, hidden) in enumerate(zip(recommended, held.hidden.tolist(), strict=True)):
        if hidden in rec.items:
            rank[i] = rec.items.index(hidden) + 1
        with_items[i] = bool(rec.items)
        with_rules[i] = any(rec.rules)
        distinct.update(rec.items)
    hit = ~np.isnan(rank)
    losses = pd.DataFrame(
        {"basket_id": held.ids, "hidden_item": held.hidden, "hit": hit.astype(np.int64), "rank": rank}
    )
    metrics = {
        "hit_rate_at_k": _mean(hit),
        "mrr_at_k": _mean(np.where(hit, 1.0 / np.where(hit, rank, 1.0), 0.0)),
        "coverage": _mean(with_items),
        "rule_coverage": _mean(with_rules),
        "items_recommended": float(len(distinct)),
        "eval_baskets": float(n),
        "eval_baskets_skipped": float(held.skipped),
    }
    return Evaluation(objective=metrics["hit_rate_at_k"], metrics=metrics, losses=losses)


def _mean(values: np.ndarray) -> float:
    """The mean, 0 for no baskets (a split refuses evaluation data without any, see the family)."""
    return float(values.mean()) if len(values) else 0.0
