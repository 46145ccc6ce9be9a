"""The association-rule recommender family: frequent itemsets (`mining`), rules (`derive`), a fit
(`fit`), THE score (`scoring`), figures and the family's hooks (`family`)."""

from training.rules.config import RulesConfig
from training.rules.derive import Rules, rules_from_itemsets
from training.rules.family import RecommenderFamily
from training.rules.fit import RulesFit, fit_rules
from training.rules.mining import ENGINES, Itemsets, min_count_for, mine_itemsets
from training.rules.scoring import HeldOut, hide_one, score_held_out

__all__ = [
    "ENGINES",
    "HeldOut",
    "Itemsets",
    "RecommenderFamily",
    "Rules",
    "RulesConfig",
    "RulesFit",
    "fit_rules",
    "hide_one",
    "min_count_for",
    "mine_itemsets",
    "rules_from_itemsets",
    "score_held_out",
]
