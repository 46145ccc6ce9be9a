"""A candidate from its parameters: mine the itemsets, derive the rules, index them for serving."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from features.baskets import Baskets
from serving.models.rule_ranking import RuleRecommender
from training.rules.config import RulesConfig
from training.rules.derive import Rules, rules_from_itemsets
from training.rules.mining import mine_itemsets


@dataclass(frozen=True)
class RulesFit:
    """What a fit produces: the ranking the servable model wraps, its rules and itemset summary, the item labels."""

    recommender: RuleRecommender
    rules: Rules
    items: np.ndarray
    params: dict[str, Any]
    n_itemsets: int
    itemsets_by_size: dict[int, int]
    stats: dict[str, float]


def fit_rules(baskets: Baskets, params: dict[str, Any], cfg: RulesConfig) -> RulesFit:
    """Mine, derive rules and index them; a candidate over `max_rules` fails (a big, slow model)."""
    itemsets = mine_itemsets(
        baskets, float(params["min_support"]), int(params["max_len"]), cfg.engine, cfg.max_itemsets
    )
    rules = rules_from_itemsets(itemsets, baskets.n_items, float(params["min_confidence"]), float(params["min_lift"]))
    if len(rules) > cfg.max_rules:
        raise ValueError(
            f"{len(rules)} rules exceed max_rules ({cfg.max_rules}) at {params}: "
            "raise min_support, min_confidence or min_lift"
        )
    recommender = RuleRecommender(
        baskets.items, baskets.item_counts(), baskets.n_baskets, rules.antecedents, rules.consequents,
        rules.confidence, rules.lift, rules.support, fill=cfg.fill,
    )
    sizes = {int(s): len(c) for s, c in itemsets.counts.items()}
    return RulesFit(recommender, rules, baskets.items, dict(params), len(itemsets), sizes, itemsets.stats)
