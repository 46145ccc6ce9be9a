"""The servable recommenders: association rules (`RulesModel`) and the popularity baseline (`PopularityModel`).

Both implement `serving.models.base.RecommenderModel` through the same code, so the service,
`ecomlab score` and the family's one score treat the baseline exactly like a candidate. Labels in,
labels out: each request is encoded once into a basket matrix over the model's items, ranked on
codes (`serving.models.rule_ranking`), and spelled back; items the model never saw are reported
per basket, never an error.

pyfunc `predict`: a frame with `items` (a list of item labels per basket) and an optional `k`;
one row out per basket with `items` (ranked labels), `scores` (confidence of the best fired rule;
0 for a popularity fill; item support for the popularity model), `rules` (per item, the fired
rules as "a & b -> c", best first) and `unknown_items`. Through a logged model's signature `k` is
an optional double: send it as a float (MLflow refuses to cast int64 to double) or leave the column
out for the model's default.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Protocol

import mlflow.pyfunc
import numpy as np
import pandas as pd
import scipy.sparse as sp

from serving.models.base import BasketRecommendation
from serving.models.rule_ranking import PopularityRecommender, Ranked, RuleRecommender

OUTPUT_COLUMNS = ["items", "scores", "rules", "unknown_items"]


class Ranker(Protocol):
    """What a basket model ranks with: codes in, codes out (`rule_ranking`'s classes)."""

    items: np.ndarray

    def encode(self, baskets: list[list[str]]) -> tuple[sp.csr_matrix, list[list[str]]]: ...

    def rank(self, baskets: sp.csr_matrix, k: int) -> Ranked: ...

    def rule_text(self, r: int) -> str: ...


class BasketModel(mlflow.pyfunc.PythonModel):
    """Baskets in, ranked items to add out; the request checks and the label round trip of both models."""

    family: ClassVar[str] = "recommender"

    def __init__(self, ranker: Ranker, default_k: int, max_rules: int = 3, max_k: int = 100) -> None:
        if not 1 <= int(default_k) <= int(max_k):
            raise ValueError(f"default k must be between 1 and max_k ({max_k}), got {default_k}")
        self.ranker = ranker
        self.default_k = int(default_k)
        self.max_rules = int(max_rules)
        self.max_k = int(max_k)

    def recommend(self, baskets: list[list[str]], k: list[int]) -> list[BasketRecommendation]:
        """Up to k[i] items for basket i; a ValueError names the bad basket or k."""
        if len(k) != len(baskets):
            raise ValueError(f"got {len(baskets)} baskets but {len(k)} values of k: give one k per basket")
        checked = [_basket(b, f"basket {i}") for i, b in enumerate(baskets)]
        ks = [_k(v, f"basket {i}", None, self.max_k) for i, v in enumerate(k)]
        return self._recommend(checked, ks)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        if "items" not in frame.columns:
            raise ValueError(
                f"recommend request lacks column 'items' (a list of item labels per basket); got {list(frame.columns)}"
            )
        baskets = [_basket(v, f"row {i}") for i, v in enumerate(frame["items"].tolist())]
        raw_k = frame["k"].tolist() if "k" in frame.columns else [None] * len(baskets)
        ks = [_k(v, f"row {i}", self.default_k, self.max_k) for i, v in enumerate(raw_k)]
        out = self._recommend(baskets, ks)
        return pd.DataFrame(
            {
                "items": [r.items for r in out],
                "scores": [r.scores for r in out],
                "rules": [r.rules for r in out],
                "unknown_items": [r.unknown_items for r in out],
            },
            columns=OUTPUT_COLUMNS,
        )

    def _recommend(self, baskets: list[list[str]], ks: list[int]) -> list[BasketRecommendation]:
        """Checked baskets and k: encode once, rank once at the largest k, cut each basket to its own k."""
        matrix, unknown = self.ranker.encode(baskets)
        ranked = self.ranker.rank(matrix, max(ks, default=self.default_k))
        items = self.ranker.items
        out = []
        for i, k in enumerate(ks):
            codes = ranked.codes[i][:k]
            valid = codes >= 0
            fired = ranked.rules[i][:k]
            out.append(
                BasketRecommendation(
                    items=[str(x) for x in items[codes[valid]]],
                    scores=[float(s) for s in ranked.scores[i][:k][valid]],
                    rules=[[self.ranker.rule_text(r) for r in rs[: self.max_rules].tolist()] for rs in fired],
                    unknown_items=unknown[i],
                )
            )
        return out


class RulesModel(BasketModel):
    """The association-rule recommender (see `rule_ranking` for how rules fire and items are ranked)."""

    def __init__(self, recommender: RuleRecommender, default_k: int, max_rules: int = 3, max_k: int = 100) -> None:
        super().__init__(recommender, default_k, max_rules, max_k)

    @property
    def recommender(self) -> RuleRecommender:
        return self.ranker  # type: ignore[return-value]


class PopularityModel(BasketModel):
    """The baseline: the most frequent training items not already in the basket; no rule ever fires."""

    def __init__(self, popularity: PopularityRecommender, default_k: int, max_k: int = 100) -> None:
        super().__init__(popularity, default_k, 0, max_k)


def _basket(value: Any, where: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple, np.ndarray)):
        got = type(value).__name__
        raise ValueError(f"{where}: 'items' must be a list of item labels, got {got}")  # noqa: TRY004
    bad = [x for x in value if not isinstance(x, (str, np.str_))]
    if bad:
        raise ValueError(f"{where}: 'items' must hold strings, got {bad[0]!r} ({type(bad[0]).__name__})")
    return [str(x) for x in value]


def _k(value: Any, where: str, default: int | None, max_k: int) -> int:
    """A whole k in [1, max_k]; a missing one (None, NaN) is `default`, or an error where there is none."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        if default is None:
            raise ValueError(f"{where}: 'k' is missing")
        return default
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not number or not math.isfinite(value) or value != int(value):
        raise ValueError(f"{where}: 'k' must be a whole number, got {value!r}")
    if not 1 <= int(value) <= max_k:
        raise ValueError(f"{where}: 'k' must be between 1 and {max_k}, got {int(value)}")
    return int(value)
